/**
 * PostgreSQL going away and coming back while a store is open: calls reject within their timeouts
 * instead of hanging, nothing crashes, and the same store works again once the server is back.
 * Runs on a server of its own: stopping the shared one would break other test files.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store, type StoreLogger } from '../../src/store/index.js';
import { createDatabase, type PostgresServer, startPostgres } from '../support/postgres.js';
import { type FreezableProxy, startFreezableProxy } from './freezable-proxy.js';

const TUNING = { connectTimeoutMs: 500, queryTimeoutMs: 800, checkTimeoutMs: 400, cleanupIntervalMs: 0 };
/**
 * Only tells "rejected" from "hung" (a busy machine may act seconds late); the error messages say
 * which timeout acted.
 */
const BOUND_MS = 20_000;

function captureLogger(): StoreLogger & { lines: string[] } {
  const lines: string[] = [];
  const push = (obj: object, msg?: string) => {
    lines.push(
      `${msg ?? ''} ${JSON.stringify(obj, (_k, v: unknown) => (v instanceof Error ? v.message : v))}`,
    );
  };
  return { lines, info: push, warn: push, error: push };
}

async function settleWithin<T>(promise: Promise<T>): Promise<{ ok: boolean; ms: number; error?: unknown }> {
  const started = Date.now();
  try {
    await promise;
    return { ok: true, ms: Date.now() - started };
  } catch (error) {
    return { ok: false, ms: Date.now() - started, error };
  }
}

describe('PostgreSQL outage', () => {
  let server: PostgresServer;
  let proxy: FreezableProxy;
  let store: Store;
  let password: string;
  const logger = captureLogger();
  const delta = (n: number) => [{ key: 'outage', windowStart: 0, windowMs: 60_000, delta: n }];

  beforeAll(async () => {
    server = await startPostgres();
    const db = await createDatabase(server.url);
    password = new URL(db.url).password;
    proxy = await startFreezableProxy(server.port);
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    store = await openStore(viaProxy.toString(), { dataDir: '/x', migrate: true, logger, postgres: TUNING });
    await store.documents.set('rules/kept', { limit: 10 });
  });
  afterAll(async () => {
    await store?.close();
    await proxy?.close();
    await server?.stop();
  });

  it('rejects promptly while the server is stopped, then recovers on the same port without reopening', async () => {
    expect((await store.counters.sync('a', delta(1))).totals.get('outage@0')).toBe(1);
    const port = server.port;
    await server.stopServer();

    for (const call of [
      store.check(),
      store.counters.sync('a', delta(1)),
      store.documents.get('rules/kept'),
    ]) {
      const result = await settleWithin(call);
      expect(result.ok).toBe(false);
      expect(result.ms).toBeLessThan(BOUND_MS);
    }

    await server.startServer();
    expect(server.port).toBe(port);
    await expect(store.check()).resolves.toBeUndefined();
    expect((await store.counters.sync('a', delta(1))).totals.get('outage@0')).toBe(2);
    expect(await store.documents.get('rules/kept')).toEqual({ limit: 10 });
  });

  it('rejects within the timeouts while the network is frozen, then recovers', async () => {
    // Open several pooled connections first, so the calls below get stuck mid-query on them
    // (bounded by the query timeout) rather than only while connecting (the connect timeout).
    await Promise.all(Array.from({ length: 6 }, () => store.documents.list('rules/')));
    proxy.freeze();
    const calls = [
      store.check(),
      store.counters.sync('a', delta(1)),
      store.documents.get('rules/kept'),
      store.documents.list('rules/'),
    ];
    const results = await Promise.all(calls.map(settleWithin));
    for (const result of results) {
      expect(result.ok).toBe(false);
      expect(result.ms).toBeLessThan(BOUND_MS);
    }
    const messages = results.map((r) => (r.error as Error).message);
    expect(messages[0]).toMatch(/did not answer within 400 ms/);
    expect(messages).toContain('Query read timeout');

    proxy.thaw();
    await expect(store.check()).resolves.toBeUndefined();
    expect((await store.counters.sync('a', delta(1))).totals.get('outage@0')).toBeGreaterThanOrEqual(3);
    expect(await store.documents.list('rules/')).toEqual([['rules/kept', { limit: 10 }]]);
  });

  it('logged the lost connections without the password', () => {
    expect(logger.lines.some((l) => l.includes('lost an idle PostgreSQL connection'))).toBe(true);
    for (const line of logger.lines) expect(line).not.toContain(password);
  });
});
