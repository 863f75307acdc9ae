import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { LeaseArbiter } from '../../src/limits/lease-arbiter.js';
import { Limiter } from '../../src/limits/limiter.js';
import { parseRules } from '../../src/limits/rule.js';
import { T0 } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** JS heap plus ArrayBuffer backing stores, which hold the typed arrays and live outside the heap. */
function settledMemory(): number {
  gc();
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

describe('Limiter memory', () => {
  it('holds 1,000,000 distinct keys within 200 MB (heap + typed arrays)', () => {
    const limiter = new Limiter(parseRules([{ id: 'default-per-ip', by: ['ip'], limit: '600/m' }], 'test'), {
      maxKeys: 1_000_000,
    });
    // One reusable request, as the server is expected to do.
    const req = {
      ip: '',
      method: 'GET',
      path: '/items/MLA1',
      header: () => undefined,
      tokenHash: () => undefined,
    };
    const before = settledMemory();
    const started = performance.now();
    for (let i = 0; i < 1_000_000; i++) {
      req.ip = `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
      limiter.decide(req, T0 + (i >>> 10));
    }
    const elapsed = performance.now() - started;
    const used = settledMemory() - before;
    const stats = limiter.stats();
    console.log(
      `1e6 keys: memory +${(used / 2 ** 20).toFixed(1)} MiB (${Math.round(used / 1e6)} B/key), ` +
        `${(elapsed / 1000).toFixed(2)} s (${Math.round(elapsed * 1000) / 1e6} µs/decision incl. insert)`,
    );
    expect(stats.keys).toBe(1_000_000);
    expect(stats.untracked).toBe(0);
    expect(used).toBeLessThan(200 * 2 ** 20);
    // The next key finds no idle slot: not tracked, and no active key was reset.
    req.ip = '11.0.0.1';
    expect(limiter.decide(req, T0 + 1000).allowed).toBe(true);
    expect(limiter.stats()).toMatchObject({ keys: 1_000_000, untracked: 1 });
    // Two windows later everything is idle and expires.
    expect(limiter.sweep(T0 + 180_000, 2_000_000)).toBe(1_000_000);
    expect(limiter.stats().keys).toBe(0);
  }, 20_000);
});

describe('LeaseArbiter memory (the cluster primary)', () => {
  it('holds 1,000,000 per-IP counter keys within 72 MB (heap + typed arrays)', () => {
    const asks = Array.from({ length: 1000 }, () => ({ key: '', windowMs: 60_000, cap: 600, want: 8 }));
    const before = settledMemory();
    const arbiter = new LeaseArbiter({ workers: () => 2 });
    // Asks arrive in batches, as they do over IPC.
    for (let batch = 0; batch < 1000; batch++) {
      for (let j = 0; j < 1000; j++) {
        const i = batch * 1000 + j;
        asks[j]!.key = `default-per-ip|10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
      }
      arbiter.grant(asks, T0 + batch);
    }
    const used = settledMemory() - before;
    console.log(
      `arbiter, 1e6 keys: memory +${(used / 2 ** 20).toFixed(1)} MiB (${Math.round(used / 1e6)} B/key)`,
    );
    expect(arbiter.size).toBe(1_000_000);
    expect(arbiter.counts('default-per-ip|10.15.66.63', T0 + 1000)).toEqual({ current: 8, previous: 0 });
    expect(used).toBeLessThan(72 * 2 ** 20);
    expect(arbiter.sweep(T0 + 180_000)).toBe(1_000_000);
    expect(arbiter.size).toBe(0);
  }, 20_000);
});
