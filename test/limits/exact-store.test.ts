/**
 * Exact shared counting against real PostgreSQL and Redis: the store's one atomic operation admits
 * exactly the cap under concurrent callers, counts a request in all of its counters or none, weighs
 * the previous window like the limiter does; and a replica whose store fails lets --on-store-error
 * decide (a stopped Redis: 'open' admits, 'deny' refuses with Retry-After 1).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CounterSync } from '../../src/limits/counter-sync.js';
import { Limiter, STORE_PENDING } from '../../src/limits/limiter.js';
import { parseRules } from '../../src/limits/rule.js';
import { openStore } from '../../src/store/index.js';
import type { ExactCounter, ExactCounterStore, Store } from '../../src/store/types.js';
import { type Backend, postgresBackend, redisBackend } from '../support/backends.js';
import { type RedisServer, skipWithoutRedis, startRedis } from '../support/redis.js';
import { request, T0 } from './helpers.js';

const MINUTE = 60_000;

function counter(key: string, cap: number, windowStart = T0, leftMs = MINUTE): ExactCounter {
  return { key, windowStart, windowMs: MINUTE, leftMs, cap };
}

const backends: Backend[] = [postgresBackend(), ...(skipWithoutRedis() ? [] : [redisBackend()])];

describe.each(backends.map((b) => [b.name, b] as const))('exact counting on %s', (_, backend) => {
  let store: Store;
  let exact: ExactCounterStore;
  beforeAll(async () => {
    store = await backend.open();
    exact = store.exact!;
    expect(exact).toBeDefined();
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await backend.cleanup();
  });

  it('admits exactly the cap of 200 concurrent takes, and the total is the cap', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, () => exact.take([counter('race', 37)])));
    expect(results.filter((r) => r.admitted)).toHaveLength(37);
    // Each admission saw a distinct count: 1..37.
    const seen = results.filter((r) => r.admitted).map((r) => r.current[0]);
    expect(new Set(seen).size).toBe(37);
    const { totals } = await store.counters.sync('probe', [
      { key: 'race', windowStart: T0, windowMs: MINUTE, delta: 0 },
    ]);
    expect(totals.get(`race@${T0}`)).toBe(37);
  });

  it('counts a request in all of its counters or in none', async () => {
    expect((await exact.take([counter('both-a', 5), counter('both-b', 1)])).admitted).toBe(true);
    const refused = await exact.take([counter('both-a', 5), counter('both-b', 1)]);
    expect(refused).toEqual({ admitted: false, previous: [0, 0], current: [1, 1] });
    // The refusal by b took nothing from a.
    expect((await exact.take([counter('both-a', 2)])).current).toEqual([2]);
  });

  it('weighs the previous window by the time left, rounded down, and adds to what sync pushed', async () => {
    await store.counters.sync('replica-x', [
      { key: 'weighed', windowStart: T0 - MINUTE, windowMs: MINUTE, delta: 10 },
      { key: 'weighed', windowStart: T0, windowMs: MINUTE, delta: 2 },
    ]);
    // Half the window left: floor(10 × 0.5) + 2 = 7, so a cap of 8 has room for one.
    const first = await exact.take([counter('weighed', 8, T0, MINUTE / 2)]);
    expect(first).toEqual({ admitted: true, previous: [10], current: [3] });
    const second = await exact.take([counter('weighed', 8, T0, MINUTE / 2)]);
    expect(second).toEqual({ admitted: false, previous: [10], current: [3] });
  });
});

describe('decide all, then commit, with the store deciding', () => {
  const backend = postgresBackend();
  afterAll(() => backend.cleanup());

  it("a refusal by the store gives back what the request's other rules had counted", async () => {
    const store = await backend.open();
    const rules = parseRules(
      [
        { id: 'wide', limit: '1000/m', counting: 'approximate' },
        { id: 'tiny', limit: '1/m', counting: 'exact' },
      ],
      'test',
    );
    const replicas = ['a', 'b'].map((id) => {
      const limiter = new Limiter(rules);
      const sync = new CounterSync(limiter, { backend: store.counters, exact: store.exact, replicaId: id });
      return { limiter, sync };
    });
    try {
      const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
      // b takes tiny's one request; a does not know yet, so the store decides and refuses.
      expect(b.limiter.decide(request())).toBe(STORE_PENDING);
      expect((await b.sync.decideByStore(b.limiter.takeStorePending())).allowed).toBe(true);
      expect(a.limiter.decide(request())).toBe(STORE_PENDING);
      const refused = await a.sync.decideByStore(a.limiter.takeStorePending());
      expect(refused).toMatchObject({ allowed: false, rejectedBy: 'tiny', remaining: 0 });
      // wide was counted while the store decided, and given back with the refusal.
      const wide = a.limiter.inspect(request()).find((usage) => usage.rule.id === 'wide');
      expect(wide?.used).toBe(0);
      expect(a.limiter.ruleStats().find((r) => r.id === 'tiny')?.rejected).toBe(1);
    } finally {
      for (const replica of replicas) await replica.sync.stop();
      await store.close();
    }
  }, 60_000);
});

describe.skipIf(skipWithoutRedis())('a replica whose store fails mid-way', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.dispose());

  it.each([
    ['open', true],
    ['deny', false],
  ] as const)(
    'lets --on-store-error %s decide the exactly counted rules',
    async (onStoreError, allowed) => {
      await redis.start().catch(() => undefined);
      const store = await openStore(redis.url, {
        dataDir: '/nonexistent',
        redis: { commandTimeoutMs: 300, connectTimeoutMs: 300, reconnectMaxDelayMs: 100 },
      });
      const limiter = new Limiter(
        parseRules([{ id: `tiny-${onStoreError}`, limit: '5/m', counting: 'exact' }], 'test'),
      );
      const sync = new CounterSync(limiter, {
        backend: store.counters,
        exact: store.exact,
        onStoreError,
        timeoutMs: 1000,
      });
      try {
        await sync.flush();
        // The store decides while it answers.
        expect(limiter.decide(request(), Date.now())).toBe(STORE_PENDING);
        expect((await sync.decideByStore(limiter.takeStorePending())).allowed).toBe(true);

        await redis.stop();
        // The operation fails: this request, and the ones after it without asking, follow the setting.
        expect(limiter.decide(request(), Date.now())).toBe(STORE_PENDING);
        const failed = await sync.decideByStore(limiter.takeStorePending());
        expect(sync.healthy).toBe(false);
        const next = limiter.decide(request(), Date.now());
        for (const decision of [failed, next]) {
          expect(decision.allowed).toBe(allowed);
          if (!allowed)
            expect(decision).toMatchObject({ rejectedBy: `tiny-${onStoreError}`, retryAfterSeconds: 1 });
        }
      } finally {
        await sync.stop();
        await store.close();
      }
    },
    30_000,
  );
});
