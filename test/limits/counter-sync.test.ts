import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CounterSync, type CounterSyncOptions } from '../../src/limits/counter-sync.js';
import { Limiter } from '../../src/limits/limiter.js';
import { parseRules } from '../../src/limits/rule.js';
import type { CounterBackend } from '../../src/store/types.js';
import { request, T0 } from './helpers.js';
import { MemoryBackend, prng } from './memory-backend.js';

interface Replica {
  limiter: Limiter;
  sync: CounterSync;
}

function replicas(
  n: number,
  rules: unknown[],
  backend: CounterBackend,
  options: Partial<CounterSyncOptions> = {},
): Replica[] {
  return Array.from({ length: n }, (_, i) => {
    const limiter = new Limiter(parseRules(rules, 'test'), { clock: () => Date.now() });
    const sync = new CounterSync(limiter, {
      backend,
      replicaId: `replica-${i}`,
      syncIntervalMs: 100,
      ...options,
    });
    return { limiter, sync };
  });
}

/** Starts the replicas at staggered phases and lets them learn each other before traffic. */
async function warmUp(cluster: Replica[], random: () => number): Promise<void> {
  for (const replica of cluster) {
    await vi.advanceTimersByTimeAsync(Math.floor(random() * 100));
    replica.sync.start();
  }
  await vi.advanceTimersByTimeAsync(T0 - Date.now());
}

/** Awaits a promise that needs fake time to pass (backend delays are timers too). */
async function settle<T>(promise: Promise<T>): Promise<T> {
  let done = false;
  void promise.finally(() => {
    done = true;
  });
  while (!done) await vi.advanceTimersByTimeAsync(5);
  return promise;
}

