/**
 * Exact shared counting: a rule whose limit is small next to the replica count (or that asks for
 * it with `counting: exact`) is decided by the store, in one atomic operation per request that
 * judges every such counter of the request by its sliding estimate and counts the request in all
 * of them or none. Approximate sharing would admit up to about 2 × replicas too many per window,
 * which is a lot for 10/m; this costs one store round trip per request instead (measured in
 * docs/rate-limiting.md).
 *
 * The store's rows are the ones approximate sharing adds deltas to, so a rule can move between the
 * two as the replica count changes. A counter this replica already knows is full is refused
 * without asking (totals only grow within a window, so a stale view can only under-count). While
 * the store is unreachable, or when the operation fails, --on-store-error decides: 'open' admits
 * and counts locally (pushed with the next sync), 'deny' refuses.
 */
import type { ExactCounter, ExactTakeResult } from '../store/types.js';
import { type CounterPolicy, judgeSliding } from './counting.js';
import { type Decision, type DecisionScratch, OVER, STORE, WITHIN } from './decision.js';
import type { KeyTable } from './key-table.js';
import { type CompiledRule, counterKey } from './matcher.js';
import type { SharedCounting } from './shared-policy.js';
import { msUntilAvailable, slidingEstimate } from './sliding.js';

/** A decision waiting for the store: what to ask it, and how to decide from its answer. */
export interface ExactTake {
  readonly counters: ExactCounter[];
  /** The decision from the store's answer, or from --on-store-error when it failed (undefined). */
  settle(result: ExactTakeResult | undefined): Decision;
}

/** What the limiter keeps of a decision while the store decides it. */
export interface WaitingDecision {
  readonly scratch: DecisionScratch;
  /** 1 for the counters the store decides; the others were counted when the decision was made. */
  readonly exact: Uint8Array;
}

export class ExactCounting implements CounterPolicy {
  constructor(
    private readonly shared: SharedCounting,
    private readonly table: KeyTable,
  ) {}

  /** Whether a rule may ever be counted exactly (shadow rules never hold a request up). */
  handles(rule: CompiledRule): boolean {
    return !rule.shadow && rule.rule.counting !== 'approximate';
  }

  /** Whether the rule is counted exactly right now: asked for, or small next to the replica count. */
  exactNow(rule: CompiledRule): boolean {
    if (rule.rule.counting === 'exact') return true;
    const replicas = this.shared.replicas;
    return replicas > 1 && rule.cap < this.shared.exactPerReplica * replicas;
  }

  added(slot: number, rule: CompiledRule, windowStart: number): void {
    this.shared.added(slot, rule, windowStart);
  }

  roll(slot: number, rule: CompiledRule, windowStart: number): number {
    return this.shared.roll(slot, rule, windowStart);
  }

  evaluate(s: DecisionScratch, i: number, slot: number, rule: CompiledRule, now: number): number {
    if (!this.exactNow(rule)) return this.shared.evaluate(s, i, slot, rule, now);
    if (judgeSliding(s, i, rule, this.table.previous[slot]!, this.shared.known(slot)) === OVER) return OVER;
    if (this.shared.storeHealthy) {
      s.state[i] = STORE;
      return STORE;
    }
    return storeFailed(s, i, this.shared, rule);
  }

  commit(s: DecisionScratch, i: number, slot: number): void {
    this.shared.commit(s, i, slot);
  }

  used(slot: number, rule: CompiledRule, sameWindow: boolean, elapsed: number): number {
    return this.shared.used(slot, rule, sameWindow, elapsed);
  }

  /** What to ask the store for the counters of a decision that the store decides. */
  static counters(
    host: { readonly table: KeyTable; readonly compiledRules: readonly CompiledRule[] },
    s: DecisionScratch,
  ): ExactCounter[] {
    const counters: ExactCounter[] = [];
    for (let i = 0; i < s.rule.length; i++) {
      if (s.state[i] !== STORE) continue;
      const rule = host.compiledRules[s.rule[i]!]!;
      counters.push({
        key: counterKey(rule, host.table.partition(s.slot[i]!)),
        windowStart: s.windowStart[i]!,
        windowMs: rule.windowMs,
        leftMs: rule.windowMs - s.elapsed[i]!,
        cap: rule.cap,
      });
    }
    return counters;
  }
}

