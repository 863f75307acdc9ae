/**
 * The refresh lock on a real PostgreSQL, and replicas sharing the token through the PostgreSQL
 * store (in one process here; test/auth/fleet.test.ts runs real CLI processes).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { advisoryKey, PostgresLock } from '../../src/auth/lock-postgres.js';
import { tokenRefresher } from '../../src/auth/proxy-auth.js';
import type { TokenBackend } from '../../src/auth/token-backend.js';
import { TokenManager } from '../../src/auth/token-manager.js';
import { openStore } from '../../src/store/index.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';
import { loggedInToken, sharedTokens } from './helpers/tokens.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('PostgresLock', () => {
  let db: TestDatabase;
  const locks: PostgresLock[] = [];
  const lock = (): PostgresLock => {
    const created = new PostgresLock(db.url);
    locks.push(created);
    return created;
  };

  beforeAll(async () => {
    db = await testDatabase();
  });
  afterAll(async () => {
    await Promise.allSettled(locks.map((l) => l.close()));
    await db?.drop();
  });

  it('derives a stable 64-bit key per name', () => {
    expect(advisoryKey('token-refresh')).toBe(advisoryKey('token-refresh'));
    expect(advisoryKey('token-refresh')).not.toBe(advisoryKey('other'));
    expect(BigInt(advisoryKey('token-refresh'))).toBeLessThan(2n ** 63n);
  });

  it('lets one holder in at a time across connections, and waits for the holder to let go', async () => {
    const a = lock();
    const b = lock();
    const held = await a.acquire('token-refresh', { waitMs: 1000, ttlMs: 10_000 });
    expect(held).toBeDefined();
    const started = Date.now();
    expect(await b.acquire('token-refresh', { waitMs: 200, ttlMs: 10_000 })).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(
      await b.acquire('another-lock', { waitMs: 200, ttlMs: 10_000 }).then((h) => h?.release()),
    ).toBeUndefined();

    const waiting = b.acquire('token-refresh', { waitMs: 5000, ttlMs: 10_000 });
    await sleep(100);
    await held!.release();
    await held!.release(); // twice is harmless
    const next = await waiting;
    expect(next).toBeDefined();
    await next!.release();
  });

  it('frees the lock of a holder that hangs longer than the ttl, or whose connection dies', async () => {
    const a = lock();
    const b = lock();
    const hung = await a.acquire('token-refresh', { waitMs: 1000, ttlMs: 300 });
    expect(hung).toBeDefined();
    const taken = await b.acquire('token-refresh', { waitMs: 5000, ttlMs: 10_000 });
    expect(taken).toBeDefined();
    await hung!.release(); // its session is gone; releasing must not throw
    await taken!.release();

    // A crashed holder: its backend is terminated, as when the process dies.
    const admin = new pg.Client(db.url);
    await admin.connect();
    try {
      const c = lock();
      const doomed = await c.acquire('token-refresh', { waitMs: 1000, ttlMs: 60_000 });
      expect(doomed).toBeDefined();
      await admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'meli-proxy-lock' AND state = 'idle in transaction'",
      );
      const after = await b.acquire('token-refresh', { waitMs: 5000, ttlMs: 10_000 });
      expect(after).toBeDefined();
      await after!.release();
      await doomed!.release();
    } finally {
      await admin.end();
    }
  });

  it('keeps replicas sharing one PostgreSQL store to one refresh per rotation', async () => {
    const meli: FakeMeli = await startFakeMeli({ expiresIn: 1 });
    const stores: TokenBackend[] = [];
    const managers: TokenManager[] = [];
    try {
      await (await openStore(db.url, { dataDir: '/nonexistent', migrate: true })).close();
      for (let i = 0; i < 3; i++) stores.push(await sharedTokens(db.url, '/nonexistent'));
      const first = loggedInToken(meli);
      await stores[0]!.tokens.saveLogin(first);
      const refresher = tokenRefresher({
        tokenUrl: new URL(meli.tokenUrl),
        clientSecret: meli.client.secret,
      });
      for (const store of stores) {
        managers.push(
          new TokenManager({
            tokens: store.tokens,
            lock: lock(),
            refresher,
            logger: silent,
            pollIntervalMs: 200,
          }),
        );
      }
      await Promise.all(managers.map((manager) => manager.start()));
      const reader = stores[0]!.tokens;
      const deadline = Date.now() + 8000;
      while (((await reader.load())?.generation ?? 0) < 4 && Date.now() < deadline) await sleep(50);
      const generation = (await reader.load())!.generation;
      expect(generation).toBeGreaterThanOrEqual(4);
      expect(meli.stats.invalidGrants).toBe(0);
      expect([...meli.stats.refreshCallsByToken.values()].every((calls) => calls === 1)).toBe(true);
      expect(meli.stats.refreshCalls).toBe(generation - 1);
    } finally {
      await Promise.all(managers.map((manager) => manager.stop()));
      await Promise.allSettled(stores.map((store) => store.close()));
      await meli.close();
    }
  });
});
