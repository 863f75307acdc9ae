/**
 * The per-counter policy interface: how one counting mode (local, shared allowance, exact shared,
 * lease) reads, judges and commits a counter. The limiter core (limiter.ts) finds the counters a
 * request matches, asks each one's policy to evaluate it, and commits all of them only when none
 * refuses: the policies never see a half-decided request.
 */
import type { DecisionScratch } from './decision.js';
import { OVER, WITHIN } from './decision.js';
import type { KeyTable } from './key-table.js';
import type { CompiledRule } from './matcher.js';
import { msUntilAvailable, slidingEstimate } from './sliding.js';

export interface CounterPolicy {
  /** A slot was just created for `rule`, counting the window that starts at `windowStart`. */
  added(slot: number, rule: CompiledRule, windowStart: number): void;
  /**
   * The slot is about to move on to the window starting at `windowStart`: settle what this policy
   * keeps about the old window and return its total as best known (the core keeps it as
   * `previous` when the windows are adjacent).
   */
  roll(slot: number, rule: CompiledRule, windowStart: number): number;
  /**
   * Judges matched counter `i` (its slot, window start and elapsed time are in `s`): writes its
   * state (WITHIN, OVER, PENDING or STORE), remaining, retry and reset into `s` and returns the state.
   */
  evaluate(s: DecisionScratch, i: number, slot: number, rule: CompiledRule, now: number): number;
  /** Counts the request against the counter (the core has already added it to `current`). */
  commit(s: DecisionScratch, i: number, slot: number, rule: CompiledRule): void;
  /** Requests counted in the sliding window, as `inspect` (limits test) shows them. */
  used(slot: number, rule: CompiledRule, sameWindow: boolean, elapsed: number): number;
}

/**
 * Judges a counter by its sliding estimate against the rule's cap: the whole decision in local
 * mode, and the first half of the shared ones.
 */
export function judgeSliding(
  s: DecisionScratch,
  i: number,
  rule: CompiledRule,
  previous: number,
  current: number,
): number {
  const windowMs = rule.windowMs;
  const elapsed = s.elapsed[i]!;
  const estimate = slidingEstimate(previous, current, windowMs, elapsed);
  if (estimate + 1 > rule.cap) {
    s.state[i] = OVER;
    s.remaining[i] = 0;
    s.retryMs[i] = msUntilAvailable(previous, current, windowMs, elapsed, rule.cap);
    return OVER;
  }
  s.state[i] = WITHIN;
  s.retryMs[i] = 0;
  const remaining = Math.max(0, rule.limit - estimate - 1);
  s.remaining[i] = remaining;
  // Nothing left after this one: say when one more fits, which is what the next 429 will say
  // (at least 1 ms, so that it rounds up to the 1 s a Retry-After is at least).
  if (remaining === 0)
    s.resetMs[i] = Math.max(1, msUntilAvailable(previous, current + 1, windowMs, elapsed, rule.limit));
  return WITHIN;
}

/** The sliding-window count `inspect` reports for a counter whose current count is `current`. */
export function slidingUsed(
  table: KeyTable,
  slot: number,
  rule: CompiledRule,
  current: number,
  sameWindow: boolean,
  elapsed: number,
): number {
  return sameWindow
    ? slidingEstimate(table.previous[slot]!, current, rule.windowMs, elapsed)
    : slidingEstimate(current, 0, rule.windowMs, elapsed);
}

/** Local mode: one process's own counts are the whole truth. */
export class LocalCounting implements CounterPolicy {
  constructor(private readonly table: KeyTable) {}

  added(): void {}

  roll(slot: number): number {
    return this.table.current[slot]!;
  }

  evaluate(s: DecisionScratch, i: number, slot: number, rule: CompiledRule): number {
    return judgeSliding(s, i, rule, this.table.previous[slot]!, this.table.current[slot]!);
  }

  commit(): void {}

  used(slot: number, rule: CompiledRule, sameWindow: boolean, elapsed: number): number {
    return slidingUsed(this.table, slot, rule, this.table.current[slot]!, sameWindow, elapsed);
  }
}