/** --on-store-error for an exact counter: 'open' admits (counted locally), 'deny' refuses. */
function storeFailed(s: DecisionScratch, i: number, shared: SharedCounting, rule: CompiledRule): number {
  const failClosed = shared.failClosed;
  shared.storeErrorDecisions?.count(rule.info.id, !failClosed);
  if (!failClosed) {
    s.state[i] = WITHIN;
    return WITHIN;
  }
  s.state[i] = OVER;
  s.remaining[i] = 0;
  s.retryMs[i] = 1000;
  return OVER;
}

/**
 * Applies the store's answer (or its failure, as undefined) to a waiting decision: each exact
 * counter's state, remaining and retry, and what this replica knows of its totals. Returns whether
 * the request is refused. Admitted counters are counted as acknowledged (the store has them).
 */
export function settleExact(
  host: { readonly table: KeyTable; readonly compiledRules: readonly CompiledRule[] },
  shared: SharedCounting,
  take: WaitingDecision,
  result: ExactTakeResult | undefined,
): boolean {
  const s = take.scratch;
  const table = host.table;
  let rejected = false;
  let k = 0;
  for (let i = 0; i < s.rule.length; i++) {
    const rule = host.compiledRules[s.rule[i]!]!;
    if (s.state[i] === OVER && !rule.shadow) rejected = true;
    if (s.state[i] !== STORE) continue;
    const slot = s.slot[i]!;
    const live = table.generation[slot] === s.generation[i] && table.windowStart[slot] === s.windowStart[i];
    if (!result) {
      if (storeFailed(s, i, shared, rule) === OVER) rejected = true;
      else if (live) {
        table.current[slot]!++;
        shared.commit(s, i, slot);
      }
      k++;
      continue;
    }
    const previous = result.previous[k] ?? 0;
    const current = result.current[k] ?? 0;
    k++;
    const elapsed = s.elapsed[i]!;
    if (live) {
      table.previous[slot] = Math.max(table.previous[slot]!, previous);
      shared.global[slot] = Math.max(shared.global[slot]!, current);
    }
    if (result.admitted) {
      s.state[i] = WITHIN;
      const estimate = slidingEstimate(previous, current, rule.windowMs, elapsed);
      s.remaining[i] = Math.max(0, rule.limit - estimate);
      if (s.remaining[i] === 0)
        s.resetMs[i] = Math.max(1, msUntilAvailable(previous, current, rule.windowMs, elapsed, rule.limit));
      if (live) {
        table.current[slot]!++;
        shared.acked[slot]!++;
      }
      continue;
    }
    // Refused: this counter may or may not be the full one; report the ones that are.
    const estimate = slidingEstimate(previous, current, rule.windowMs, elapsed);
    if (estimate + 1 > rule.cap) {
      s.state[i] = OVER;
      s.remaining[i] = 0;
      s.retryMs[i] = msUntilAvailable(previous, current, rule.windowMs, elapsed, rule.cap);
      rejected = true;
    } else {
      s.state[i] = WITHIN;
      s.remaining[i] = Math.max(0, rule.limit - estimate);
    }
  }
  // A refusal names at least one full counter; a store that answered "no" without one still refuses.
  if (result && !result.admitted && !rejected) {
    for (let i = 0; i < s.rule.length; i++)
      if (s.state[i] === WITHIN && s.retryMs[i] === 0) s.retryMs[i] = 1000;
    for (let i = 0; i < s.rule.length; i++) {
      if (!host.compiledRules[s.rule[i]!]!.shadow) {
        s.state[i] = OVER;
        break;
      }
    }
    rejected = true;
  }
  return rejected;
}
