/**
 * PostgreSQL stops in the middle of a run (its own server: stopping the shared one would break other
 * files) while traffic flows through real `meli-proxy serve` processes with shared rules.
 *
 * fail-open (default): the proxy keeps serving (no 5xx because of the outage), keeps limiting with
 * its own counts, /ready stays 200 and reports the store unhealthy, meli_proxy_store_healthy is 0, and
 * the log says the store is unreachable once — not once per request. When PostgreSQL is back: store healthy,
 * store_healthy 1, one "in sync again" line, and the counts admitted meanwhile reach the store.
 *
 * --on-store-error deny: with two replicas sharing a rule, a replica cut off from the store spends
 * only its share of what was left (c/R of it, see docs/rate-limiting.md), then rejects until the
 * store answers again.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { createDatabase, type PostgresServer, startPostgres } from '../support/postgres.js';
import {
  type CliProcess,
  killChildren,
  type LogRecord,
  ONE_PROCESS,
  replicaServeArgs,
  spawnCli,
} from '../support/proxy.js';
import { Clients, cli, expectExit, type Hit, metric, sleep, statusCounts, waitFor } from './helpers.js';

let origin: Origin;
let server: PostgresServer;
const clients = new Clients();

beforeAll(async () => {
  [origin, server] = await Promise.all([startOrigin(), startPostgres()]);
});

afterAll(async () => {
  await clients.close();
  killChildren();
  await origin?.close();
  await server?.stop();
});

async function migratedDatabase(): Promise<string> {
  const db = await createDatabase(server.url);
  expectExit(await cli(['migrate', '--store', db.url]), 0);
  return db.url;
}

function serve(storeUrl: string, ...extra: string[]): Promise<CliProcess> {
  // One process: what is asserted is what one replica does on its own counts while the store is
  // away. Each worker of a host on a shared store is a replica of its own, so under workers a client
  // may get one replica's share per worker meanwhile (within the bound of docs/rate-limiting.md for
  // that many replicas).
  return spawnCli(replicaServeArgs(origin.url, storeUrl, ...ONE_PROCESS, ...extra));
}

async function ready(proxy: CliProcess): Promise<{ status: number; reasons: string[]; store: boolean }> {
  const response = await fetch(`${proxy.url}/ready`);
  const body = (await response.json()) as {
    reasons: string[];
    dependencies: { store: { healthy: boolean } };
  };
  return { status: response.status, reasons: body.reasons, store: body.dependencies.store.healthy };
}

async function storeHealthy(proxy: CliProcess): Promise<number | undefined> {
  return metric(await (await fetch(`${proxy.url}/metrics`)).text(), 'meli_proxy_store_healthy');
}

async function counterTotal(url: string, key: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string | null }>(
      'SELECT sum(n) AS n FROM meli_proxy_counters WHERE key = $1',
      [key],
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

/** Requests at a steady pace from one client until stopped; every status is kept. */
function backgroundTraffic(url: string, from: string, path: string) {
  const hits: Hit[] = [];
  const errors: unknown[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      try {
        hits.push(await clients.hit(url, path, { from }));
      } catch (error) {
        errors.push(error);
      }
      await sleep(10);
    }
  })();
  return {
    hits,
    errors,
    async stop() {
      running = false;
      await done;
    },
  };
}

const isWarning = (record: LogRecord) => record.level === 'warn' || record.level === 'error';

