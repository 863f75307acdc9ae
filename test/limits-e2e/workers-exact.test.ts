/**
 * Exact limits across the workers of one host: the real `serve --workers 2` (a node:cluster primary
 * owning the embedded store, and two workers holding rate-limit leases from it) against the test
 * origin. Bursts far above a limit, spread over both workers by the cluster's round-robin, must be
 * admitted exactly as one process would admit them: exactly the limit within one window (each rule
 * is new, so its previous window is empty and the sliding estimate is the plain count). Each burst
 * starts with enough of its aligned window left (roomInWindow) and checks it ended in that window.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { type CliProcess, killChildren, serveArgs, spawnCli, tempDir } from '../support/proxy.js';
import { roomInWindow, sleep, waitFor } from './helpers.js';

const RULES = `limits:
  - { id: items, match: { path: /items/* }, limit: 100/10s }
  - { id: per-client, match: { path: /users/* }, by: [header:x-client-id], limit: 30/m }
  - { id: per-ip, match: { path: /sites/* }, by: [ip], limit: 40/m }
  - { id: orders, match: { path: /orders/* }, limit: 10/m }
  - { id: orders-client, match: { path: /orders/* }, by: [header:x-client-id], limit: 2/m }
`;

let origin: Origin;
let cli: CliProcess;
let pool: Pool;
const data = tempDir();

beforeAll(async () => {
  origin = await startOrigin();
  const config = path.join(data.dir, 'limits.yaml');
  writeFileSync(config, RULES);
  cli = await spawnCli(
    serveArgs(origin.url, data.dir, '--workers', '2', '--config', config),
    {},
    {
      timeoutMs: 30_000,
    },
  );
  await waitFor(() => cli.logRecords().some((r) => r.msg === 'all workers ready'), 30_000, 'all workers');
  // Many connections: the cluster hands each to a worker in turn.
  pool = new Pool(cli.url, { connections: 64, pipelining: 1, keepAliveTimeout: 10_000 });
});

afterAll(async () => {
  await pool?.close().catch(() => undefined);
  if (cli && cli.child.exitCode === null) expect(await cli.stop('SIGTERM')).toBe(0);
  killChildren();
  await origin?.close();
  data.remove();
});

/** `count` requests sent at once; their statuses. */
async function burst(
  target: string,
  count: number,
  headers: (i: number) => Record<string, string> = () => ({}),
) {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const response = await pool.request({ path: target, method: 'GET', headers: headers(i) });
      await response.body.dump();
      return response.statusCode;
    }),
  );
}

const admitted = (statuses: readonly number[]) => statuses.filter((status) => status !== 429).length;

/** Runs `work` inside one aligned window with at least `neededMs` of it left, and checks it ended there. */
async function inOneWindow<T>(windowMs: number, neededMs: number, work: () => Promise<T>): Promise<T> {
  const end = await roomInWindow(windowMs, neededMs);
  const result = await work();
  expect(Date.now(), 'the burst did not finish inside one window').toBeLessThan(end);
  return result;
}

/** Worker numbers whose access log shows a forwarded request for `target`. */
function workersThatForwarded(target: string): Set<unknown> {
  return new Set(
    cli
      .logRecords()
      .filter((r) => r.msg === 'request' && r.url === target && r.status !== 429)
      .map((r) => r.worker),
  );
}

describe('serve --workers 2 with the embedded store: limits exact across workers', () => {
  it('admits exactly 100 of 600 concurrent requests for 100/10s, served by both workers', async () => {
    const statuses = await inOneWindow(10_000, 7_000, () => burst('/items/MLA1', 600));
    expect(statuses.filter((status) => status === 429)).toHaveLength(500);
    expect(admitted(statuses)).toBe(100);
    expect(origin.requests.filter((r) => r.url === '/items/MLA1')).toHaveLength(100);
    await waitFor(() => workersThatForwarded('/items/MLA1').size === 2, 5000, 'access log lines');
    expect(workersThatForwarded('/items/MLA1')).toEqual(new Set([1, 2]));
  });

  it('is exact per header value and per client address too', async () => {
    const [byHeader, byIp] = await inOneWindow(60_000, 15_000, () =>
      Promise.all([
        burst('/users/1', 400, (i) => ({ 'x-client-id': i % 2 === 0 ? 'app-a' : 'app-b' })),
        burst('/sites/MLA', 300),
      ]),
    );
    expect(admitted(byHeader.filter((_, i) => i % 2 === 0))).toBe(30);
    expect(admitted(byHeader.filter((_, i) => i % 2 === 1))).toBe(30);
    expect(admitted(byIp)).toBe(40);
  });

  it('counts nothing for a rejected request: refusals by one rule leave the others their quota', async () => {
    await inOneWindow(60_000, 20_000, async () => {
      // One client sends 40: its own rule admits 2; its 38 refusals must not eat into "orders".
      const greedy = await burst('/orders/1', 40, () => ({ 'x-client-id': 'greedy' }));
      expect(admitted(greedy)).toBe(2);
      // Unused permits go back to the primary within a few sync intervals.
      await sleep(1000);
      // 30 other clients, one request each: "orders" has exactly 8 left for them.
      const others = await burst('/orders/1', 30, (i) => ({ 'x-client-id': `client-${i}` }));
      expect(admitted(others)).toBe(8);
    });
    expect(origin.requests.filter((r) => r.url === '/orders/1')).toHaveLength(10);
  });

  it('keeps the counts when a rule is edited through the store mid-window', async () => {
    const put = async (limit: string) => {
      const response = await fetch(`${cli.adminUrl}/admin/limits/edited`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ match: { path: '/categories/*' }, limit }),
      });
      expect(response.status).toBe(200);
    };
    const loaded = () =>
      cli
        .logRecords()
        .filter((r) => r.msg === 'rate-limit rules loaded' && JSON.stringify(r.rules).includes('edited'));
    await put('50/m');
    await waitFor(
      () => new Set(loaded().map((r) => r.worker)).size === 2,
      5000,
      'both workers to load the rule',
    );
    await inOneWindow(60_000, 20_000, async () => {
      expect(admitted(await burst('/categories/MLA97994', 30))).toBe(30);
      const before = loaded().length;
      await put('80/m');
      // Every worker reloads within its 1 s reload interval and carries its counts over.
      await waitFor(() => loaded().length >= before + 2, 5000, 'both workers to reload');
      await sleep(600);
      // 30 of 80 are used: exactly 50 more, however many are offered.
      expect(admitted(await burst('/categories/MLA97994', 200))).toBe(50);
    });
  });
});
