/**
 * Accuracy across replicas: four real `meli-proxy serve` processes sharing one store, one rule of
 * 1000 requests per 10 s with no partition, and far more offered within one window, spread evenly
 * over the four (concurrent clients, round-robin). The whole deployment must admit about 1000:
 * at most 1050 (the bound derived in docs/rate-limiting.md is limit + 2R = 1008) and at least 900
 * (the shares must not starve it). The store's own total must equal what was admitted.
 *
 * Run against PostgreSQL and against Redis. The load starts with enough of the aligned 10 s window
 * left to finish inside it (the rule is new, so the previous window is empty and the sliding
 * estimate is the exact count of this one).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { type Origin, startOrigin } from '../peers/origin.js';
import { testDatabase } from '../support/postgres.js';
import { type CliProcess, killChildren, spawnCli } from '../support/proxy.js';
import { type RedisServer, skipWithoutRedis, startRedis } from '../support/redis.js';
import { Clients, cli, expectExit, roomInWindow, sleep } from './helpers.js';

const REPLICAS = 4;
const LIMIT = 1000;
const WINDOW_MS = 10_000;
const OFFERED = 4000;
const WORKERS = 32;

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});
afterAll(async () => {
  killChildren();
  await origin?.close();
});

interface Outcome {
  offered: number;
  admitted: number;
  rejected: number;
  other: number;
  perReplica: number[];
  ms: number;
  lateMs: number;
  windowStart: number;
}

async function hammer(urls: readonly string[], windowEnd: number): Promise<Outcome> {
  const clients = new Clients();
  const perReplica = urls.map(() => 0);
  let issued = 0;
  let admitted = 0;
  let rejected = 0;
  let other = 0;
  let lastDone = 0;
  // Stop issuing well before the window ends, so every decision falls inside it.
  const stopAt = windowEnd - 1500;
  const started = Date.now();
  const worker = async (w: number) => {
    for (let i = 0; issued < OFFERED && Date.now() < stopAt; i++) {
      issued++;
      const replica = (w + i) % urls.length;
      const hit = await clients.hit(urls[replica]!, '/items/MLA1');
      lastDone = Date.now();
      if (hit.status === 429) rejected++;
      else if (hit.status === 200) {
        admitted++;
        perReplica[replica]!++;
      } else other++;
    }
  };
  try {
    for (const url of urls) clients.pool(url, undefined, WORKERS / urls.length);
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  } finally {
    await clients.close();
  }
  return {
    offered: issued,
    admitted,
    rejected,
    other,
    perReplica,
    ms: lastDone - started,
    lateMs: lastDone - windowEnd,
    windowStart: windowEnd - WINDOW_MS,
  };
}

async function runAccuracy(storeUrl: string, label: string): Promise<void> {
  const rule = `global-${label}`;
  expectExit(await cli(['limits', 'set', rule, '--all', '--limit', `${LIMIT}/10s`, '--store', storeUrl]), 0);
  const args = ['serve', '--store', storeUrl, '--port', '0', '--admin-port', '0', '--upstream', origin.url];
  const proxies: CliProcess[] = await Promise.all(
    Array.from({ length: REPLICAS }, () =>
      spawnCli([...args, '--access-log', 'off'], {}, { timeoutMs: 30_000 }),
    ),
  );
  try {
    // Every replica pushes every 100 ms: a few rounds and each knows there are four.
    await sleep(600);
    const windowEnd = await roomInWindow(WINDOW_MS, 5500);
    const outcome = await hammer(
      proxies.map((p) => p.url),
      windowEnd,
    );
    console.info(
      `[multi-process ${label}] offered ${outcome.offered} in ${outcome.ms} ms over ${REPLICAS} replicas: ` +
        `admitted ${outcome.admitted} (per replica ${outcome.perReplica.join('/')}), rejected ${outcome.rejected}; ` +
        `limit ${LIMIT} → over-admission ${outcome.admitted - LIMIT}`,
    );
    expect(outcome.other).toBe(0);
    expect(outcome.lateMs, 'the load spilled into the next window').toBeLessThan(0);
    expect(outcome.offered).toBeGreaterThanOrEqual(2 * LIMIT);
    expect(outcome.admitted).toBeLessThanOrEqual(1050);
    expect(outcome.admitted).toBeGreaterThanOrEqual(900);
    for (const n of outcome.perReplica) expect(n).toBeGreaterThan(0);

    // The store's total for the window is what the replicas admitted: nothing lost, nothing twice.
    await sleep(400);
    const store = await openStore(storeUrl, { dataDir: '/nonexistent' });
    try {
      const key = `${rule}@${outcome.windowStart}`;
      const { totals } = await store.counters.sync(`probe-${label}`, [
        { key: rule, windowStart: outcome.windowStart, windowMs: WINDOW_MS, delta: 0 },
      ]);
      expect(totals.get(key)).toBe(outcome.admitted);
    } finally {
      await store.close();
    }
  } finally {
    const codes = await Promise.all(proxies.map((p) => p.stop()));
    expect(codes).toEqual(proxies.map(() => 0));
  }
}

describe('four replicas share one limit', () => {
  it('PostgreSQL: 1000/10s admits 900..1050 of 4000 offered across 4 processes', async () => {
    const db = await testDatabase();
    try {
      expectExit(await cli(['migrate', '--store', db.url]), 0);
      await runAccuracy(db.url, 'pg');
    } finally {
      await db.drop();
    }
  }, 60_000);

  describe.skipIf(skipWithoutRedis())('Redis', () => {
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(() => redis?.dispose());

    it('Redis: 1000/10s admits 900..1050 of 4000 offered across 4 processes', async () => {
      expectExit(await cli(['migrate', '--store', redis.url]), 0);
      await runAccuracy(redis.url, 'redis');
    }, 60_000);
  });
});
