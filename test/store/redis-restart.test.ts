/**
 * Redis restarted without persistence (SIGKILL, then a fresh empty server on the same port) and
 * stalled (SIGSTOP/SIGCONT) under an open store: the replica notices that the documents are gone
 * and writes back the ones it knew, says so loudly, restores the live windows' counts, and warned
 * at start-up that the server runs without AOF; a statistics batch retried after a stall is
 * counted once.
 */
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type StatRow, type Store, type StoreLogger } from '../../src/store/index.js';
import { type RedisServer, skipWithoutRedis, startRedis } from '../support/redis.js';

const MINUTE = 60_000;
const TUNING = {
  connectTimeoutMs: 1000,
  commandTimeoutMs: 800,
  checkTimeoutMs: 800,
  reconnectMaxDelayMs: 100,
};

function captureLogger(): StoreLogger & { messages: string[] } {
  const messages: string[] = [];
  const push = (_obj: object, msg?: string) => {
    messages.push(msg ?? '');
  };
  return { messages, info: push, warn: push, error: push };
}

/** Retries `work` while the store reconnects; fails after a deadline that only catches hangs. */
async function eventually<T>(work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

describe.skipIf(skipWithoutRedis())('Redis restarted without persistence', () => {
  let redis: RedisServer;
  let store: Store;
  const logger = captureLogger();

  beforeAll(async () => {
    redis = await startRedis();
    store = await openStore(redis.url, { dataDir: '/nonexistent', logger, redis: TUNING });
  });
  afterAll(async () => {
    await store?.close();
    await redis?.dispose();
  });

  it('warns at start-up that the server keeps nothing across a restart', () => {
    expect(logger.messages.some((m) => m.startsWith('Redis runs without AOF persistence'))).toBe(true);
  });

  it('re-publishes the rules it knew and restores the windows it counted, once it sees the store empty', async () => {
    const rule = { match: { ip: '152.152.152.152' }, limit: '300/m' };
    await store.documents.set('limits/ip-152', rule);
    const other = await openStore(redis.url, { dataDir: '/nonexistent', redis: TUNING });
    try {
      await other.documents.set('limits/from-elsewhere', { limit: '5/s' });
      expect((await store.documents.list('limits/')).map(([key]) => key)).toEqual([
        'limits/from-elsewhere',
        'limits/ip-152',
      ]);
    } finally {
      await other.close();
    }
    const windowStart = Date.now() - (Date.now() % MINUTE);
    const delta = (n: number) => [{ key: 'rule|152', windowStart, windowMs: MINUTE, delta: n }];
    expect((await store.counters.sync('a', delta(250))).totals.get(`rule|152@${windowStart}`)).toBe(250);

    await redis.stop();
    await redis.start();

    // The first read after the restart already answers with the rules, not with an empty list.
    const listed = await eventually(() => store.documents.list('limits/'));
    expect(listed).toEqual([
      ['limits/from-elsewhere', { limit: '5/s' }],
      ['limits/ip-152', rule],
    ]);
    expect(logger.messages.some((m) => m.startsWith('Redis lost documents this replica had seen'))).toBe(
      true,
    );
    const fresh = await openStore(redis.url, { dataDir: '/nonexistent', redis: TUNING });
    try {
      expect((await fresh.documents.list('limits/')).map(([key]) => key)).toEqual([
        'limits/from-elsewhere',
        'limits/ip-152',
      ]);
    } finally {
      await fresh.close();
    }
    expect((await store.counters.sync('a', delta(1))).totals.get(`rule|152@${windowStart}`)).toBe(251);
  }, 60_000);

  it('re-publishes what it knew when the store went back to an older state (an older snapshot)', async () => {
    await store.documents.set('limits/newer', { limit: '7/s' });
    const admin = createClient({ url: redis.url });
    await admin.connect();
    try {
      // What a restore from a snapshot taken before that write looks like: an older generation, and
      // the document missing.
      const generation = Number(await admin.get('meli-proxy:doc-generation'));
      await admin.set('meli-proxy:doc-generation', String(generation - 1));
      await admin.del('meli-proxy:doc:limits/newer');
      expect(await store.documents.get('limits/newer')).toEqual({ limit: '7/s' });
      expect(await admin.exists('meli-proxy:doc:limits/newer')).toBe(1);
      expect(Number(await admin.get('meli-proxy:doc-generation'))).toBe(generation);
    } finally {
      await admin.close();
    }
  });

  it('adds a statistics batch once when its write timed out in a stall and is sent again', async () => {
    const minute = Date.now() - (Date.now() % MINUTE);
    const rows = (requests: number): StatRow[] => [
      { minute, dimension: 'total', value: '', requests, bytes: requests, latencyMsSum: requests },
    ];
    await eventually(() => store.stats.add(rows(3), 'sender:1'));
    redis.pause();
    try {
      await expect(store.stats.add(rows(4), 'sender:2')).rejects.toThrow(/did not answer/);
    } finally {
      redis.resume();
    }
    await eventually(() => store.stats.add(rows(4), 'sender:2'));
    // The stalled original was read from its socket when the server woke up: a command on a new
    // connection is answered after it.
    const admin = createClient({ url: redis.url });
    await admin.connect();
    await admin.ping();
    await admin.close();
    const [total] = await store.stats.query({
      from: minute,
      to: minute + MINUTE,
      dimension: 'total',
      limit: 1,
    });
    expect(total?.requests).toBe(7);
  }, 60_000);
});
