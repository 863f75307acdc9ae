/**
 * Exact limits across workers: the primary's LeaseArbiter on its own, and workers (Limiter in lease
 * mode + LeaseClient) against one real arbiter. The transport between them is an async hop with a
 * structured clone each way, like the cluster's IPC channel; the clock is simulated, so every
 * admission can be checked against what one process would have computed at that instant.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  type Decision,
  LEASE_PENDING,
  LeaseArbiter,
  LeaseClient,
  type LeaseTransport,
  Limiter,
  parseRules,
} from '../../src/limits/index.js';
import type { LimitRequest } from '../../src/limits/matcher.js';
import { slidingEstimate } from '../../src/limits/sliding.js';
import { createLogger } from '../../src/logger.js';
import { RateLimiter } from '../../src/server/rate-limit.js';
import { openStore } from '../../src/store/index.js';
import { LogCapture } from '../support/proxy.js';
import { request, T0 } from './helpers.js';

const hop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The arbiter behind an asynchronous, cloning hop (what IPC does); `down` makes calls fail. */
function transport(arbiter: LeaseArbiter, clock: () => number, state = { down: false }): LeaseTransport {
  return {
    async lease(asks) {
      await hop();
      if (state.down) throw new Error('the primary process did not answer limits.lease');
      const grants = arbiter.grant(structuredClone(asks), clock());
      await hop();
      return structuredClone(grants);
    },
    async release(returns) {
      await hop();
      if (state.down) throw new Error('the primary process did not answer limits.release');
      const reclaims = arbiter.release(structuredClone(returns), clock());
      await hop();
      return structuredClone(reclaims);
    },
  };
}

interface Worker {
  readonly limiter: Limiter;
  readonly client: LeaseClient;
  /** What RateLimiter does: decide now, or park until the primary has answered. */
  decide(init?: Parameters<typeof request>[0]): Promise<boolean>;
}

function worker(
  rules: unknown[],
  lease: LeaseTransport,
  clock: () => number,
  onStoreError: 'open' | 'deny' = 'open',
  changes: boolean[] = [],
): Worker {
  const limiter = new Limiter(parseRules(rules, 'test'), { clock });
  // Polls (and returns) every 5 ms of real time: what a reclaim waits for.
  const client = new LeaseClient(limiter, {
    transport: lease,
    clock,
    onStoreError,
    onStateChange: (healthy) => changes.push(healthy),
    syncIntervalMs: 5,
  });
  client.start();
  return {
    limiter,
    client,
    async decide(init) {
      const req: LimitRequest = request(init);
      const now = limiter.decide(req, clock());
      if (now !== LEASE_PENDING) return now.allowed;
      const later = await client.wait(() => limiter.decide(req, clock()));
      return later.allowed;
    },
  };
}

async function settle(workers: readonly Worker[]): Promise<void> {
  for (const w of workers) {
    w.limiter.releaseAll();
    await w.client.stop();
  }
}

