/**
 * Redis going away and coming back while a store is open: calls reject within their timeouts
 * instead of hanging, nothing crashes, and the same store works again once the server answers.
 * Runs on a server of its own, since it stops and freezes it.
 */
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store, type StoreLogger } from '../../src/store/index.js';
import { type RedisServer, skipWithoutRedis, startRedis, testPassword } from '../support/redis.js';

const TUNING = {
  connectTimeoutMs: 3000,
  commandTimeoutMs: 2000,
  checkTimeoutMs: 1500,
  reconnectMaxDelayMs: 100,
};
/**
 * Calls refused while disconnected do not wait for any timeout: they end before the shortest one,
 * which any call that waited would have to outlast.
 */
const OFFLINE_BOUND_MS = TUNING.checkTimeoutMs;
/** Only tells "rejected" from "hung": the error messages say which timeout acted. */
const BOUND_MS = 20_000;
/** Reconnecting taking longer than this means it never will. */
const RECOVERY_HANG_MS = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function captureLogger(): StoreLogger & { lines: string[] } {
  const lines: string[] = [];
  const push = (obj: object, msg?: string) => {
    lines.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  };
  return { lines, info: push, warn: push, error: push };
}

async function settle(promise: Promise<unknown>): Promise<{ ok: boolean; ms: number; error?: Error }> {
  const started = Date.now();
  try {
    await promise;
    return { ok: true, ms: Date.now() - started };
  } catch (error) {
    return { ok: false, ms: Date.now() - started, error: error as Error };
  }
}

/** Retries `check` until it passes or `ms` run out; resolves with how long that took. */
async function recovered(store: Store, ms = RECOVERY_HANG_MS): Promise<number> {
  const started = Date.now();
  for (;;) {
    const result = await settle(store.check());
    if (result.ok) return Date.now() - started;
    if (Date.now() - started > ms) throw result.error;
    await sleep(20);
  }
}

/**
 * A TCP forwarder that can turn every connection open so far into a black hole (bytes sent into it
 * vanish, nothing comes back, nothing is closed) while new connections work: what a client sees
 * when a server dies without a word or a failover moves the address elsewhere.
 */