describe('PostgreSQL outage, fail-open (default)', () => {
  it('keeps serving and limiting locally, reports the outage once, and resyncs after', async () => {
    const url = await migratedDatabase();
    expectExit(
      await cli([
        'limits',
        'set',
        'outage-ip',
        '--path',
        '/items/*',
        '--by',
        'ip',
        '--limit',
        '50/h',
        '--store',
        url,
      ]),
      0,
    );
    expectExit(await cli(['limits', 'set', 'outage-all', '--all', '--limit', '100000/h', '--store', url]), 0);
    const proxy = await serve(url);
    const traffic = backgroundTraffic(proxy.url, '127.0.0.2', '/users/12345');
    try {
      expect(await ready(proxy)).toEqual({ status: 200, reasons: [], store: true });
      expect(await storeHealthy(proxy)).toBe(1);
      const before = await clients.burst(proxy.url, '/items/MLA1', 20, { from: '127.0.0.7', concurrency: 1 });
      expect(statusCounts(before)).toEqual({ 200: 20 });
      await sleep(300);

      const logsBefore = proxy.logRecords().length;
      await server.stopServer();
      const outageStarted = Date.now();
      const down = await waitFor(
        async () => {
          const state = await ready(proxy);
          return state.store ? undefined : state;
        },
        10_000,
        '/ready to report the outage',
      );
      expect(down).toEqual({ status: 200, reasons: [], store: false });
      await waitFor(async () => (await storeHealthy(proxy)) === 0, 10_000, 'meli_proxy_store_healthy 0');

      // Limits still hold, from this replica's own counts: 127.0.0.7 had 20 of 50; a new client gets 50.
      const seven = await clients.burst(proxy.url, '/items/MLA1', 40, { from: '127.0.0.7', concurrency: 1 });
      expect(seven.map((hit) => hit.status)).toEqual([...Array(30).fill(200), ...Array(10).fill(429)]);
      const eight = await clients.burst(proxy.url, '/items/MLA1', 55, { from: '127.0.0.8', concurrency: 4 });
      expect(statusCounts(eight)).toEqual({ 200: 50, 429: 5 });
      await sleep(1500);

      const during = proxy.logRecords().slice(logsBefore);
      const unreachable = during.filter((r) => /cannot reach the shared store/.test(String(r.msg)));
      expect(unreachable).toHaveLength(1);
      expect(unreachable[0]!.msg).toContain('fail-open');
      const requestsDuring = traffic.hits.length;
      // A handful of warnings for the whole outage (counters, statistics, the pool), not one per request.
      expect(during.filter(isWarning).length).toBeLessThanOrEqual(6);
      console.info(
        `[outage] ${Date.now() - outageStarted} ms down, ${requestsDuring} background requests so far, ` +
          `warnings logged: ${during
            .filter(isWarning)
            .map((r) => r.msg)
            .join(' | ')}`,
      );

      await server.startServer();
      await waitFor(
        async () => (await ready(proxy)).store,
        15_000,
        '/ready reporting the store healthy after recovery',
        100,
      );
      await waitFor(async () => (await storeHealthy(proxy)) === 1, 15_000, 'meli_proxy_store_healthy 1');
      expect(proxy.logRecords().filter((r) => r.msg === 'shared counters are in sync again')).toHaveLength(1);
      // What was admitted during the outage reaches the store.
      await waitFor(
        async () =>
          (await counterTotal(url, 'outage-ip|127.0.0.7')) === 50 &&
          (await counterTotal(url, 'outage-ip|127.0.0.8')) === 50,
        10_000,
        'the counts admitted during the outage to reach PostgreSQL',
        100,
      );
      expect(await counterTotal(url, 'outage-ip|127.0.0.7')).toBe(50);
    } finally {
      await traffic.stop();
      expect(await proxy.stop()).toBe(0);
    }
    expect(traffic.errors).toEqual([]);
    expect(traffic.hits.length).toBeGreaterThan(100);
    expect(statusCounts(traffic.hits)).toEqual({ 200: traffic.hits.length });
    expect(
      proxy.logRecords().filter((r) => /cannot reach the shared store/.test(String(r.msg))),
    ).toHaveLength(1);
  }, 60_000);
});

describe('PostgreSQL outage, --on-store-error deny', () => {
  it('a replica cut off from the store spends only its share, then rejects until the store is back', async () => {
    const url = await migratedDatabase();
    expectExit(
      await cli(['limits', 'set', 'deny-shared', '--path', '/items/*', '--limit', '400/h', '--store', url]),
      0,
    );
    const [a, b] = await Promise.all([
      serve(url, '--on-store-error', 'deny'),
      serve(url, '--on-store-error', 'deny'),
    ]);
    try {
      // 40 of 400 used before the outage, and both replicas know there are two of them.
      expect(
        statusCounts(await clients.burst(a!.url, '/items/MLA1', 20, { from: '127.0.0.2', concurrency: 1 })),
      ).toEqual({ 200: 20 });
      expect(
        statusCounts(await clients.burst(b!.url, '/items/MLA1', 20, { from: '127.0.0.3', concurrency: 1 })),
      ).toEqual({ 200: 20 });
      await sleep(500);

      await server.stopServer();
      await waitFor(async () => (await storeHealthy(a!)) === 0, 10_000, 'replica A to notice the outage');
      const hits = await clients.burst(a!.url, '/items/MLA1', 200, { from: '127.0.0.4', concurrency: 4 });
      const counts = statusCounts(hits);
      const admitted = counts[200] ?? 0;
      console.info(
        `[outage deny] replica A admitted ${admitted} of 200 while cut off (360 left, 2 replicas)`,
      );
      expect(Object.keys(counts).sort()).toEqual(['200', '429']);
      // Its share is c/R of what it last knew was left: 0.25 × (400 − K) / 2, where K is 40 if its last
      // push already saw B's 20, and only its own 20 if not (a view refreshes when the replica pushes
      // for that key): 45 to 47. Fail-open would have let all 200 through.
      expect(admitted).toBeGreaterThanOrEqual(45);
      expect(admitted).toBeLessThanOrEqual(47);
      const rejected = hits.find((hit) => hit.status === 429)!;
      expect(rejected.headers['retry-after']).toBe('1');
      expect(JSON.parse(rejected.body)).toMatchObject({ error: 'too_many_requests', status: 429 });
      expect(
        a!.logRecords().filter((r) => /cannot reach the shared store.*fail-closed/.test(String(r.msg))),
      ).toHaveLength(1);

      await server.startServer();
      await waitFor(async () => (await storeHealthy(a!)) === 1, 15_000, 'replica A to reach the store again');
      await waitFor(
        async () => (await clients.hit(a!.url, '/items/MLA1', { from: '127.0.0.4' })).status === 200,
        5000,
        'replica A to admit again',
        100,
      );
    } finally {
      const codes = await Promise.all([a!.stop(), b!.stop()]);
      expect(codes).toEqual([0, 0]);
    }
  }, 60_000);
});
