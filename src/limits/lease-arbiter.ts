/**
 * Exact limits across the workers of one host (`serve --workers N`, embedded store): the primary's
 * side. The primary keeps the authoritative sliding-window counts of every counter key and hands
 * the workers permits ("leases") out of them; a worker admits a request only with a permit in hand
 * (lease-client.ts, and the lease mode of limiter.ts).
 *
 * Why this is exact. A permit is counted as admitted the moment it is granted, and it is granted
 * only while the sliding estimate a single process would compute (sliding.ts: previous window
 * weighted by the part still covered, plus the current window's count) stays within cap = limit +
 * burst. A permit counted into window w is only usable inside window w (the worker drops it when
 * its window rolls). Take any admission at time t' in w with a permit granted at t ≤ t': the
 * requests admitted before it in w are fewer than the permits granted in w by then, and the
 * previous window's weight only decays from t to t'; so admitted-before + weighted-previous + 1 ≤
 * what the grant checked against cap. Unused permits handed back lower the counts again, which only
 * makes later estimates closer to the truth, never above it. Hence N workers together never admit
 * a request that one process with the same counts would refuse.
 *
 * Why it is fast. A grant is sized from the worker's recent demand (`want`) but never more than
 * room / (2 × workers), where room = cap − estimate(now): while the budget is large, a busy key
 * asks rarely; as it runs out, leases shrink geometrically, so near the limit at most about one
 * permit per worker sits unused somewhere. When room ≥ 1 a grant is at least 1, so a worker that
 * asks makes progress.
 *
 * Refusals. When nothing is left the answer carries how long until one permit frees if nothing
 * else is admitted (msUntilAvailable), which the worker uses for Retry-After and to deny locally
 * without asking again. Permits that another worker got recently may still come back unused (a
 * worker returns a lease it has not used up within a few sync intervals); then the worker is told
 * to ask again after `recheckMs` rather than wait the whole time, which bounds how long returned
 * permits can sit unused while someone is refused.
 *
 * A worker that dies keeps its unused permits: they are not given back (the primary cannot know how
 * many it used before dying, and forgetting used ones would over-admit), so they expire with their
 * window, counted as admitted: under-admission of at most one lease per key, for one window.
 *
 * Memory: one Map entry per counter key in use, about 190 bytes (measured: 1,000,000 per-IP keys
 * took 193 MB of heap in the primary), on top of each worker's own table. Keys whose last window is
 * older than the previous one weigh in no estimate and go at the next sweep.
 */
import { msUntilAvailable, slidingEstimate } from './sliding.js';

/** A worker's request for permits of one counter key. */
export interface LeaseAsk {
  /** Counter key (rule id and partition, as counterKey() joins them). */
  readonly key: string;
  readonly windowMs: number;
  /** limit + burst of the rule as the worker knows it. */
  readonly cap: number;
  /** Permits the worker would like (at least 1). */
  readonly want: number;
}

/** The primary's answer to one LeaseAsk. */
export interface LeaseGrant {
  /** The window the permits belong to (and may only be used in). */
  readonly windowStart: number;
  /** Permits granted, 0 when none is left. */
  readonly granted: number;
  /** The sliding estimate after this grant (granted permits count as admitted). */
  readonly estimate: number;
  /** When granted is 0: ms until one permit frees if nothing else is admitted. */
  readonly retryMs: number;
  /** When granted is 0: ms after which asking again may be worth it (≤ retryMs). */
  readonly recheckMs: number;
}

/** Unused permits a worker hands back. */
export interface LeaseReturn {
  readonly key: string;
  readonly windowStart: number;
  readonly windowMs: number;
  readonly count: number;
}

/** How a worker reaches the arbiter (over IPC in the cluster; directly in tests). */
export interface LeaseTransport {
  lease(asks: readonly LeaseAsk[]): Promise<LeaseGrant[]>;
  /** Fire and forget: a lost return only leaves permits unused until their window ends. */
  release(returns: readonly LeaseReturn[]): Promise<void>;
}

export interface LeaseArbiterOptions {
  /** Live workers; leases are at most room / (2 × workers). */
  readonly workers: () => number;
  /** Ask again after this long when a refusal may be undone by returned permits (default 100 ms). */
  readonly recheckMs?: number;
  /** How long after a grant its unused permits may still come back (default 600 ms). */
  readonly holdMs?: number;
}

interface Entry {
  windowStart: number;
  windowMs: number;
  /** Permits granted in the current window, minus those returned. */
  current: number;
  /** The same for the window before it (0 when that was not the previous window). */
  previous: number;
  /** Last grant or return (epoch ms): permits may still come back shortly after. */
  lastMoveAt: number;
}

