/**
 * What a decision is made of: the answer a request gets (Decision), and the per-request scratch the
 * limiter fills while it evaluates every matching counter before it commits any (DecisionScratch).
 */
import type { CompiledRule, RuleInfo } from './matcher.js';
import type { Rule } from './rule.js';

export interface Decision {
  readonly allowed: boolean;
  /**
   * The enforced rule to report in headers: the one that rejected (the longest wait if several),
   * else the most constrained one that applied (least remaining). Undefined when none applied.
   */
  readonly rule: RuleInfo | undefined;
  /** The rule's advertised limit (without burst). */
  readonly limit: number;
  /** Requests left for the rule after this one, counted against `limit`, as this process knows it. */
  readonly remaining: number;
  /**
   * Seconds until the rule's quota frees up: when rejected, equal to retryAfterSeconds; when
   * admitted with nothing remaining, when one more request would fit (so a 200 with r=0 and the
   * 429 after it agree); otherwise when the rule's current window ends.
   */
  readonly resetSeconds: number;
  /** Whole seconds to wait before retrying (rounded up, at least 1) when rejected; 0 otherwise. */
  readonly retryAfterSeconds: number;
  readonly rejectedBy: string | undefined;
  /** Shadow rules that would have rejected this request. */
  readonly shadowExceeded: readonly string[];
}

/** One rule's state for a request, as `inspect` reports it. */
export interface RuleUsage {
  readonly rule: RuleInfo;
  /** The counter this request would count against (rule id and partition). */
  readonly key: string;
  /** Requests counted in the sliding window right now. */
  readonly used: number;
  readonly remaining: number;
  readonly resetSeconds: number;
}

export interface LimiterStats {
  readonly keys: number;
  readonly maxKeys: number;
  readonly allocatedSlots: number;
  /** Times a rule could not track a new key because the table was full of active keys. */
  readonly untracked: number;
  /** Keys with deltas the shared store has not acknowledged yet, plus retired windows pending. */
  readonly pendingSync: number;
}

export interface RuleStats {
  readonly id: string;
  readonly mode: Rule['mode'];
  /** Requests the rule applied to. */
  readonly matched: number;
  /** Requests rejected with this rule over its limit. */
  readonly rejected: number;
  /** Requests this shadow rule would have rejected. */
  readonly shadowExceeded: number;
}

export const NO_SHADOW: readonly string[] = Object.freeze([]);

/** Whether a matched counter lets the request through (its state in DecisionScratch.state). */
export const WITHIN = 0;
/** Over its limit (or refused for another reason: table full, share used up, store down with deny). */
export const OVER = 1;
/** Lease mode: no permit and no known refusal; ask the primary first. */
export const PENDING = 2;
/** Exact shared counting: the store decides, in one atomic operation. */
export const STORE = 3;

/**
 * A decision that cannot be made in memory. The proxy route parks the request until the limiter
 * can decide it (see LEASE_PENDING in the lease policy and STORE_PENDING in the exact policy).
 */
function pendingDecision(): Decision {
  return Object.freeze({
    allowed: false,
    rule: undefined,
    limit: 0,
    remaining: 0,
    resetSeconds: 0,
    retryAfterSeconds: 0,
    rejectedBy: undefined,
    shadowExceeded: NO_SHADOW,
  });
}

/**
 * Lease mode: the answer when a matching counter holds no permit and no known refusal. Nothing
 * was counted; ask for the queued leases (collectAsks) and decide again once they are in.
 */
export const LEASE_PENDING: Decision = pendingDecision();

/**
 * Exact shared counting: the answer when a matching counter is decided by the store. The other
 * counters are counted already; `Limiter.takeStorePending()` hands over what to ask the store, and
 * `Limiter.settleTake()` makes the decision from its answer.
 */
export const STORE_PENDING: Decision = pendingDecision();