describe('LeaseArbiter', () => {
  it('grants at most room / (2 × workers), at least 1 while there is room, and never beyond cap', () => {
    const arbiter = new LeaseArbiter({ workers: () => 2 });
    const ask = { key: 'k', windowMs: 60_000, cap: 100, want: 1000 };
    const sizes: number[] = [];
    for (;;) {
      const [grant] = arbiter.grant([ask], T0 + sizes.length);
      if (grant!.granted === 0) {
        // Nothing left in a window whose predecessor was empty: free again when it ends.
        expect(grant!.retryMs).toBe(60_000 - sizes.length);
        expect(grant!.estimate).toBe(100);
        break;
      }
      sizes.push(grant!.granted);
    }
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(100);
    expect(sizes[0]).toBe(25);
    // Leases shrink as the budget runs out: the last ones are single permits.
    expect(sizes.slice(-3)).toEqual([1, 1, 1]);
    for (let i = 1; i < sizes.length; i++) expect(sizes[i]!).toBeLessThanOrEqual(sizes[i - 1]!);
  });

  it('grants no more than wanted, and takes unused permits back into the right window', () => {
    const arbiter = new LeaseArbiter({ workers: () => 1 });
    const [first] = arbiter.grant([{ key: 'k', windowMs: 10_000, cap: 10, want: 3 }], T0);
    expect(first).toMatchObject({ windowStart: T0, granted: 3, estimate: 3 });
    arbiter.grant([{ key: 'k', windowMs: 10_000, cap: 10, want: 100 }], T0 + 1);
    expect(arbiter.counts('k', T0 + 1)).toEqual({ current: 6, previous: 0 });
    arbiter.release([{ key: 'k', windowStart: T0, windowMs: 10_000, count: 2 }], T0 + 2);
    expect(arbiter.counts('k', T0 + 2)).toEqual({ current: 4, previous: 0 });
    // In the next window the old one is "previous"; a late return still lowers it.
    const [next] = arbiter.grant([{ key: 'k', windowMs: 10_000, cap: 10, want: 1 }], T0 + 10_000);
    expect(next).toMatchObject({ windowStart: T0 + 10_000, granted: 1, estimate: 5 });
    arbiter.release([{ key: 'k', windowStart: T0, windowMs: 10_000, count: 1 }], T0 + 10_001);
    expect(arbiter.counts('k', T0 + 10_001)).toEqual({ current: 1, previous: 3 });
    // A window nobody reads any more is forgotten.
    expect(arbiter.sweep(T0 + 30_000)).toBe(1);
    expect(arbiter.size).toBe(0);
  });

  it('sweeps a slice of the keys at a time, resuming where the last slice stopped', () => {
    const arbiter = new LeaseArbiter({ workers: () => 1 });
    for (let i = 0; i < 25; i++) arbiter.grant([{ key: `old-${i}`, windowMs: 10_000, cap: 10, want: 1 }], T0);
    const later = T0 + 30_000;
    arbiter.grant([{ key: 'live', windowMs: 10_000, cap: 10, want: 1 }], later);
    const removed = [arbiter.sweep(later, 10), arbiter.sweep(later, 10)];
    expect(removed).toEqual([10, 10]);
    expect(arbiter.size).toBe(6);
    // The third slice reaches the end of the keys (the live one stays); the next pass starts over.
    expect(arbiter.sweep(later, 10)).toBe(5);
    expect(arbiter.sweep(later, 10)).toBe(0);
    expect(arbiter.size).toBe(1);
    expect(arbiter.counts('live', later)).toEqual({ current: 1, previous: 0 });
  });

  it('keeps each key apart, by address or by text, through churn and sweeps', () => {
    const arbiter = new LeaseArbiter({ workers: () => 1 });
    const ask = (key: string, want: number, now = T0) =>
      arbiter.grant([{ key, windowMs: 10_000, cap: 1000, want }], now)[0]!.granted;
    // Two rules over the same addresses, and keys that look like addresses but are other text.
    const addresses = Array.from({ length: 3000 }, (_, i) => `10.0.${i >>> 8}.${i & 255}`);
    addresses.forEach((address, i) => {
      ask(`per-ip|${address}`, 1 + (i % 7));
      ask(`other|${address}`, 2);
    });
    expect(ask('per-ip|010.0.0.1', 5)).toBe(5);
    expect(ask('by-header|a|b|10.0.0.1', 6)).toBe(6);
    expect(ask('global', 9)).toBe(9);
    expect(arbiter.size).toBe(6003);
    // Each look-alike has counts of its own, apart from the address it resembles.
    expect(arbiter.counts('per-ip|010.0.0.1', T0)).toEqual({ current: 5, previous: 0 });
    expect(arbiter.counts('per-ip|10.0.0.1', T0)).toEqual({ current: 2, previous: 0 });
    expect(arbiter.counts('by-header|a|b|10.0.0.1', T0)).toEqual({ current: 6, previous: 0 });
    expect(arbiter.counts('b|10.0.0.1', T0)).toBeUndefined();
    // Half the addresses go quiet; the others are asked for again two windows later.
    const later = T0 + 20_000;
    addresses.forEach((address, i) => {
      if (i % 2 === 0) ask(`per-ip|${address}`, 1, later);
    });
    expect(arbiter.sweep(later)).toBe(1500 + 3000 + 3);
    addresses.forEach((address, i) => {
      // Kept keys still find their own counts (the window before the last is no longer read).
      expect(arbiter.counts(`per-ip|${address}`, later)).toEqual(
        i % 2 === 0 ? { current: 1, previous: 0 } : undefined,
      );
      expect(arbiter.counts(`other|${address}`, later)).toBeUndefined();
    });
    // Freed slots are reused by new keys without mixing them up with old ones.
    for (let i = 0; i < 2000; i++) ask(`per-ip|192.168.${i >>> 8}.${i & 255}`, 3, later);
    expect(arbiter.size).toBe(1500 + 2000);
    expect(arbiter.counts('per-ip|192.168.7.207', later)).toEqual({ current: 3, previous: 0 });
    expect(arbiter.counts('per-ip|10.0.0.0', later)).toEqual({ current: 1, previous: 0 });
    expect(arbiter.counts('per-ip|10.0.0.1', later)).toBeUndefined();
  });

  it('weighs the previous window like one process does, and says when one permit frees', () => {
    const arbiter = new LeaseArbiter({ workers: () => 1 });
    const ask = { key: 'k', windowMs: 10_000, cap: 10, want: 10 };
    let total = 0;
    while (total < 10) total += arbiter.grant([ask], T0)[0]!.granted;
    // Halfway through the next window, 5 of the previous 10 still count: room for exactly 5.
    let granted = 0;
    for (;;) {
      const [grant] = arbiter.grant([ask], T0 + 15_000);
      if (grant!.granted === 0) {
        // floor(10 × left / 10 s) + 5 ≤ 9 as soon as less than 5 s are left: 1 ms later.
        expect(grant!.retryMs).toBe(1);
        expect(grant!.recheckMs).toBe(1);
        break;
      }
      granted += grant!.granted;
    }
    expect(granted).toBe(5);
  });

  it('refuses for good only once no permit is outstanding: until then it reclaims them', () => {
    const arbiter = new LeaseArbiter({ workers: () => 2, recheckMs: 100, reclaimMs: 2000 });
    const ask = { key: 'k', windowMs: 60_000, cap: 4, want: 4 };
    let granted = 0;
    for (let g = arbiter.grant([ask], T0)[0]!.granted; g > 0; g = arbiter.grant([ask], T0)[0]!.granted)
      granted += g;
    expect(granted).toBe(4);
    // All 4 granted, none reported: maybe unused somewhere, so the asker waits and the key is reclaimed.
    expect(arbiter.grant([ask], T0 + 10)[0]).toMatchObject({ granted: 0, recheckMs: 100, reclaiming: true });
    expect(arbiter.release([], T0 + 20)).toEqual([{ key: 'k', windowStart: T0, windowMs: 60_000 }]);
    // A holder reports 3 spent and hands 1 back: that one is granted again.
    expect(
      arbiter.release([{ key: 'k', windowStart: T0, windowMs: 60_000, count: 1, spent: 3 }], T0 + 30),
    ).toEqual([]);
    expect(arbiter.grant([{ ...ask, want: 1 }], T0 + 40)[0]).toMatchObject({ granted: 1, estimate: 4 });
    // Spent, reported with the next ask: now nothing is outstanding and the refusal is final.
    expect(arbiter.grant([{ ...ask, spent: 1, spentIn: T0 }], T0 + 50)[0]).toMatchObject({
      granted: 0,
      recheckMs: 60_000 - 50,
    });
    expect(arbiter.grant([ask], T0 + 60)[0]!.reclaiming).toBeUndefined();
    // A holder that never reports (it died): the refusal is final after reclaimMs.
    const other = { ...ask, key: 'other' };
    while (arbiter.grant([other], T0)[0]!.granted > 0);
    expect(arbiter.grant([other], T0 + 1999)[0]!.reclaiming).toBe(true);
    expect(arbiter.grant([other], T0 + 2000)[0]).toMatchObject({ granted: 0, recheckMs: 58_000 });
  });

  it('waits for the unused permits of the window before too, which its weight still counts', () => {
    const arbiter = new LeaseArbiter({ workers: () => 1 });
    const ask = { key: 'k', windowMs: 10_000, cap: 10, want: 10 };
    expect(arbiter.grant([ask], T0)[0]!.granted).toBe(5);
    expect(arbiter.grant([ask], T0)[0]!.granted).toBe(2);
    // Next window, 1 s in: 90% of 7 granted weighs 6; 4 more fit, then the 7 may have been unused.
    const later = T0 + 11_000;
    expect(arbiter.grant([ask], later)[0]!.granted).toBe(2);
    expect(arbiter.grant([ask], later)[0]!.granted).toBe(1);
    expect(arbiter.grant([ask], later)[0]!.granted).toBe(1);
    expect(arbiter.grant([ask], later)[0]!.reclaiming).toBe(true);
    // The old window's holder reports 2 spent, 5 unused (the new window's 4 are spent too).
    arbiter.release(
      [
        { key: 'k', windowStart: T0, windowMs: 10_000, count: 5, spent: 2 },
        { key: 'k', windowStart: T0 + 10_000, windowMs: 10_000, count: 0, spent: 4 },
      ],
      later,
    );
    // One process: floor(2 × 0.9) + 4 = 5 of 10, so 5 more.
    let more = 0;
    for (let g = arbiter.grant([ask], later)[0]!; g.granted > 0; g = arbiter.grant([ask], later)[0]!)
      more += g.granted;
    expect(more).toBe(5);
  });
});

