/**
 * Checks and merges a batch of counter deltas once, for every backend: a batch may name the same
 * window twice (PostgreSQL refuses to upsert one row twice in a statement), and a bad number must
 * fail the sync loudly rather than corrupt a shared total.
 */
import type { CounterDelta } from './types.js';

/** The key of `CounterSyncResult.totals`. */
export function totalKey(key: string, windowStart: number): string {
  return `${key}@${windowStart}`;
}

export function mergeDeltas(deltas: readonly CounterDelta[]): Map<string, CounterDelta> {
  const merged = new Map<string, CounterDelta>();
  for (const d of deltas) {
    if (typeof d.key !== 'string' || d.key === '')
      throw new TypeError('counter delta: key must be a non-empty string');
    if (!Number.isSafeInteger(d.windowStart) || d.windowStart < 0) {
      throw new RangeError(
        `counter delta ${d.key}: windowStart must be epoch milliseconds, got ${d.windowStart}`,
      );
    }
    if (!Number.isSafeInteger(d.windowMs) || d.windowMs <= 0 || d.windowMs > 2 ** 31 - 1) {
      throw new RangeError(`counter delta ${d.key}: windowMs must be a positive integer, got ${d.windowMs}`);
    }
    if (!Number.isSafeInteger(d.delta) || d.delta < 0) {
      throw new RangeError(`counter delta ${d.key}: delta must be a non-negative integer, got ${d.delta}`);
    }
    const id = totalKey(d.key, d.windowStart);
    const seen = merged.get(id);
    merged.set(id, seen ? { ...seen, delta: seen.delta + d.delta } : { ...d });
  }
  return merged;
}