/** Per matched counter of one request: which rule and slot, and what its policy found. */
export class DecisionScratch {
  readonly rule: Int32Array;
  readonly slot: Int32Array;
  /** The slot's generation at evaluation (a decision that waits checks the slot is still its). */
  readonly generation: Uint32Array;
  readonly state: Uint8Array;
  readonly remaining: Float64Array;
  readonly resetMs: Float64Array;
  readonly retryMs: Float64Array;
  /** Milliseconds into the rule's window at evaluation. */
  readonly elapsed: Float64Array;
  readonly windowStart: Float64Array;

  constructor(size: number) {
    this.rule = new Int32Array(size);
    this.slot = new Int32Array(size);
    this.generation = new Uint32Array(size);
    this.state = new Uint8Array(size);
    this.remaining = new Float64Array(size);
    this.resetMs = new Float64Array(size);
    this.retryMs = new Float64Array(size);
    this.elapsed = new Float64Array(size);
    this.windowStart = new Float64Array(size);
  }

  /** The first `count` entries, copied (for a decision that has to wait while others are made). */
  copy(count: number): DecisionScratch {
    const copy = new DecisionScratch(count);
    copy.rule.set(this.rule.subarray(0, count));
    copy.slot.set(this.slot.subarray(0, count));
    copy.generation.set(this.generation.subarray(0, count));
    copy.state.set(this.state.subarray(0, count));
    copy.remaining.set(this.remaining.subarray(0, count));
    copy.resetMs.set(this.resetMs.subarray(0, count));
    copy.retryMs.set(this.retryMs.subarray(0, count));
    copy.elapsed.set(this.elapsed.subarray(0, count));
    copy.windowStart.set(this.windowStart.subarray(0, count));
    return copy;
  }
}

/** Per rule: requests refused with it over its limit, and requests a shadow rule would have refused. */
export interface DecisionCounts {
  readonly rejected: Float64Array;
  readonly shadowExceeded: Float64Array;
}

/**
 * The answer for a request whose matched counters are all judged (`matched` entries of `s`),
 * counted into `counts`. When refused, the rule reported is the over one with the longest wait;
 * when admitted, the enforced one with the least remaining.
 */
export function decisionOf(
  s: DecisionScratch,
  matched: number,
  rejected: boolean,
  rules: readonly CompiledRule[],
  counts: DecisionCounts,
): Decision {
  let chosen = -1;
  let shadowExceeded = NO_SHADOW;
  for (let i = 0; i < matched; i++) {
    const r = s.rule[i]!;
    const rule = rules[r]!;
    if (rule.shadow) {
      if (s.state[i] === OVER) {
        counts.shadowExceeded[r]!++;
        if (shadowExceeded === NO_SHADOW) shadowExceeded = [];
        (shadowExceeded as string[]).push(rule.info.id);
      }
      continue;
    }
    if (rejected) {
      if (s.state[i] !== OVER) continue;
      counts.rejected[r]!++;
      if (chosen < 0 || s.retryMs[i]! > s.retryMs[chosen]!) chosen = i;
    } else if (chosen < 0 || s.remaining[i]! < s.remaining[chosen]!) {
      chosen = i;
    }
  }
  if (chosen < 0) {
    return {
      allowed: !rejected,
      rule: undefined,
      limit: 0,
      remaining: 0,
      resetSeconds: 0,
      retryAfterSeconds: 0,
      rejectedBy: undefined,
      shadowExceeded,
    };
  }
  const info = rules[s.rule[chosen]!]!.info;
  const retryAfterSeconds = rejected ? Math.max(1, Math.ceil(s.retryMs[chosen]! / 1000)) : 0;
  return {
    allowed: !rejected,
    rule: info,
    limit: info.limit,
    remaining: s.remaining[chosen]!,
    resetSeconds: rejected ? retryAfterSeconds : Math.ceil(s.resetMs[chosen]! / 1000),
    retryAfterSeconds,
    rejectedBy: rejected ? info.id : undefined,
    shadowExceeded,
  };
}