describe('workers holding leases', () => {
  it('admit exactly the limit of a burst between them, and a rejected request consumes nothing', async () => {
    let now = T0 + 5_000;
    const clock = () => now;
    const arbiter = new LeaseArbiter({ workers: () => 3, recheckMs: 5 });
    const lease = transport(arbiter, clock);
    const rules = [
      { id: 'orders', match: { path: '/orders/*' }, limit: '100/m' },
      { id: 'per-client', match: { path: '/orders/*' }, by: ['header:x-client'], limit: '20/m' },
    ];
    const workers = [0, 1, 2].map(() => worker(rules, lease, clock));
    // 600 requests at once from 20 clients, spread over the three workers.
    const results = await Promise.all(
      Array.from({ length: 600 }, (_, i) =>
        workers[i % 3]!.decide({ path: '/orders/1', headers: { 'x-client': `c${i % 20}` } }),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(100);
    // Every worker got some of them.
    for (let w = 0; w < 3; w++)
      expect(results.filter((ok, i) => ok && i % 3 === w).length).toBeGreaterThan(0);
    // Unused permits go back: what the primary counts is what was admitted.
    await settle(workers);
    expect(arbiter.counts('orders', now)).toEqual({ current: 100, previous: 0 });

    // Two windows later (nothing left to weigh), one client is refused by its own rule …
    now = T0 + 125_000;
    const fresh = [0, 1, 2].map(() => worker(rules, lease, clock));
    const greedy = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        fresh[i % 3]!.decide({ path: '/orders/1', headers: { 'x-client': 'greedy' } }),
      ),
    );
    expect(greedy.filter(Boolean)).toHaveLength(20);
    // … and its 40 refusals consumed nothing of "orders": exactly 80 are left for everyone else.
    const others = await Promise.all(
      Array.from({ length: 9 * 20 }, (_, i) =>
        fresh[i % 3]!.decide({ path: '/orders/1', headers: { 'x-client': `o${i % 9}` } }),
      ),
    );
    expect(others.filter(Boolean)).toHaveLength(80);
    expect(await fresh[0]!.decide({ path: '/orders/1', headers: { 'x-client': 'late' } })).toBe(false);
    await settle(fresh);
    expect(arbiter.counts('orders', now)).toEqual({ current: 100, previous: 0 });
    expect(arbiter.counts('per-client|greedy', now)?.current).toBe(20);
  });

  it('never admit a request one process would refuse, over many windows of random traffic', async () => {
    let now = T0;
    const clock = () => now;
    const arbiter = new LeaseArbiter({ workers: () => 4, recheckMs: 5 });
    const lease = transport(arbiter, clock);
    const windowMs = 10_000;
    const cap = 30 + 5;
    const rules = [{ id: 'k', limit: '30/10s', burst: 5 }];
    const workers = [0, 1, 2, 3].map(() => worker(rules, lease, clock));
    const admittedAt: number[] = [];
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let step = 0; step < 1200; step++) {
      now = T0 + step * 37;
      const burst = Math.floor(random() * 4);
      const decisions = Array.from({ length: burst }, () =>
        workers[Math.floor(random() * 4)]!.decide().then((ok) => {
          if (ok) admittedAt.push(now);
        }),
      );
      await Promise.all(decisions);
      if (step % 10 === 0) for (const w of workers) w.limiter.scanLeases(now);
    }
    // Replay every admission against the single-process estimate at that instant.
    let violations = 0;
    for (let i = 0; i < admittedAt.length; i++) {
      const t = admittedAt[i]!;
      const start = t - (t % windowMs);
      let current = 0;
      let previous = 0;
      for (let j = 0; j < i; j++) {
        const u = admittedAt[j]!;
        if (u >= start) current++;
        else if (u >= start - windowMs) previous++;
      }
      if (slidingEstimate(previous, current, windowMs, t - start) + 1 > cap) violations++;
    }
    expect(violations).toBe(0);
    // ~44 s of saturating demand: the windows are used, not starved (about 35 per 10 s).
    expect(admittedAt.length).toBeGreaterThan(4 * 30);
    await settle(workers);
  });

  it('refuse only when the host is full: permits idle in another worker are reclaimed first', async () => {
    const now = T0 + 1000;
    const clock = () => now;
    const arbiter = new LeaseArbiter({ workers: () => 2, recheckMs: 5 });
    const lease = transport(arbiter, clock);
    const rules = [{ id: 'k', limit: '20/m' }];
    const [busy, idle] = [worker(rules, lease, clock), worker(rules, lease, clock)];
    // A burst on one worker leaves it holding permits it will not use …
    const first = await Promise.all(Array.from({ length: 6 }, () => idle.decide()));
    expect(first.filter(Boolean)).toHaveLength(6);
    expect(arbiter.counts('k', now)!.current).toBeGreaterThan(6);
    // … and all other traffic goes to the other one: it gets exactly the 14 left, then 429.
    const rest: boolean[] = [];
    for (let i = 0; i < 16; i++) rest.push(await busy.decide());
    expect(rest).toEqual([...Array(14).fill(true), false, false]);
    await settle([busy, idle]);
    expect(arbiter.counts('k', now)).toEqual({ current: 20, previous: 0 });
  });

  describe.each([
    { kind: 'unpartitioned', rule: { id: 'k', limit: '12/10s', burst: 3 } },
    { kind: 'per IP', rule: { id: 'k', by: ['ip'], limit: '12/10s' } },
    { kind: 'per header', rule: { id: 'k', by: ['header:x-client'], limit: '12/10s', burst: 2 } },
  ])('two workers against one process, $kind, random traffic over many windows', ({ rule }) => {
    function randomFrom(seed: number): () => number {
      return () => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed / 2 ** 31;
      };
    }
    const clientOf = (n: number) => ({ ip: `10.0.0.${1 + n}`, headers: { 'x-client': `c${n}` } });

    it('sequential requests: the same decision for every request', async () => {
      let now = T0;
      const clock = () => now;
      const arbiter = new LeaseArbiter({ workers: () => 2, recheckMs: 5 });
      const lease = transport(arbiter, clock);
      const workers = [worker([rule], lease, clock), worker([rule], lease, clock)];
      const model = new Limiter(parseRules([rule], 'test'), { clock });
      const random = randomFrom(11);
      const mismatches: string[] = [];
      let admitted = 0;
      for (let step = 0; step < 400; step++) {
        // Runs of requests at one instant (leases grow), then pauses of up to a fifth of the window.
        if (random() < 0.3) now += Math.floor(random() * 2000);
        const init = clientOf(Math.floor(random() * 2));
        const expected = model.decide(request(init), now).allowed;
        const got = await workers[Math.floor(random() * 2)]!.decide(init);
        if (got) admitted++;
        if (got !== expected) mismatches.push(`step ${step} at +${now - T0} ms: ${got} vs ${expected}`);
      }
      expect(mismatches).toEqual([]);
      // Saturating: the limits were reached, not just followed from below.
      expect(admitted).toBeLessThan(400);
      await settle(workers);
    });

    it('concurrent bursts: as many admitted as one process admits', async () => {
      let now = T0;
      const clock = () => now;
      const arbiter = new LeaseArbiter({ workers: () => 2, recheckMs: 5 });
      const lease = transport(arbiter, clock);
      const workers = [worker([rule], lease, clock), worker([rule], lease, clock)];
      const model = new Limiter(parseRules([rule], 'test'), { clock });
      const random = randomFrom(29);
      const mismatches: string[] = [];
      for (let step = 0; step < 120; step++) {
        now += Math.floor(random() * 1500);
        const inits = Array.from({ length: Math.floor(random() * 12) }, () =>
          clientOf(Math.floor(random() * 2)),
        );
        const expected = inits.filter((init) => model.decide(request(init), now).allowed).length;
        const got = (
          await Promise.all(inits.map((init) => workers[Math.floor(random() * 2)]!.decide(init)))
        ).filter(Boolean).length;
        if (got !== expected) mismatches.push(`step ${step} at +${now - T0} ms: ${got} vs ${expected}`);
      }
      expect(mismatches).toEqual([]);
      await settle(workers);
    });
  });

  it('decides synchronously while permits last, and a shadow rule never refuses', async () => {
    const now = T0;
    const clock = () => now;
    const arbiter = new LeaseArbiter({ workers: () => 1, recheckMs: 5 });
    const w = worker(
      [
        { id: 'k', limit: '1000/m' },
        { id: 'watch', limit: '1/m', mode: 'shadow' },
      ],
      transport(arbiter, clock),
      clock,
    );
    // The first request waits for a lease; leases grow with demand, so a busy key rarely asks.
    expect(w.limiter.decide(request(), now)).toBe(LEASE_PENDING);
    let waited = 0;
    for (let i = 0; i < 200; i++) {
      const req = request();
      let d = w.limiter.decide(req, now);
      if (d === LEASE_PENDING) {
        waited++;
        d = await w.client.wait(() => w.limiter.decide(req, now));
      }
      expect(d.allowed).toBe(true);
    }
    expect(waited).toBeLessThanOrEqual(8);
    // The shadow rule had one permit: it is exceeded and reported, and never blocked anyone.
    const shadowed = w.limiter.decide(request(), now);
    expect(shadowed).toMatchObject({ allowed: true, shadowExceeded: ['watch'] });
    expect(w.limiter.ruleStats().find((r) => r.id === 'watch')?.shadowExceeded).toBeGreaterThan(190);
    await settle([w]);
  });

  it('use a permit only in the window it was counted in, and give the rest back when it ends', async () => {
    let now = T0 + 59_000;
    const clock = () => now;
    const arbiter = new LeaseArbiter({ workers: () => 1, recheckMs: 5 });
    const w = worker([{ id: 'k', limit: '100/m' }], transport(arbiter, clock), clock);
    for (let i = 0; i < 5; i++) expect(await w.decide()).toBe(true);
    const held = arbiter.counts('k', now)!.current - 5;
    expect(held).toBeGreaterThan(0);
    now = T0 + 60_000;
    // New window: the permits left over are void, so this request has to ask.
    expect(w.limiter.decide(request(), now)).toBe(LEASE_PENDING);
    w.limiter.scanLeases(now);
    await settle([w]);
    // The old window ends up counting exactly its 5 admissions as "previous".
    expect(arbiter.counts('k', now)?.previous).toBe(5);
  });

  it('fall back by onStoreError when the primary does not answer, say so once, and recover', async () => {
    const now = T0;
    const clock = () => now;
    const arbiter = new LeaseArbiter({ workers: () => 1, recheckMs: 5 });
    const state = { down: true };
    const rules = [{ id: 'k', limit: '5/m' }];
    const openChanges: boolean[] = [];
    const open = worker(rules, transport(arbiter, clock, state), clock, 'open', openChanges);
    const denyChanges: boolean[] = [];
    const deny = worker(rules, transport(arbiter, clock, state), clock, 'deny', denyChanges);
    expect(await Promise.all([open.decide(), open.decide(), open.decide()])).toEqual([true, true, true]);
    expect(await Promise.all([deny.decide(), deny.decide()])).toEqual([false, false]);
    expect(openChanges).toEqual([false]);
    expect(denyChanges).toEqual([false]);
    state.down = false;
    // Requests keep asking in the background; the first answer makes the primary reachable again.
    open.limiter.decide(request(), now);
    deny.limiter.decide(request(), now);
    for (let i = 0; i < 10; i++) await hop();
    expect(openChanges).toEqual([false, true]);
    expect(denyChanges).toEqual([false, true]);
    expect(await deny.decide()).toBe(true);
    await settle([open, deny]);
  });

  it('spend no permit granted under a larger cap than the reloaded rule has', async () => {
    const now = T0;
    const clock = () => now;
    const arbiter = new LeaseArbiter({ workers: () => 1, recheckMs: 5 });
    const base = transport(arbiter, clock);
    // The primary grants under the old cap, but its answer arrives after the reload.
    let answer!: () => void;
    const held = new Promise<void>((resolve) => {
      answer = resolve;
    });
    const lease: LeaseTransport = {
      async lease(asks) {
        const grants = await base.lease(asks);
        await held;
        return grants;
      },
      release: (returns) => base.release(returns),
    };
    const w = worker([{ id: 'k', limit: '100/m' }], lease, clock);
    let current = w.limiter;
    const decide = async (): Promise<boolean> => {
      const first = current.decide(request(), clock());
      if (first !== LEASE_PENDING) return first.allowed;
      return (await w.client.wait(() => current.decide(request(), clock()))).allowed;
    };
    const parked = Array.from({ length: 40 }, () => decide());
    for (let i = 0; i < 5; i++) await hop();
    const next = new Limiter(parseRules([{ id: 'k', limit: '10/m' }], 'test'), { clock });
    w.client.prepare(next);
    next.adoptCounts(w.limiter);
    w.client.replace(w.limiter, next);
    current = next;
    answer();
    const admitted = (await Promise.all(parked)).filter(Boolean).length;
    // One process with the new rule admits 10 of them; the 40 granted under 100/m went back.
    expect(admitted).toBeLessThanOrEqual(10);
    next.releaseAll();
    await w.client.stop();
    expect(arbiter.counts('k', now)!.current).toBeLessThanOrEqual(10);
  });

  it('count a rule whose window changed apart from its old version while workers reload', async () => {
    let now = T0 + 100;
    const clock = () => now;
    const arbiter = new LeaseArbiter({ workers: () => 2, recheckMs: 5 });
    // One worker still has the old rule, the other has reloaded it with another window.
    const old = worker([{ id: 'k', limit: '10/m' }], transport(arbiter, clock), clock);
    const reloaded = worker([{ id: 'k', limit: '10/s' }], transport(arbiter, clock), clock);
    let admittedOld = 0;
    let admittedNew = 0;
    for (let i = 0; i < 100; i++) {
      now = T0 + 100 + i;
      if (await old.decide()) admittedOld++;
      if (await reloaded.decide()) admittedNew++;
    }
    // Each within its own cap: asks of one version no longer reset the other's counts.
    expect(admittedOld).toBe(10);
    expect(admittedNew).toBe(10);
    await settle([old, reloaded]);
  });

  it('charge what fail-open admitted during an outage, even beyond the limit', async () => {
    let now = T0 + 100;
    const clock = () => now;
    // Returns sent during the outage are lost and never reported: without reclaimMs 0 the first
    // refusal would wait reclaimMs of this frozen clock for them (not what this test is about).
    const arbiter = new LeaseArbiter({ workers: () => 1, recheckMs: 5, reclaimMs: 0 });
    const state = { down: false };
    const w = worker([{ id: 'k', limit: '100/m' }], transport(arbiter, clock, state), clock, 'open');
    let admitted = 0;
    for (let i = 0; i < 5; i++) if (await w.decide()) admitted++;
    state.down = true;
    for (let i = 0; i < 50; i++) {
      now++;
      if (await w.decide()) admitted++;
    }
    expect(admitted).toBe(55);
    // The primary answers again just after the window rolled. One process, with 55 admitted in
    // the window before, has room for what their weight leaves (46).
    state.down = false;
    now = T0 + 60_010;
    const oneProcess = 100 - slidingEstimate(55, 0, 60_000, 10);
    let next = 0;
    for (let i = 0; i < 200; i++) {
      // Requests in turns of their own, as they arrive: the first answer ends the outage.
      if (await w.decide()) next++;
      await hop();
    }
    expect(next).toBeLessThanOrEqual(oneProcess);
    expect(next).toBeGreaterThan(0);
    await settle([w]);
  });

  it('carry permits and counts over a rule reload, and give back those of a removed rule', async () => {
    const now = T0;
    const clock = () => now;
    const arbiter = new LeaseArbiter({ workers: () => 1, recheckMs: 5 });
    const lease = transport(arbiter, clock);
    const w = worker(
      [
        { id: 'k', limit: '100/m' },
        { id: 'gone', limit: '100/m' },
      ],
      lease,
      clock,
    );
    for (let i = 0; i < 10; i++) expect(await w.decide()).toBe(true);
    const next = new Limiter(parseRules([{ id: 'k', limit: '120/m' }], 'test'), { clock });
    w.client.prepare(next);
    expect(next.adoptCounts(w.limiter)).toBe(1);
    w.client.replace(w.limiter, next);
    for (let i = 0; i < 5; i++) await hop();
    // "gone"'s unused permits went back: only its 10 admissions still count.
    expect(arbiter.counts('gone', now)?.current).toBe(10);
    // "k" kept its lease: the next request is decided at once, without asking.
    expect(next.decide(request(), now).allowed).toBe(true);
    next.releaseAll();
    await w.client.stop();
    expect(arbiter.counts('k', now)?.current).toBe(11);
  });
});

