/**
 * Space-Saving top-K sketch (Metwally et al.): at most `capacity` counters whatever the number of
 * distinct keys, and every key that holds more than 1/capacity of the traffic is guaranteed to be in
 * it. A key admitted by evicting the smallest counter inherits that counter's count, so counts are
 * over-estimates by at most `error` — reported alongside so nobody mistakes them for exact.
 *
 * Cost per `add`: a Map lookup and three array increments for a key in the sketch. Evictions must
 * not scan every counter either, or a stream of distinct clients (a million addresses, each seen
 * once) pays O(capacity) per request: the sketch keeps the slots holding the smallest count as a
 * stack of candidates and rescans only when the stack runs dry. One rescan collects every slot at
 * the new minimum; with many distinct keys the counts level out, so a rescan serves about
 * `capacity` evictions, so an eviction costs O(1) amortised instead of O(capacity). State is in
 * typed arrays: no object per key.
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
  private readonly index = new Map<string, number>();
  private readonly keys: string[] = [];
  private readonly requests: Float64Array;
  private readonly bytes: Float64Array;
  private readonly latency: Float64Array;
  private readonly errors: Float64Array;
  private used = 0;
  /** Slots that held `minCount` when last scanned; a slot counted since is skipped. */
  private readonly candidates: Int32Array;
  private candidateCount = 0;
  private minCount = 0;

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.requests = new Float64Array(capacity);
    this.bytes = new Float64Array(capacity);
    this.latency = new Float64Array(capacity);
    this.errors = new Float64Array(capacity);
    this.candidates = new Int32Array(capacity);
  }

  add(key: string, bytes: number, latencyMs: number): void {
    let slot = this.index.get(key);
    if (slot === undefined) slot = this.admit(key);
    this.requests[slot]! += 1;
    this.bytes[slot]! += bytes;
    this.latency[slot]! += latencyMs;
  }

  /** Folds another sketch in (for merging time slots or workers). */
  merge(other: HeavyHitters): void {
    this.load(other.entries());
  }

  /**
   * Folds counters in, e.g. another process's: counts of the same key add up (errors too), and the
   * largest `capacity` counters are kept.
   */
  load(entries: Iterable<HeavyHitter>): void {
    const combined = new Map<string, HeavyHitter>();
    for (const entry of this.entries()) combined.set(entry.key, entry);
    for (const entry of entries) {
      const mine = combined.get(entry.key);
      if (mine) {
        mine.requests += entry.requests;
        mine.bytes += entry.bytes;
        mine.latencyMsSum += entry.latencyMsSum;
        mine.error += entry.error;
      } else {
        combined.set(entry.key, { ...entry });
      }
    }
    const kept = [...combined.values()].sort((a, b) => b.requests - a.requests).slice(0, this.capacity);
    this.clear();
    for (const entry of kept) {
      const slot = this.used++;
      this.keys[slot] = entry.key;
      this.index.set(entry.key, slot);
      this.requests[slot] = entry.requests;
      this.bytes[slot] = entry.bytes;
      this.latency[slot] = entry.latencyMsSum;
      this.errors[slot] = entry.error;
    }
  }

  /** The `limit` largest counters, largest first. */
  top(limit: number): HeavyHitter[] {
    const slots: number[] = [];
    for (let slot = 0; slot < this.used; slot++) slots.push(slot);
    slots.sort((a, b) => this.requests[b]! - this.requests[a]! || a - b);
    return slots.slice(0, limit).map((slot) => ({
      key: this.keys[slot]!,
      requests: this.requests[slot]!,
      bytes: this.bytes[slot]!,
      latencyMsSum: this.latency[slot]!,
      error: this.errors[slot]!,
    }));
  }

  /** Every counter, largest first. */
  entries(): HeavyHitter[] {
    return this.top(this.used);
  }

  get size(): number {
    return this.used;
  }

  clear(): void {
    this.index.clear();
    this.keys.length = 0;
    this.used = 0;
    this.candidateCount = 0;
  }

  /** A slot for a key not in the sketch: a free one, else the smallest counter's (count kept). */
  private admit(key: string): number {
    let slot: number;
    if (this.used < this.capacity) {
      slot = this.used++;
      this.requests[slot] = 0;
      this.errors[slot] = 0;
    } else {
      slot = this.smallest();
      this.index.delete(this.keys[slot]!);
      this.errors[slot] = this.requests[slot]!;
    }
    this.keys[slot] = key;
    this.index.set(key, slot);
    this.bytes[slot] = 0;
    this.latency[slot] = 0;
    return slot;
  }

  private smallest(): number {
    for (;;) {
      while (this.candidateCount > 0) {
        const slot = this.candidates[--this.candidateCount]!;
        // Counted since the scan: no longer the smallest (counts only grow between scans).
        if (this.requests[slot] === this.minCount) return slot;
      }
      this.rescan();
    }
  }

  private rescan(): void {
    let min = Number.POSITIVE_INFINITY;
    for (let slot = 0; slot < this.used; slot++) if (this.requests[slot]! < min) min = this.requests[slot]!;
    this.minCount = min;
    // Pushed in reverse so that the oldest slot is evicted first, as a plain scan would.
    let count = 0;
    for (let slot = this.used - 1; slot >= 0; slot--) {
      if (this.requests[slot] === min) this.candidates[count++] = slot;
    }
    this.candidateCount = count;
  }
}