export class LeaseArbiter {
  private readonly entries = new Map<string, Entry>();
  private sweepCursor: MapIterator<[string, Entry]> | undefined;
  private readonly workers: () => number;
  private readonly recheckMs: number;
  private readonly holdMs: number;

  constructor(options: LeaseArbiterOptions) {
    this.workers = options.workers;
    this.recheckMs = options.recheckMs ?? 100;
    this.holdMs = options.holdMs ?? 600;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Answers a batch of asks in order; each grant is counted before the next ask is looked at. */
  grant(asks: readonly LeaseAsk[], now: number): LeaseGrant[] {
    const workers = Math.max(1, Math.floor(this.workers()));
    const grants: LeaseGrant[] = [];
    for (const ask of asks) {
      const { windowMs, cap } = ask;
      const elapsed = now % windowMs;
      const windowStart = now - elapsed;
      const entry = this.entry(ask.key, windowMs, windowStart);
      const estimate = slidingEstimate(entry.previous, entry.current, windowMs, elapsed);
      const room = cap - estimate;
      if (room >= 1) {
        const share = Math.max(1, Math.floor(room / (2 * workers)));
        const granted = Math.min(Math.max(1, Math.floor(ask.want)), share);
        entry.current += granted;
        entry.lastMoveAt = now;
        grants.push({ windowStart, granted, estimate: estimate + granted, retryMs: 0, recheckMs: 0 });
        continue;
      }
      const retryMs = Math.max(1, msUntilAvailable(entry.previous, entry.current, windowMs, elapsed, cap));
      const recent = now - entry.lastMoveAt < this.holdMs;
      grants.push({
        windowStart,
        granted: 0,
        estimate,
        retryMs,
        recheckMs: recent ? Math.min(retryMs, this.recheckMs) : retryMs,
      });
    }
    return grants;
  }

  /** Takes back unused permits; returns for windows that no estimate reads any more are ignored. */
  release(returns: readonly LeaseReturn[], now: number): void {
    for (const back of returns) {
      const entry = this.entries.get(back.key);
      if (!entry || !(back.count > 0)) continue;
      if (entry.windowStart === back.windowStart) {
        entry.current = Math.max(0, entry.current - back.count);
        entry.lastMoveAt = now;
      } else if (entry.windowStart === back.windowStart + back.windowMs) {
        entry.previous = Math.max(0, entry.previous - back.count);
        entry.lastMoveAt = now;
      }
    }
  }

  /** The counts of a key as of `now` (for tests and diagnostics). */
  counts(key: string, now: number): { current: number; previous: number } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const windowStart = now - (now % entry.windowMs);
    if (entry.windowStart === windowStart) return { current: entry.current, previous: entry.previous };
    if (entry.windowStart === windowStart - entry.windowMs) return { current: 0, previous: entry.current };
    return { current: 0, previous: 0 };
  }

  /**
   * Forgets keys whose counts no estimate reads any more (last window older than the previous),
   * looking at up to `budget` keys; returns how many went.
   */
  sweep(now: number, budget = Number.POSITIVE_INFINITY): number {
    // Resumes where the last call stopped, so a million keys are swept a slice at a time and the
    // primary never stops answering leases for a whole pass (Map iterators survive deletions).
    let removed = 0;
    this.sweepCursor ??= this.entries.entries();
    for (let visited = 0; visited < budget; visited++) {
      const next = this.sweepCursor.next();
      if (next.done) {
        this.sweepCursor = undefined;
        break;
      }
      const [key, entry] = next.value;
      if (entry.windowStart < now - (now % entry.windowMs) - entry.windowMs) {
        this.entries.delete(key);
        removed++;
      }
    }
    return removed;
  }

  /** The key's entry moved to the window starting at `windowStart`. */
  private entry(key: string, windowMs: number, windowStart: number): Entry {
    let entry = this.entries.get(key);
    if (!entry || entry.windowMs !== windowMs) {
      // A rule whose window changed keeps its id but counts afresh, as adoptCounts does.
      entry = { windowStart, windowMs, current: 0, previous: 0, lastMoveAt: 0 };
      this.entries.set(key, entry);
    } else if (entry.windowStart < windowStart) {
      entry.previous = entry.windowStart === windowStart - windowMs ? entry.current : 0;
      entry.current = 0;
      entry.windowStart = windowStart;
    }
    return entry;
  }
}