describe('RateLimiter with leases (the gate the proxy route calls)', () => {
  it('answers a pending request with a promise of its decision; logs an outage once', async () => {
    // Memory: nothing is written to the data dir.
    const store = await openStore('memory', { dataDir: '/nonexistent' });
    const logs = new LogCapture();
    const arbiter = new LeaseArbiter({ workers: () => 2, recheckMs: 5 });
    const state = { down: false };
    const gate = await RateLimiter.start({
      store,
      logger: createLogger('info', logs),
      fileRules: [
        { id: 'two', match: { path: '/two' }, limit: '2/m' },
        { id: 'per-ip', match: { path: '/ip' }, by: ['ip'], limit: '100/m' },
      ],
      fileName: 'test',
      env: {},
      legacyHeaders: false,
      syncIntervalMs: 100,
      onStoreError: 'deny',
      workers: 2,
      leases: transport(arbiter, Date.now, state),
    });
    /** What the proxy route does: a decision now, or wait for it. */
    const decide = async (ip: string, path: string): Promise<Decision | undefined> =>
      gate.decide({ headers: {} } as IncomingMessage, ip, 'GET', path);
    const warned = () => logs.records.filter((r) => String(r.msg).startsWith('cannot get rate-limit leases'));
    try {
      const req = { headers: {} } as IncomingMessage;
      const pending = gate.decide(req, '10.0.0.1', 'GET', '/two');
      expect(pending).toBeInstanceOf(Promise);
      expect(await pending).toMatchObject({ allowed: true, limit: 2 });
      expect((await decide('10.0.0.1', '/two'))?.allowed).toBe(true);
      const third = await decide('10.0.0.1', '/two');
      expect(third).toMatchObject({ allowed: false, rejectedBy: 'two' });
      expect(third!.retryAfterSeconds).toBeGreaterThan(0);
      expect(arbiter.counts('two', Date.now())?.current).toBe(2);
      expect(await decide('10.0.0.1', '/nothing')).toBeUndefined();

      // The primary stops answering: with 'deny', a counter without permits refuses; logged once.
      state.down = true;
      expect(await decide('10.0.0.2', '/ip')).toMatchObject({ allowed: false, rejectedBy: 'per-ip' });
      expect(await decide('10.0.0.3', '/ip')).toMatchObject({ allowed: false, rejectedBy: 'per-ip' });
      expect(gate.storeHealthy).toBe(false);
      expect(warned()).toHaveLength(1);
      expect(warned()[0]).toMatchObject({ level: 'warn', onStoreError: 'deny' });
      state.down = false;
      await waitFor(async () => {
        await decide('10.0.0.4', '/ip');
        return gate.storeHealthy;
      });
      expect(logs.withMessage('rate-limit leases from the primary process work again')).toHaveLength(1);
      expect(await decide('10.0.0.5', '/ip')).toMatchObject({ allowed: true });
      expect(warned()).toHaveLength(1);
    } finally {
      await gate.stop();
      await store.close();
    }
  });
});

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
