/**
 * Space-Saving top-K sketch (Metwally et al.): at most `capacity` counters whatever the number of
 * distinct keys, and every key that holds more than 1/capacity of the traffic is guaranteed to be in
 * it. A key admitted by evicting the smallest counter inherits that counter's count, so counts are
 * over-estimates by at most `error` — reported alongside so nobody mistakes them for exact.
 */
export interface HeavyHitter {
  key: string;
  requests: number;
  bytes: number;
  latencyMsSum: number;
  /** Upper bound of the over-estimate in `requests`. */
  error: number;
}

export class HeavyHitters {
  private readonly entries = new Map<string, HeavyHitter>();

  constructor(private readonly capacity: number) {}

  add(key: string, bytes: number, latencyMs: number): void {
    let entry = this.entries.get(key);
    if (!entry) {
      if (this.entries.size < this.capacity) {
        entry = { key, requests: 0, bytes: 0, latencyMsSum: 0, error: 0 };
      } else {
        const smallest = this.smallest();
        this.entries.delete(smallest.key);
        entry = { key, requests: smallest.requests, bytes: 0, latencyMsSum: 0, error: smallest.requests };
      }
      this.entries.set(key, entry);
    }
    entry.requests += 1;
    entry.bytes += bytes;
    entry.latencyMsSum += latencyMs;
  }

  /** Folds another sketch in (for merging time slots or workers). */
  merge(other: HeavyHitters): void {
    for (const entry of other.entries.values()) {
      const mine = this.entries.get(entry.key);
      if (mine) {
        mine.requests += entry.requests;
        mine.bytes += entry.bytes;
        mine.latencyMsSum += entry.latencyMsSum;
        mine.error += entry.error;
      } else {
        this.entries.set(entry.key, { ...entry });
      }
    }
    while (this.entries.size > this.capacity) this.entries.delete(this.smallest().key);
  }

  top(limit: number): HeavyHitter[] {
    return [...this.entries.values()].sort((a, b) => b.requests - a.requests).slice(0, limit);
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }

  // A linear scan on eviction only: with a few hundred counters this beats keeping a heap in sync
  // on every increment, which is the common case.
  private smallest(): HeavyHitter {
    let found: HeavyHitter | undefined;
    for (const entry of this.entries.values()) {
      if (!found || entry.requests < found.requests) found = entry;
    }
    return found!;
  }
}
