/**
 * The Redis store against a real redis-server: documents, atomic counters, replicas, expiry,
 * opening through openStore, masked URLs, and `migrate` as a no-op.
 */
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  type CounterDelta,
  migrateStore,
  openStore,
  parseStoreUrl,
  StoreConfigError,
  StoreUnavailableError,
} from '../../src/store/index.js';
import { openRedisStore, type RedisStore, type RedisTuning } from '../../src/store/redis.js';
import { COUNTER_KEY_PREFIX, REPLICAS_KEY } from '../../src/store/redis-counters.js';
import { escapeGlob, REDIS_DOCUMENT_NAMESPACE } from '../../src/store/redis-documents.js';
import { type RedisServer, skipWithoutRedis, startRedis, testPassword } from '../support/redis.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Redis store URLs', () => {
  it('accepts redis:// and rediss:// URLs and masks their password', () => {
    expect(parseStoreUrl('redis://:hunter2@cache:6379/0')).toEqual({
      kind: 'redis',
      url: 'redis://:hunter2@cache:6379/0',
      displayUrl: 'redis://:***@cache:6379/0',
    });
    expect(parseStoreUrl('rediss://meli:hunter2@cache.internal')).toMatchObject({
      kind: 'redis',
      displayUrl: 'rediss://meli:***@cache.internal',
    });
    expect(parseStoreUrl('REDIS://127.0.0.1:6380')).toMatchObject({ kind: 'redis' });
  });

  it.each([
    ['redis:cache', /malformed Redis URL/],
    ['redis:///0', /malformed Redis URL/],
    ['redis://:hunter2@cache:6379/zero', /"zero" is not a database number/],
    ['rediss://:hunter2@[::1/0', /malformed Redis URL/],
  ])('refuses %s with a usage error', (value, message) => {
    let error: unknown;
    try {
      parseStoreUrl(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreConfigError);
    const text = (error as Error).message;
    expect(text).toMatch(message);
    expect(text).toMatch(/redis:\/\/:password@host:6379\/0/);
    expect(text).not.toContain('hunter2');
  });

  it('migrate is a no-op that does not even connect', async () => {
    // Port 1: nothing listens there; a connection attempt would fail.
    expect(await migrateStore('redis://:hunter2@127.0.0.1:1/0')).toEqual({
      displayUrl: 'redis://:***@127.0.0.1:1/0',
      applied: [],
      hasSchema: false,
    });
    expect(await migrateStore('rediss://127.0.0.1:1', { dryRun: true })).toMatchObject({ hasSchema: false });
  });

  it('opening an unreachable Redis fails promptly with StoreUnavailableError, without the password', async () => {
    const error = await openStore('redis://:s3cr3t@127.0.0.1:1', { dataDir: '/x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    // Promptly: on the refused connection itself (ECONNREFUSED below), not after the connect
    // timeout ("no answer within …") or a retry loop.
    const { message, exitCode } = error as StoreUnavailableError;
    expect(message).toMatch(/^Cannot use the Redis store redis:\/\/:\*\*\*@127\.0\.0\.1:1: .*ECONNREFUSED/);
    expect(message).not.toContain('s3cr3t');
    expect(exitCode).toBe(1);
  });
});

describe.skipIf(skipWithoutRedis())('Redis store', () => {
  let server: RedisServer;
  let admin: ReturnType<typeof createClient>;
  const stores: RedisStore[] = [];
  /** Each test that needs a clean keyspace gets a database of its own (0 is shared). */
  let nextDatabase = 1;
  const open = async (tuning: Partial<RedisTuning> = {}, database = 0) => {
    const store = await openRedisStore({ url: `${server.url}/${database}`, displayUrl: 'test', tuning });
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    server = await startRedis({ password: testPassword() });
    admin = createClient({ url: server.url });
    await admin.connect();
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await admin?.close();
    await server?.dispose();
  });

  describe('documents', () => {
    it('set, get, overwrite and delete, stored as keyv values under meli-proxy:doc:', async () => {
      const { documents } = await open();
      await documents.set('rules/one', { limit: 10, unit: 'minute' });
      expect(await documents.get('rules/one')).toEqual({ limit: 10, unit: 'minute' });
      const raw = await admin.get(`${REDIS_DOCUMENT_NAMESPACE}:rules/one`);
      expect(JSON.parse(raw ?? 'null')).toEqual({ value: { limit: 10, unit: 'minute' } });
      expect(await admin.pTTL(`${REDIS_DOCUMENT_NAMESPACE}:rules/one`)).toBe(-1); // no TTL asked

      await documents.set('rules/one', ['replaced']);
      expect(await documents.get('rules/one')).toEqual(['replaced']);
      expect(await documents.delete('rules/one')).toBe(true);
      expect(await documents.delete('rules/one')).toBe(false);
      expect(await documents.get('rules/one')).toBeUndefined();
      await expect(documents.set('rules/zero', 1, 0)).rejects.toThrow(/ttlMs must be a positive number/);
      await expect(documents.get('')).rejects.toThrow(/non-empty/);
    });

    it('expires documents with a TTL, in Redis too', async () => {
      const { documents } = await open();
      await documents.set('ttl/short', 'soon gone', 200);
      await documents.set('ttl/long', 'kept', 60_000);
      const pttl = await admin.pTTL(`${REDIS_DOCUMENT_NAMESPACE}:ttl/short`);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(200);
      expect(await documents.get('ttl/short')).toBe('soon gone');
      await sleep(300);
      expect(await documents.get('ttl/short')).toBeUndefined();
      expect(await admin.exists(`${REDIS_DOCUMENT_NAMESPACE}:ttl/short`)).toBe(0);
      expect(await documents.list('ttl/')).toEqual([['ttl/long', 'kept']]);
    });

    it('lists by literal prefix, sorted, across SCAN pages, ignoring other keys', async () => {
      const database = nextDatabase++;
      const { documents } = await open({}, database);
      const admin = createClient({ url: `${server.url}/${database}` });
      await admin.connect();
      onTestFinished(() => admin.close());
      await documents.set('list/b', 2);
      await documents.set('list/a', 1);
      await documents.set('list/c*', 3);
      await documents.set('listing', 'other prefix');
      await documents.set('li?t/x', 'glob characters are literal');
      await documents.set('lisst/x', 'would match li?t as a glob');
      await documents.set('[l]ist/y', 'brackets');
      // Keys of other kinds and outside the namespace are not documents.
      await admin.hSet(`${REDIS_DOCUMENT_NAMESPACE}:list/hash`, 'f', 'v');
      await admin.set('list/outside-namespace', '{"value":1}');

      expect(await documents.list('list/')).toEqual([
        ['list/a', 1],
        ['list/b', 2],
        ['list/c*', 3],
      ]);
      expect(await documents.list('li?t/')).toEqual([['li?t/x', 'glob characters are literal']]);
      expect(await documents.list('[l]ist/')).toEqual([['[l]ist/y', 'brackets']]);
      expect(await documents.list('nothing/')).toEqual([]);
      expect((await documents.list('')).map(([k]) => k)).toContain('listing');

      // Far more keys than one SCAN page (500), each listed exactly once.
      const many = Array.from({ length: 1300 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
      const multi = admin.multi();
      for (const key of many) multi.set(`${REDIS_DOCUMENT_NAMESPACE}:${key}`, JSON.stringify({ value: key }));
      await multi.exec();
      const listed = await documents.list<string>('many/');
      expect(listed.map(([k]) => k)).toEqual(many);
      expect(listed.every(([k, v]) => k === v)).toBe(true);
    });

    it('escapes every glob character', () => {
      expect(escapeGlob('a*b?c[d]e\\f')).toBe('a\\*b\\?c\\[d\\]e\\\\f');
    });
  });

  describe('counters', () => {
    const windowStart = Math.floor(Date.now() / 60_000) * 60_000;

    it('adds 50 parallel syncs from 4 replicas (each its own connection) up exactly', async () => {
      const replicas = await Promise.all([open(), open(), open(), open()]);
      const keys = ['ip:152.152.152.152', 'path:/categories/*', 'ip+path:152.152.152.152|/items/*'];
      const expected = new Map<string, number>();
      const syncs = Array.from({ length: 50 }, (_, i) => {
        const replica = i % 4;
        const order = replica % 2 === 0 ? keys : [...keys].reverse();
        const deltas: CounterDelta[] = order.map((key, k) => ({
          key,
          windowStart,
          windowMs: 60_000,
          delta: i + k + 1,
        }));
        for (const d of deltas) expected.set(d.key, (expected.get(d.key) ?? 0) + d.delta);
        return replicas[replica]!.counters.sync(`replica-${replica}`, deltas);
      });
      const results = await Promise.all(syncs);

      for (const key of keys) {
        const seen = results.map((r) => r.totals.get(`${key}@${windowStart}`) ?? -1);
        expect(Math.max(...seen)).toBe(expected.get(key));
        // Every total a sync saw is a distinct running sum: no two syncs interleaved inside one.
        expect(new Set(seen).size).toBe(seen.length);
      }
      const read = await replicas[0]!.counters.sync(
        'reader',
        keys.map((key) => ({ key, windowStart, windowMs: 60_000, delta: 0 })),
      );
      for (const key of keys) expect(read.totals.get(`${key}@${windowStart}`)).toBe(expected.get(key));
      const [first] = keys as [string];
      expect(await admin.get(`${COUNTER_KEY_PREFIX}${first}@${windowStart}`)).toBe(
        String(expected.get(first)),
      );
    });

    it('merges a window named twice in one batch, and keeps windows apart', async () => {
      const { counters } = await open();
      const d = { key: 'dup', windowMs: 1_000 };
      const { totals } = await counters.sync('r', [
        { ...d, windowStart: 1_000, delta: 2 },
        { ...d, windowStart: 1_000, delta: 3 },
        { ...d, windowStart: 2_000, delta: 4 },
      ]);
      expect(totals).toEqual(
        new Map([
          ['dup@1000', 5],
          ['dup@2000', 4],
        ]),
      );
      await expect(counters.sync('r', [{ ...d, windowStart: 0, delta: -1 }])).rejects.toThrow(RangeError);
      await expect(counters.sync('', [])).rejects.toThrow(TypeError);
    });

    it('expires a window two window lengths after its last write, and the replica set after the horizon', async () => {
      const { counters } = await open({ replicaTtlMs: 3000 });
      await counters.sync('exp', [{ key: 'exp', windowStart, windowMs: 10_000, delta: 1 }]);
      const pttl = await admin.pTTL(`${COUNTER_KEY_PREFIX}exp@${windowStart}`);
      expect(pttl).toBeGreaterThan(19_000);
      expect(pttl).toBeLessThanOrEqual(20_000);
      const replicasTtl = await admin.pTTL(REPLICAS_KEY);
      expect(replicasTtl).toBeGreaterThan(2_000);
      expect(replicasTtl).toBeLessThanOrEqual(3_000);

      await counters.sync('exp', [{ key: 'gone', windowStart, windowMs: 100, delta: 1 }]);
      await sleep(250);
      expect(
        (await counters.sync('exp', [{ key: 'gone', windowStart, windowMs: 100, delta: 0 }])).totals.get(
          `gone@${windowStart}`,
        ),
      ).toBe(0);
    });

    it('counts replicas that synced within the horizon, itself included', async () => {
      const store = await open({ replicaTtlMs: 300 }, nextDatabase++);
      expect((await store.counters.sync('solo', [])).replicas).toBe(1);
      await store.counters.sync('second', []);
      await store.counters.sync('third', []);
      expect((await store.counters.sync('solo', [])).replicas).toBe(3);
      await sleep(150);
      await store.counters.sync('third', []);
      await sleep(200);
      // 'second' last synced 350 ms ago: gone; 'third' 200 ms ago: still live.
      expect((await store.counters.sync('solo', [])).replicas).toBe(2);
      await sleep(350);
      expect((await store.counters.sync('solo', [])).replicas).toBe(1);
    });

    it('splits a large batch into several scripts sent together, with the same totals', async () => {
      const { counters } = await open({ maxKeysPerScript: 7 });
      const deltas = Array.from({ length: 20 }, (_, i) => ({
        key: `big-${i}`,
        windowStart,
        windowMs: 60_000,
        delta: i + 1,
      }));
      await counters.sync('batch', deltas);
      const { totals, replicas } = await counters.sync('batch', deltas);
      expect(totals.size).toBe(20);
      for (const d of deltas) expect(totals.get(`${d.key}@${windowStart}`)).toBe(2 * d.delta);
      expect(replicas).toBeGreaterThanOrEqual(1);
    });

    it('loads the script again after the server forgot it (EVALSHA → EVAL fallback)', async () => {
      const { counters } = await open();
      const delta = [{ key: 'flush', windowStart, windowMs: 60_000, delta: 1 }];
      expect((await counters.sync('r', delta)).totals.get(`flush@${windowStart}`)).toBe(1);
      await admin.scriptFlush();
      expect((await counters.sync('r', delta)).totals.get(`flush@${windowStart}`)).toBe(2);
    });
  });

  describe('opening and closing', () => {
    it('is what openStore gives for a redis:// URL, with the password masked', async () => {
      const store = await openStore(server.url, { dataDir: '/nonexistent' });
      try {
        expect(store.kind).toBe('redis');
        expect(store.displayUrl).toBe(`redis://:***@127.0.0.1:${server.port}`);
        await expect(store.check()).resolves.toBeUndefined();
        const { totals, replicas } = await store.counters.sync('via-open-store', [
          { key: 'k', windowStart: 0, windowMs: 10, delta: 1 },
        ]);
        expect(totals.get('k@0')).toBeGreaterThanOrEqual(1);
        expect(replicas).toBeGreaterThanOrEqual(1);
      } finally {
        await store.close();
      }
    });

    it('refuses a wrong or missing password with StoreUnavailableError, without the password', async () => {
      const wrong = `redis://:not-${server.password}@127.0.0.1:${server.port}`;
      const error = await openStore(wrong, { dataDir: '/x' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as Error).message).toMatch(/^Cannot use the Redis store redis:\/\/:\*\*\*@.*WRONGPASS/);
      expect((error as Error).message).not.toContain(server.password);
      const none = await openStore(`redis://127.0.0.1:${server.port}`, { dataDir: '/x' }).catch(
        (e: unknown) => e,
      );
      expect(none).toBeInstanceOf(StoreUnavailableError);
      expect((none as Error).message).toMatch(/NOAUTH/);
    });

    it('rejects calls after close() and does not reconnect', async () => {
      const store = await open();
      const clients = async () => (await admin.clientList()).filter((c) => c.name === 'meli-proxy').length;
      const before = await clients();
      await store.close();
      await store.close(); // idempotent
      await expect(store.check()).rejects.toThrow(/closed/);
      await expect(store.documents.get('x')).rejects.toThrow(/closed/);
      await expect(store.documents.list('x')).rejects.toThrow(/closed/);
      await expect(store.counters.sync('r', [])).rejects.toThrow(/closed/);
      await sleep(50);
      expect(await clients()).toBe(before - 1);
    });
  });
});
