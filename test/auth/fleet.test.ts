/**
 * The refresh lock where it matters: four real `serve --inject-token` processes sharing one
 * PostgreSQL store, tokens that expire every 3 s, and traffic through all four for several
 * rotations. MercadoLibre's refresh tokens are single use, so the fake server must see exactly one
 * refresh call per rotation, no invalid_grant, and no request sent with an expired token.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenStore } from '../../src/auth/token-store.js';
import { openStore } from '../../src/store/index.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';
import { type CliProcess, killChildren, spawnCli } from '../support/proxy.js';
import { ensureBuilt } from './helpers/build.js';
import { loggedInToken } from './helpers/tokens.js';

const REPLICAS = 4;
// Tokens live 5 s: replicas refresh at ~4 s and stop sending a token at 4.75 s, which leaves a
// loaded 2-core machine (four proxies, PostgreSQL, the test) enough time for the locked refresh.
const LIFETIME_SECONDS = 5;
const TRAFFIC_MS = 14_000;

describe('a fleet of proxies sharing one PostgreSQL store', () => {
  let db: TestDatabase;
  let meli: FakeMeli;
  let dataDir: string;
  const proxies: CliProcess[] = [];

  beforeAll(async () => {
    [db, meli, dataDir] = await Promise.all([
      testDatabase(),
      startFakeMeli({ expiresIn: LIFETIME_SECONDS }),
      mkdtemp(path.join(tmpdir(), 'meli-fleet-')),
      ensureBuilt(),
    ]).then(([a, b, c]) => [a, b, c] as const);
    // The operator's `auth login` (done without a browser here): one token in the shared store.
    const store = await openStore(db.url, { dataDir, migrate: true });
    try {
      await new TokenStore(store.documents, store.displayUrl).save(loggedInToken(meli));
    } finally {
      await store.close();
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled(proxies.map((proxy) => proxy.stop('SIGTERM', 10_000)));
    killChildren();
    await meli?.close();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('refreshes exactly once per rotation, never with invalid_grant, never sends an expired token', async () => {
    const started = await Promise.all(
      Array.from({ length: REPLICAS }, () =>
        spawnCli(
          [
            'serve',
            '--inject-token',
            '--store',
            db.url,
            '--upstream',
            meli.url,
            '--token-url',
            meli.tokenUrl,
            '--port',
            '0',
            '--admin-port',
            '0',
            '--data-dir',
            dataDir,
            '--access-log',
            'off',
          ],
          { MELI_CLIENT_SECRET: meli.client.secret },
        ),
      ),
    );
    proxies.push(...started);

    let sent = 0;
    let failed = 0;
    const until = Date.now() + TRAFFIC_MS;
    const worker = async (index: number): Promise<void> => {
      for (let n = index; Date.now() < until; n++) {
        const proxy = proxies[n % REPLICAS]!;
        const response = await fetch(`${proxy.url}/items/MLA${n}`);
        await response.arrayBuffer();
        sent++;
        if (response.status !== 200) failed++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, index) => worker(index)));

    const stats = meli.stats;
    const rotations = stats.refreshCalls;
    // 14 s of 5-s tokens refreshed at ~80 % (every ~4 s): three rotations.
    expect(rotations).toBeGreaterThanOrEqual(3);
    expect(stats.invalidGrants).toBe(0);
    expect([...stats.refreshCallsByToken.values()].filter((calls) => calls !== 1)).toEqual([]);
    expect(stats.expiredTokenRequests).toBe(0);
    expect(stats.unknownTokenRequests).toBe(0);
    expect(stats.anonymousRequests).toBe(0);
    expect(failed).toBe(0);
    expect(stats.validTokenRequests).toBe(sent);
    expect(sent).toBeGreaterThan(500);

    // Each replica reports its own part; together they add up to the rotations.
    let successes = 0;
    for (const proxy of proxies) {
      const text = await (await fetch(`${proxy.url}/metrics`)).text();
      successes += Number(/^meli_proxy_token_refresh_total\{result="success"\} (\d+)$/m.exec(text)?.[1] ?? 0);
      const remaining = Number(/^meli_proxy_token_expires_in_seconds (\S+)$/m.exec(text)?.[1]);
      expect(remaining).toBeGreaterThan(0);
      expect(remaining).toBeLessThanOrEqual(LIFETIME_SECONDS);
      expect(proxy.stdout).not.toContain('APP_USR-');
      expect(proxy.stdout).not.toContain('TG-');
      expect(proxy.stdout).not.toContain(meli.client.secret);
    }
    expect(successes).toBe(rotations);

    for (const proxy of proxies.splice(0)) expect(await proxy.stop('SIGTERM', 10_000)).toBe(0);
  }, 60_000);
});