beforeEach(() => {
  vi.useFakeTimers({ now: T0 - 2000 });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('CounterSync across replicas', () => {
  const RULE = [{ id: 'shared', limit: '1000/10s' }];

  it.each([1, 2, 3])(
    'keeps 4 replicas hammering one 1000/10s key within 1050 and above 950 (seed %i)',
    async (seed) => {
      const random = prng(seed);
      const backend = new MemoryBackend(() => 1 + Math.floor(random() * 15));
      const cluster = replicas(4, RULE, backend);
      await warmUp(cluster, random);
      expect(cluster.every((r) => r.sync.replicas === 4)).toBe(true);

      const perReplica = [0, 0, 0, 0];
      for (let ms = 0; ms < 10_000; ms++) {
        for (let i = 0; i < cluster.length; i++) {
          // 1–3 requests per millisecond per replica: ~8000/s against a limit of 100/s.
          const burst = 1 + Math.floor(random() * 3);
          for (let k = 0; k < burst; k++) if (cluster[i]!.limiter.decide(request()).allowed) perReplica[i]!++;
        }
        await vi.advanceTimersByTimeAsync(1);
      }
      const admitted = perReplica.reduce((a, b) => a + b, 0);
      await settle(Promise.all(cluster.map((r) => r.sync.stop())));
      console.log(`seed ${seed}: admitted ${admitted} (${perReplica.join(' + ')})`);
      expect(admitted).toBeLessThanOrEqual(1050);
      expect(admitted).toBeGreaterThanOrEqual(950);
      // Every admission reached the store exactly once.
      expect(backend.total('shared', T0)).toBe(admitted);
      expect(backend.maxInFlightPerReplica).toBe(1);
    },
    30_000,
  );

  it('does not starve a key whose traffic all lands on one replica', async () => {
    const random = prng(7);
    const backend = new MemoryBackend(() => 1 + Math.floor(random() * 15));
    const cluster = replicas(4, RULE, backend);
    await warmUp(cluster, random);
    let admitted = 0;
    for (let ms = 0; ms < 10_000; ms++) {
      if (cluster[0]!.limiter.decide(request()).allowed) admitted++;
      await vi.advanceTimersByTimeAsync(1);
    }
    await settle(Promise.all(cluster.map((r) => r.sync.stop())));
    expect(admitted).toBeGreaterThanOrEqual(950);
    expect(admitted).toBeLessThanOrEqual(1000);
    expect(backend.total('shared', T0)).toBe(admitted);
  }, 30_000);

  it('is exact with a single replica', async () => {
    const backend = new MemoryBackend();
    const [only] = replicas(1, [{ id: 'k', limit: '10/m' }], backend);
    await warmUp([only!], prng(1));
    let admitted = 0;
    for (let i = 0; i < 15; i++) if (only!.limiter.decide(request()).allowed) admitted++;
    expect(admitted).toBe(10);
    await settle(only!.sync.stop());
    expect(backend.total('k', T0)).toBe(10);
  });

  it('carries the previous window total from the store into the sliding estimate', async () => {
    const backend = new MemoryBackend();
    const cluster = replicas(2, [{ id: 'k', limit: '100/10s' }], backend);
    await warmUp(cluster, prng(2));
    // Replica 0 spends its share of the first window over a few sync rounds; replica 1 sees none of it locally.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 10; i++) cluster[0]!.limiter.decide(request());
      await vi.advanceTimersByTimeAsync(100);
    }
    const first = backend.total('k', T0);
    expect(first).toBeGreaterThan(90);
    // Into the next window: replica 1 must count the previous window as seen by the store.
    await vi.advanceTimersByTimeAsync(T0 + 10_000 - Date.now());
    // Replica 1 touches the key and learns the previous total through its pushes.
    cluster[1]!.limiter.decide(request());
    await vi.advanceTimersByTimeAsync(300);
    let admitted = 0;
    for (let i = 0; i < 100; i++) if (cluster[1]!.limiter.decide(request()).allowed) admitted++;
    // ~97% of the previous window still weighs: only a few requests may pass.
    expect(admitted).toBeLessThanOrEqual(100 - Math.floor(first * 0.96) + 1);
    await settle(Promise.all(cluster.map((r) => r.sync.stop())));
  });
});

describe('CounterSync delivery and outages', () => {
  const RULE = [{ id: 'k', limit: '1000/m' }];

  it('keeps deltas of failed pushes and re-sends them once; reports each transition once', async () => {
    const backend = new MemoryBackend();
    const changes: Array<[boolean, string | undefined]> = [];
    const [replica] = replicas(1, RULE, backend, {
      onStateChange: (ok, error) => changes.push([ok, error?.message]),
    });
    const { limiter, sync } = replica!;
    sync.start();
    await vi.advanceTimersByTimeAsync(T0 - Date.now());
    for (let i = 0; i < 5; i++) limiter.decide(request());
    await vi.advanceTimersByTimeAsync(200);
    expect(backend.total('k', T0)).toBe(5);

    backend.down = true;
    for (let i = 0; i < 7; i++) limiter.decide(request());
    await vi.advanceTimersByTimeAsync(2000);
    expect(sync.healthy).toBe(false);
    expect(sync.lastError?.message).toContain('ECONNREFUSED');
    expect(limiter.stats().pendingSync).toBe(1);

    backend.down = false;
    await vi.advanceTimersByTimeAsync(300);
    expect(sync.healthy).toBe(true);
    expect(backend.total('k', T0)).toBe(12);
    expect(limiter.stats().pendingSync).toBe(0);
    // Dozens of failed pushes, two transitions.
    expect(changes).toEqual([
      [false, 'connect ECONNREFUSED 127.0.0.1:5432'],
      [true, undefined],
    ]);
    await settle(sync.stop());
  });

  it('is at-least-once: an answer lost after the store applied a push re-sends it', async () => {
    const backend = new MemoryBackend();
    const [replica] = replicas(1, RULE, backend);
    const { limiter, sync } = replica!;
    await vi.advanceTimersByTimeAsync(T0 - Date.now());
    for (let i = 0; i < 3; i++) limiter.decide(request());
    backend.loseAnswers = true;
    await settle(sync.flush());
    backend.loseAnswers = false;
    await settle(sync.flush());
    // Over-counted (the safe direction), by exactly that one batch.
    expect(backend.total('k', T0)).toBe(6);
    await settle(sync.flush());
    expect(backend.total('k', T0)).toBe(6);
  });

  it('keeps one push in flight and marks a slow store unhealthy', async () => {
    let release: (() => void) | undefined;
    let calls = 0;
    const slow: CounterBackend = {
      sync: async () => {
        calls++;
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return { totals: new Map(), replicas: 1 };
      },
    };
    const states: boolean[] = [];
    const [replica] = replicas(1, RULE, slow, { timeoutMs: 500, onStateChange: (ok) => states.push(ok) });
    replica!.sync.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(1);
    expect(replica!.sync.healthy).toBe(false);
    release?.();
    await vi.advanceTimersByTimeAsync(1);
    expect(replica!.sync.healthy).toBe(true);
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toBe(2);
    expect(states).toEqual([false, true]);
    const stopped = replica!.sync.stop();
    release?.();
    await vi.advanceTimersByTimeAsync(1);
    release?.();
    await stopped;
  });

  async function outage(onStoreError: 'open' | 'deny'): Promise<{ during: number; after: number }> {
    const backend = new MemoryBackend();
    const cluster = replicas(2, [{ id: 'k', limit: '100/m' }], backend, { onStoreError });
    await warmUp(cluster, prng(3));
    const [a] = cluster;
    for (let i = 0; i < 10; i++) a!.limiter.decide(request());
    await vi.advanceTimersByTimeAsync(200);
    backend.down = true;
    await vi.advanceTimersByTimeAsync(200);
    expect(a!.sync.healthy).toBe(false);
    let during = 0;
    for (let i = 0; i < 200; i++) if (a!.limiter.decide(request()).allowed) during++;
    await vi.advanceTimersByTimeAsync(1000);
    for (let i = 0; i < 200; i++) if (a!.limiter.decide(request()).allowed) during++;
    backend.down = false;
    await vi.advanceTimersByTimeAsync(300);
    expect(a!.sync.healthy).toBe(true);
    // Resynchronised: the store holds every admission, and the replica knows the total.
    expect(backend.total('k', T0)).toBe(10 + during);
    let after = 0;
    for (let i = 0; i < 200; i++) if (a!.limiter.decide(request()).allowed) after++;
    await settle(Promise.all(cluster.map((r) => r.sync.stop())));
    return { during, after };
  }

  it('fails open by default: limits locally with the last-known total', async () => {
    const { during, after } = await outage('open');
    expect(during).toBe(90);
    expect(after).toBe(0);
  });

  it("fails closed with onStoreError 'deny': spends the current share, then rejects", async () => {
    const { during, after } = await outage('deny');
    // Share with 2 replicas, known 10: floor(0.25 × 90 / 2) = 11.
    expect(during).toBe(11);
    expect(after).toBeGreaterThan(0);
  });

  it('drops deltas of windows no decision reads any more', async () => {
    const backend = new MemoryBackend();
    const [replica] = replicas(1, [{ id: 'k', limit: '10/s' }], backend);
    const { limiter, sync } = replica!;
    await vi.advanceTimersByTimeAsync(T0 - Date.now());
    backend.down = true;
    for (let i = 0; i < 5; i++) limiter.decide(request());
    await vi.advanceTimersByTimeAsync(3000);
    expect(limiter.collectDeltas()).toEqual([]);
    backend.down = false;
    await settle(sync.flush());
    expect(backend.total('k', T0)).toBe(0);
  });
});

describe('RateLimit headers under approximate sharing', () => {
  it("a refusal by the replica's share reports the quota it knows is left and when the share refills", async () => {
    const backend = new MemoryBackend(() => 1);
    const cluster = replicas(2, [{ id: 'shared', limit: '100/m' }], backend);
    await warmUp(cluster, prng(7));
    expect(cluster.every((r) => r.sync.replicas === 2)).toBe(true);

    // A burst on one replica, faster than a push: its share (c/R of 100) runs out first.
    const a = cluster[0]!.limiter;
    const decisions = Array.from({ length: 60 }, () => a.decide(request()));
    const admitted = decisions.filter((d) => d.allowed).length;
    const refused = decisions.filter((d) => !d.allowed);
    expect(admitted).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    for (const d of refused) {
      expect(d.rejectedBy).toBe('shared');
      // Not r=0: 100 − what this replica admitted is still left in the window as far as it knows.
      expect(d.remaining).toBe(100 - admitted);
      // The share refills with the next acknowledged push, within the sync interval.
      expect(d.retryAfterSeconds).toBe(1);
      expect(d.resetSeconds).toBe(1);
    }
    for (const replica of cluster) await settle(replica.sync.stop());
  });
});
