/** Shared counters in a real PostgreSQL: atomic under concurrency, replicas, expiry. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CounterDelta, openStore } from '../../src/store/index.js';
import { openPostgresStore, type PostgresStore } from '../../src/store/postgres.js';
import { createDatabase, type TestDatabase, testDatabase } from '../support/postgres.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('PostgreSQL counters', () => {
  let db: TestDatabase;
  const stores: PostgresStore[] = [];
  const open = async (tuning: { replicaTtlMs?: number } = {}, url = db.url) => {
    const store = await openPostgresStore({ url, displayUrl: 'test', migrate: true, tuning });
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    db = await testDatabase();
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await db?.drop();
  });

  it('adds 50 parallel syncs from 4 replicas (each its own pool) up exactly', async () => {
    const replicas = await Promise.all([open(), open(), open(), open()]);
    const windowStart = Math.floor(Date.now() / 60_000) * 60_000;
    const keys = ['ip:152.152.152.152', 'path:/categories/*', 'ip+path:152.152.152.152|/items/*'];
    const expected = new Map<string, number>();
    const syncs = Array.from({ length: 50 }, (_, i) => {
      const replica = i % 4;
      // Different replicas send the keys in different orders: row locks must still not deadlock.
      const order = replica % 2 === 0 ? keys : [...keys].reverse();
      const deltas: CounterDelta[] = order.map((key, k) => ({
        key,
        windowStart,
        windowMs: 60_000,
        delta: i + k,
      }));
      for (const d of deltas) expected.set(d.key, (expected.get(d.key) ?? 0) + d.delta);
      return replicas[replica]!.counters.sync(`replica-${replica}`, deltas);
    });
    const results = await Promise.all(syncs);

    // Each total a sync saw is a running sum: never above the final one, and the largest equals it.
    for (const key of keys) {
      const seen = results.map((r) => r.totals.get(`${key}@${windowStart}`) ?? -1);
      expect(Math.max(...seen)).toBe(expected.get(key));
    }
    const read = await replicas[0]!.counters.sync(
      'reader',
      keys.map((key) => ({ key, windowStart, windowMs: 60_000, delta: 0 })),
    );
    for (const key of keys) expect(read.totals.get(`${key}@${windowStart}`)).toBe(expected.get(key));
  });

  it('merges a window named twice in one batch', async () => {
    const store = await open();
    const d = { key: 'dup', windowStart: 1_000, windowMs: 1_000 };
    const { totals } = await store.counters.sync('r', [
      { ...d, delta: 2 },
      { ...d, delta: 3 },
    ]);
    expect(totals.get('dup@1000')).toBe(5);
  });

  it('counts replicas that synced within the horizon, itself included', async () => {
    // A database of its own: the replicas of the other tests here must not count.
    const own = await createDatabase(db.serverUrl);
    try {
      const store = await open({ replicaTtlMs: 1000 }, own.url);
      expect((await store.counters.sync('solo', [])).replicas).toBe(1);
      await store.counters.sync('second', []);
      await store.counters.sync('third', []);
      expect((await store.counters.sync('solo', [])).replicas).toBe(3);
      await sleep(1100);
      expect((await store.counters.sync('solo', [])).replicas).toBe(1);
      await store.close();
    } finally {
      await own.drop();
    }
  });

  it('deletes expired windows in cleanup, not in sync', async () => {
    const store = await open();
    const longAgo = Date.now() - 3_600_000;
    await store.counters.sync('r', [{ key: 'old', windowStart: longAgo, windowMs: 1000, delta: 7 }]);
    const now = Math.floor(Date.now() / 60_000) * 60_000;
    await store.counters.sync('r', [{ key: 'current', windowStart: now, windowMs: 60_000, delta: 1 }]);
    const client = new pg.Client(db.url);
    await client.connect();
    try {
      const count = async (key: string) =>
        (await client.query('SELECT count(*)::int AS n FROM meli_proxy_counters WHERE key = $1', [key]))
          .rows[0].n;
      expect(await count('old')).toBe(1);
      const removed = await store.counters.cleanup();
      expect(removed.counters).toBeGreaterThanOrEqual(1);
      expect(await count('old')).toBe(0);
      expect(await count('current')).toBe(1);
    } finally {
      await client.end();
    }
  });

  it('is what openStore gives for a postgres:// URL', async () => {
    const store = await openStore(db.url, { dataDir: '/nonexistent' });
    try {
      expect(store.kind).toBe('postgres');
      const { totals, replicas } = await store.counters.sync('via-open-store', [
        { key: 'k', windowStart: 0, windowMs: 10, delta: 1 },
      ]);
      expect(totals.get('k@0')).toBe(1);
      expect(replicas).toBeGreaterThanOrEqual(1);
    } finally {
      await store.close();
    }
  });
});
