/**
 * Rules reach running proxies without a restart, and survive one:
 * - `meli-proxy limits set --store postgres://…` (the store, not the proxy's admin API) is enforced
 *   by a running proxy (the real CLI process) without a restart; `limits rm --store` lifts it. How
 *   long that took is printed, not asserted: a busy machine stretches it (the bench measures it).
 * - With the embedded store, rules set through the admin API (or with `--store embedded` while no
 *   proxy runs) are there again after a restart on the same --data-dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';
import { type CliProcess, killChildren, spawnCli } from '../support/proxy.js';
import {
  ADMIN_TOKEN,
  adminRules,
  Clients,
  cli,
  expectExit,
  expectRejectedBy,
  type Hit,
  sleep,
  waitFor,
} from './helpers.js';

let origin: Origin;
const clients = new Clients();
/** Waits longer than this mean the change never arrived. */
const HANG_MS = 30_000;

beforeAll(async () => {
  origin = await startOrigin();
});

afterAll(async () => {
  await clients.close();
  killChildren();
  await origin?.close();
});

function serveArgs(...extra: string[]): string[] {
  return [
    'serve',
    '--port',
    '0',
    '--admin-port',
    '0',
    '--upstream',
    origin.url,
    '--access-log',
    'off',
    ...extra,
  ];
}

describe('hot reload from a PostgreSQL store', () => {
  let db: TestDatabase;
  let proxy: CliProcess;

  beforeAll(async () => {
    db = await testDatabase();
    expectExit(await cli(['migrate', '--store', db.url]), 0);
    proxy = await spawnCli(
      serveArgs('--store', db.url),
      { MELI_PROXY_ADMIN_TOKEN: ADMIN_TOKEN },
      { timeoutMs: 30_000 },
    );
  });

  afterAll(async () => {
    if (proxy) expect(await proxy.stop()).toBe(0);
    await db?.drop();
  });

  it('enforces a rule written into the store by `limits set --store`, and lifts it on `limits rm`', async () => {
    const before = await clients.hit(proxy.url, '/items/MLA1', { from: '127.0.0.2' });
    expect(before.headers['ratelimit-policy']).toBeUndefined();

    const started = Date.now();
    const set = await cli([
      'limits',
      'set',
      'hot',
      '--path',
      '/items/*',
      '--by',
      'ip',
      '--limit',
      '3/h',
      '--store',
      db.url,
    ]);
    expectExit(set, 0);
    // Poll until every serving process applies the rule: several answers in a row carry its policy.
    // Each poll comes from an address of its own (a connection of its own, which the cluster hands
    // to the workers in turn), so no poll counts against the client measured below.
    let inARow = 0;
    for (let poll = 0; inARow < 6 && Date.now() - started < HANG_MS; poll++) {
      const from = `127.0.${1 + Math.floor(poll / 250)}.${1 + (poll % 250)}`;
      const hit = await clients.hit(proxy.url, '/items/MLA1', { from });
      inARow = hit.headers['ratelimit-policy'] ? inARow + 1 : 0;
      if (inARow === 0) await sleep(50);
    }
    // Only a hang guard: the rule normally arrives within a second or two.
    expect(inARow, 'the proxy never applied the rule').toBe(6);
    const first: Hit = await clients.hit(proxy.url, '/items/MLA1', { from: '127.0.0.3' });
    const elapsed = Date.now() - started;
    expect(first.status).toBe(200);
    expect(first.headers['ratelimit-policy']).toBe('"hot";q=3;w=3600');
    expect(first.headers.ratelimit).toMatch(/^"hot";r=2;t=\d+$/);
    const rest = await clients.burst(proxy.url, '/items/MLA1', 3, { from: '127.0.0.3', concurrency: 1 });
    expect(rest.map((hit) => hit.status)).toEqual([200, 200, 429]);
    expectRejectedBy(rest[2]!, 'hot', 3, 3600);
    expect((await adminRules(proxy.adminUrl)).map((rule) => [rule.id, rule.source])).toEqual([
      ['hot', 'store'],
    ]);
    console.info(`[reload] rule set in PostgreSQL enforced by the running proxy after ${elapsed} ms`);

    const rmStarted = Date.now();
    expectExit(await cli(['limits', 'rm', 'hot', '--store', db.url]), 0);
    await waitFor(
      async () => (await clients.hit(proxy.url, '/items/MLA1', { from: '127.0.0.3' })).status === 200,
      HANG_MS,
      'the removed rule to stop rejecting',
    );
    console.info(`[reload] rule removed from PostgreSQL lifted after ${Date.now() - rmStarted} ms`);
  });
});

describe('rules in the embedded store survive a restart', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'limits-restart-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('set through the admin API, and with --store embedded while stopped, both load at the next start', async () => {
    const args = serveArgs('--data-dir', dataDir);
    const first = await spawnCli(args, { MELI_PROXY_ADMIN_TOKEN: ADMIN_TOKEN }, { timeoutMs: 30_000 });
    let env = { MELI_PROXY_ADMIN_URL: first.adminUrl, MELI_PROXY_ADMIN_TOKEN: ADMIN_TOKEN };
    try {
      expectExit(await cli(['limits', 'set', 'kept', '--ip', '127.0.0.4', '--limit', '2/h'], env), 0);
      const hits = await clients.burst(first.url, '/users/1', 3, { from: '127.0.0.4', concurrency: 1 });
      expect(hits.map((hit) => hit.status)).toEqual([200, 200, 429]);
    } finally {
      expect(await first.stop()).toBe(0);
    }

    const offline = await cli([
      'limits',
      'set',
      'offline',
      '--path',
      '/sites/*',
      '--limit',
      '1/h',
      '--store',
      'embedded',
      '--data-dir',
      dataDir,
    ]);
    expectExit(offline, 0);

    const second = await spawnCli(args, { MELI_PROXY_ADMIN_TOKEN: ADMIN_TOKEN }, { timeoutMs: 30_000 });
    env = { MELI_PROXY_ADMIN_URL: second.adminUrl, MELI_PROXY_ADMIN_TOKEN: ADMIN_TOKEN };
    try {
      const list = await cli(['limits', 'list', '--json'], env);
      expectExit(list, 0);
      expect(JSON.parse(list.stdout).rules).toEqual([
        {
          id: 'kept',
          match: { ip: ['127.0.0.4'] },
          limit: '2/1h',
          source: 'store',
          matched: 0,
          rejected: 0,
          shadowExceeded: 0,
        },
        {
          id: 'offline',
          match: { path: ['/sites/*'] },
          limit: '1/1h',
          source: 'store',
          matched: 0,
          rejected: 0,
          shadowExceeded: 0,
        },
      ]);
      // Counters are per process in the embedded store: the rule is back, its count starts afresh.
      const kept = await clients.burst(second.url, '/users/1', 3, { from: '127.0.0.4', concurrency: 1 });
      expect(kept.map((hit) => hit.status)).toEqual([200, 200, 429]);
      expectRejectedBy(kept[2]!, 'kept', 2, 3600);
      const sites = await clients.burst(second.url, '/sites/MLA/search?q=a', 2, {
        from: '127.0.0.5',
        concurrency: 1,
      });
      expect(sites.map((hit) => hit.status)).toEqual([200, 429]);
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});
