/**
 * Exact shared counting: four real `meli-proxy serve` processes sharing one store, two rules whose
 * limits are small next to four replicas (10/m and 50/m: approximate sharing would admit up to
 * about 2 × 4 more per window), so each request is decided by one atomic store operation. Far more
 * is offered, concurrently from all four, and exactly the limit must be admitted: not one more,
 * not one less. The store's totals equal what was admitted.
 *
 * Run against PostgreSQL and against Redis, with one process per replica and with the default
 * worker count. The rules are new and count per hour, and the load starts with at least the hang
 * deadline left in the aligned hour, so however slowly a busy machine serves it, it stays inside one
 * window: the previous window is empty and the sliding estimate is this window's count.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { type Origin, startOrigin } from '../peers/origin.js';
import { testDatabase } from '../support/postgres.js';
import { type CliProcess, killChildren, spawnCli, WORKER_MODES, type WorkerMode } from '../support/proxy.js';
import { type RedisServer, skipWithoutRedis, startRedis } from '../support/redis.js';
import { cli, expectExit, offerLoad, roomInWindow, sleep } from './helpers.js';

const REPLICAS = 4;
const WINDOW_MS = 3_600_000;
/** Offering the load taking longer than this means something hangs, not that the machine is busy. */
const HANG_MS = 120_000;
/**
 * Room the load needs in its hour (it takes seconds, under load too); asking for the hang deadline
 * instead made a run that started in an hour's last three minutes wait for the next hour.
 */
const ROOM_MS = 60_000;
const RULES = [
  { id: 'exact-items', path: '/items/*', target: '/items/MLA1', limit: 10, offered: 120 },
  { id: 'exact-sites', path: '/sites/*', target: '/sites/MLA/search?q=x', limit: 50, offered: 240 },
] as const;

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});
afterAll(async () => {
  killChildren();
  await origin?.close();
});

async function runExact(storeUrl: string, label: string, mode: WorkerMode): Promise<void> {
  for (const rule of RULES) {
    const id = `${rule.id}-${label}`;
    expectExit(
      await cli([
        'limits',
        'set',
        id,
        '--path',
        rule.path,
        '--limit',
        `${rule.limit}/h`,
        '--store',
        storeUrl,
      ]),
      0,
    );
  }
  const args = ['serve', '--store', storeUrl, '--port', '0', '--admin-port', '0', '--upstream', origin.url];
  const proxies: CliProcess[] = await Promise.all(
    Array.from({ length: REPLICAS }, () => spawnCli([...args, ...mode.args, '--access-log', 'off'])),
  );
  try {
    // Every replica pushes every 100 ms: a few rounds and each knows there are four.
    await sleep(1000);
    const windowEnd = await roomInWindow(WINDOW_MS, ROOM_MS);
    const urls = proxies.map((p) => p.url);
    // 8 at a time per replica, all four replicas at once, both rules together.
    const tallies = await Promise.all(
      RULES.map((rule) =>
        offerLoad(urls, rule.target, { offered: rule.offered, concurrency: 8 * REPLICAS, hangMs: HANG_MS }),
      ),
    );
    RULES.forEach((rule, r) => {
      const tally = tallies[r]!;
      console.info(
        `[exact ${label}, ${mode.name}] ${rule.limit}/h: offered ${rule.offered} over ${REPLICAS} replicas, admitted ${tally.admitted} (per replica ${tally.perReplica.join('/')})`,
      );
      expect(tally.other).toBe(0);
      expect(tally.admitted).toBe(rule.limit);
      expect(tally.rejected).toBe(rule.offered - rule.limit);
    });

    // The store's totals are exactly what was admitted.
    const windowStart = windowEnd - WINDOW_MS;
    await sleep(400);
    const store = await openStore(storeUrl, { dataDir: '/nonexistent' });
    try {
      for (const rule of RULES) {
        const key = `${rule.id}-${label}`;
        const { totals } = await store.counters.sync(`probe-${label}`, [
          { key, windowStart, windowMs: WINDOW_MS, delta: 0 },
        ]);
        expect(totals.get(`${key}@${windowStart}`)).toBe(rule.limit);
      }
    } finally {
      await store.close();
    }
  } finally {
    const codes = await Promise.all(proxies.map((p) => p.stop()));
    expect(codes).toEqual(proxies.map(() => 0));
  }
}

describe.each(WORKER_MODES)('small limits across four replicas are exact ($name)', (mode) => {
  // Waiting for room in the window may take up to ROOM_MS, then the load itself.
  const timeout = 3 * HANG_MS;

  it(
    'PostgreSQL: 10/h and 50/h admit exactly 10 and 50 under concurrent load from all four',
    async () => {
      const db = await testDatabase();
      try {
        expectExit(await cli(['migrate', '--store', db.url]), 0);
        await runExact(db.url, 'pg', mode);
      } finally {
        await db.drop();
      }
    },
    timeout,
  );

  describe.skipIf(skipWithoutRedis())('Redis', () => {
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(() => redis?.dispose());

    it(
      'Redis: 10/h and 50/h admit exactly 10 and 50 under concurrent load from all four',
      async () => {
        await runExact(redis.url, 'redis', mode);
      },
      timeout,
    );
  });
});