async function startForwarder(targetPort: number) {
  const live = new Set<[Socket, Socket]>();
  const dead = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    live.add(pair);
    for (const s of pair) {
      s.on('error', () => undefined);
      s.on('close', () => {
        live.delete(pair);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    blackholeExisting() {
      for (const [client, upstream] of live) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.removeAllListeners('close');
        upstream.removeAllListeners('close');
        upstream.destroy();
        client.removeAllListeners('data');
        client.on('data', () => undefined); // swallow, never answer, never close
        dead.add(client);
      }
      live.clear();
    },
    async close() {
      for (const s of dead) s.destroy();
      for (const pair of live) for (const s of pair) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe.skipIf(skipWithoutRedis())('Redis outage', () => {
  let server: RedisServer;
  let store: Store;
  const logger = captureLogger();
  const delta = (n: number) => [{ key: 'outage', windowStart: 0, windowMs: 60_000, delta: n }];

  beforeAll(async () => {
    server = await startRedis({ password: testPassword() });
    store = await openStore(server.url, { dataDir: '/x', logger, redis: TUNING });
  });
  afterAll(async () => {
    await store?.close();
    await server?.dispose();
  });

  it('rejects at once while the server is down, then recovers on the same port without reopening', async () => {
    await store.documents.set('rules/kept', { limit: 10 });
    expect((await store.counters.sync('a', delta(1))).totals.get('outage@0')).toBe(1);
    const port = server.port;
    await server.stop();
    // Calls already written when the server died fail with the socket's own error: wait until the
    // client has noticed, so that everything below is a call made while disconnected.
    for (let tries = 0; ; tries++) {
      const probe = await settle(store.check());
      if (/is not connected/.test(probe.error?.message ?? '')) break;
      if (tries * 20 > RECOVERY_HANG_MS) throw new Error('the client never noticed the server was gone');
      await sleep(20);
    }

    const calls = [
      store.check(),
      store.counters.sync('a', delta(1)),
      store.documents.get('rules/kept'),
      store.documents.set('rules/new', 1),
      store.documents.delete('rules/kept'),
      store.documents.list('rules/'),
    ];
    for (const result of await Promise.all(calls.map(settle))) {
      expect(result.ok).toBe(false);
      expect(result.ms).toBeLessThan(OFFLINE_BOUND_MS);
      expect(result.error?.message).toMatch(/is not connected \(reconnecting in the background\)/);
      expect(result.error?.message).not.toContain(server.password);
    }
    // Reconnection attempts keep failing in the background without crashing anything.
    await sleep(500);

    await server.start();
    expect(server.port).toBe(port);
    // Back once a reconnection attempt (every 100 ms at most here) gets through.
    await recovered(store);
    // Nothing was persisted: the server came back empty, and the store simply goes on.
    expect((await store.counters.sync('a', delta(1))).totals.get('outage@0')).toBe(1);
    await store.documents.set('rules/kept', { limit: 11 });
    expect(await store.documents.list('rules/')).toEqual([['rules/kept', { limit: 11 }]]);
  });

  it('rejects within the timeouts while the server is frozen, then recovers', async () => {
    server.pause();
    try {
      const calls = [
        store.check(),
        store.counters.sync('a', delta(1)),
        store.documents.get('rules/kept'),
        store.documents.list('rules/'),
      ];
      const results = await Promise.all(calls.map(settle));
      for (const result of results) {
        expect(result.ok).toBe(false);
        expect(result.ms).toBeLessThan(BOUND_MS);
      }
      expect(results[0]?.error?.message).toMatch(/did not answer within 1500 ms/);
      // The connection that stopped answering was dropped; a new one cannot get through the
      // handshake while the server is frozen, so calls are refused at once meanwhile.
      const meanwhile = await settle(store.check());
      expect(meanwhile.ok).toBe(false);
      expect(meanwhile.ms).toBeLessThan(BOUND_MS);
    } finally {
      server.resume();
    }
    await recovered(store);
    expect((await store.counters.sync('a', delta(1))).totals.get('outage@0')).toBeGreaterThanOrEqual(2);
    expect(await store.documents.get('rules/kept')).toEqual({ limit: 11 });
  });

  it('replaces a connection that went silent for good (half-open), with no server change', async () => {
    const forwarder = await startForwarder(server.port);
    const viaForwarder = new URL(server.url);
    viaForwarder.port = String(forwarder.port);
    const own = await openStore(viaForwarder.toString(), { dataDir: '/x', logger, redis: TUNING });
    try {
      expect(await own.documents.get('rules/kept')).toEqual({ limit: 11 });
      forwarder.blackholeExisting();
      const stuck = await settle(own.documents.get('rules/kept'));
      expect(stuck.ok).toBe(false);
      expect(stuck.ms).toBeLessThan(BOUND_MS);
      expect(stuck.error?.message).toMatch(/did not answer within 2000 ms/);
      // Without replacing the connection, every later call would time out the same way.
      await recovered(own);
      expect(await own.documents.get('rules/kept')).toEqual({ limit: 11 });
    } finally {
      await own.close();
      await forwarder.close();
    }
  });

  it('logged the outage a bounded number of times, and never the password', () => {
    const lost = logger.lines.filter((l) => l.includes('lost the Redis connection'));
    expect(lost.length).toBeGreaterThanOrEqual(1);
    expect(lost.length).toBeLessThanOrEqual(3);
    expect(logger.lines.some((l) => l.includes('Redis stopped answering'))).toBe(true);
    expect(logger.lines.some((l) => l.includes('reconnected to Redis'))).toBe(true);
    for (const line of logger.lines) expect(line).not.toContain(server.password);
  });
});
