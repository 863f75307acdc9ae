/** The refresh lock on a real Redis (`SET NX PX` + compare-and-delete). */
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lock } from '../../src/auth/lock.js';
import { redisLockKey } from '../../src/auth/lock-redis.js';
import type { TokenBackend } from '../../src/auth/token-backend.js';
import { type RedisServer, skipWithoutRedis, startRedis } from '../support/redis.js';
import { sharedTokens } from './helpers/tokens.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(skipWithoutRedis())('RedisLock', () => {
  let redis: RedisServer;
  const backends: TokenBackend[] = [];
  /** The lock as `serve` gets it for a redis:// store. */
  const lock = async (): Promise<Lock> => {
    const backend = await sharedTokens(redis.url, '/nonexistent');
    backends.push(backend);
    return backend.lock;
  };

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await Promise.allSettled(backends.map((b) => b.close()));
    await redis?.dispose();
  });

  it('lets one holder in at a time, waits for the release, and expires a hung holder', async () => {
    const a = await lock();
    const b = await lock();
    const held = await a.acquire('token-refresh', { waitMs: 0, ttlMs: 10_000 });
    expect(held).toBeDefined();
    expect(await b.acquire('token-refresh', { waitMs: 100, ttlMs: 10_000 })).toBeUndefined();
    const waiting = b.acquire('token-refresh', { waitMs: 3000, ttlMs: 300 });
    await sleep(50);
    await held!.release();
    const second = await waiting;
    expect(second).toBeDefined();

    // `second` hangs past its 300 ms TTL: the key expires and someone else may take the lock…
    const third = await a.acquire('token-refresh', { waitMs: 3000, ttlMs: 10_000 });
    expect(third).toBeDefined();
    // …and the late release of `second` must not delete the new holder's key.
    await second!.release();
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      expect(await client.exists(redisLockKey('token-refresh'))).toBe(1);
      await third!.release();
      expect(await client.exists(redisLockKey('token-refresh'))).toBe(0);
    } finally {
      await client.close();
    }
  });
});
