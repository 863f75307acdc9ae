/**
 * The rate limiter: synchronous decisions in process memory, optionally shared across replicas
 * (approximately, below) or across the workers of one host (exactly, with leases: see the end).
 *
 * Algorithm: sliding window counter. Each counter key keeps the count of its current aligned fixed
 * window and the total of the previous one; the load of the last `window` is estimated as
 *   current + floor(previous × (time left in the current window / window))
 * (rounded down: see sliding.ts), and a request is admitted when estimate + 1 ≤ limit + burst.
 * We chose it over GCRA because its state is plain counts per aligned window, and counts add up
 * across replicas: the shared store (`CounterBackend.sync`, keyed `${key}@${windowStart}`) only has
 * to sum deltas. GCRA keeps one theoretical arrival time per key, which several writers cannot
 * merge without a read-modify-write round trip per request. Inside one window whose predecessor
 * was empty the estimate is the exact count, so a single process admits exactly N of a burst and
 * refuses the N+1th; across a window boundary it smooths (no 2N burst at the edge as with fixed
 * windows).
 *
 * Decide all, then commit: every matching rule is evaluated first, and only if no enforced rule is
 * over do the counters of all matching rules (enforced and shadow) go up. A rejected request thus
 * consumes nothing — not the quota of the rules that would have admitted it, nor shadow counts
 * (shadow rules measure traffic that actually goes through). Shadow rules over their limit are
 * reported in `shadowExceeded` either way.
 *
 * Shared counters (see counter-sync.ts), for replicas on PostgreSQL or Redis — whether separate
 * hosts or the workers of `serve --workers N` on such a store. A replica decides with what it knows: the last total the
 * store returned for the key's window plus its own admissions not yet acknowledged. To bound the
 * admissions nobody else can see yet, each replica may hold at most
 *   allowance = max(1, floor((c × (cap − K(ack)) + (K(ack) − K(now))) / R))
 * unacknowledged admissions per key. K(t) is the last-known global estimate evaluated at time t
 * (it only changes with time through the previous window's decay), ack the time of the last
 * acknowledged push, R the live replicas the store reports, and c the share factor (1 when R = 1,
 * else 1/4 by default). In words: a fraction c/R of what was left at the last sync, plus 1/R of
 * the room the previous window's decay has freed since — that room is certain, not a guess, and
 * it is what lets steady traffic below the limit through. The allowance refills with every
 * acknowledged push, i.e. about once per sync interval.
 *
 * Bound. Let D_k be the quota left after sync round k. A replica's view is at most one round
 * stale: it includes everything pushed up to round k−1 plus its own round-k push. In the worst
 * case (the replica that pushed last in round k took all of round k's admissions) the replicas
 * together admit during round k+1 at most c × ((1 − 1/R)·D_{k−1} + D_k/R) plus the room freed
 * during the round (which adds to D as much as it takes), so
 *   D_{k+1} ≥ (1 − c/R)·D_k − c·(1 − 1/R)·D_{k−1}
 * which never goes negative when its roots are real, i.e. (1 − c/R)² ≥ 4c(1 − 1/R); c = 1/4
 * satisfies it for every R (R=2 would allow 0.34, R=4 0.29, R→∞ exactly 0.25). What remains is
 * the floor of one request per replica per round while its view is stale, about 2R requests. So,
 * with every replica pushing once per interval and each push completing within it:
 *   admitted(any window) ≤ limit + burst + 2R          (1000/10s on 4 replicas: ≤ 1008)
 * Measured (test/limits/counter-sync.test.ts and the same harness over longer runs, 1–15 ms store
 * latency each way): 4 replicas hammering 1000/10s admit 1003 in the first window and 990–995 in
 * later ones (max over any sliding 10 s: 1008); 8 replicas 1007 (sliding max 1011); all traffic on
 * one replica 1000.
 * Caveats, all from views that are older than one round:
 * - A replica's view of a key refreshes only when it pushes deltas for that key. A replica that has
 *   not served a key for a while decides its next requests with an old total and may spend one
 *   allowance on it before its push returns. The floor of 1 makes this visible on small limits:
 *   10/m spread thinly over 4 replicas admitted 13–14 per window.
 * - A replica that first sees a key knows neither total until its first push returns (it reads the
 *   previous window's total with that push), so it may add one allowance, at most c·cap/R.
 * - R is learned from the store: on a simultaneous cold start the first replica to push may
 *   briefly believe it is alone (initialReplicas sets the assumption until then).
 * Utilisation: the share is counted in requests per sync interval, so tiny shares are lumpy. With
 * 100/s on 4 replicas at I = 100 ms (2.5 requests per replica per interval), saturating traffic got
 * ~90% of the limit, and Poisson traffic at 88% of the limit had ~18% of its requests rejected;
 * 1000/10s saturated got 99%. Shorter sync intervals or a burst on 1 s rules help there.
 *
 * Store outage. `onStoreError: 'open'` (default) drops the allowance while the store is
 * unreachable: each replica keeps limiting with its own counts plus the last-known totals (so the
 * cluster may admit up to R× the remainder). `'deny'` keeps the allowance, which then stops
 * refilling: each replica spends at most its current share of every shared key and then rejects
 * until the store answers again, so the cluster stays within the bound above.
 *
 * Leases: exact limits across the workers of one host (`serve --workers N`, embedded store). There
 * the shared-counter bound above (limit + burst + about 2 × workers) is not good enough, and a round
 * trip per request is not needed either: the primary, which owns the store, keeps the one set of
 * counts and grants permits out of it (lease-arbiter.ts explains why that is exact), and each
 * worker's limiter runs in lease mode (enableLeases; driven by lease-client.ts). Per counter the
 * worker holds permits for the current window, or a known refusal (until when, and the Retry-After
 * the primary computed), or neither. The decision keeps the decide-all-then-commit shape: a counter
 * with a permit is within, one with a known refusal is over, and one with neither makes the whole
 * decision LEASE_PENDING (nothing counted, an ask queued) unless another enforced rule already
 * refuses the request synchronously. Committing spends one permit per counter. Shadow rules never
 * hold a request up: without a permit they count it anyway (a debt the next grant pays) and ask in
 * the background. Permits of a window that has ended are void and go back to the primary, so they
 * do not inflate its "previous" count. While the primary does not answer, onStoreError decides for
 * counters without permits ('open': admit and owe, 'deny': refuse). In lease mode `current` and
 * `previous` are this worker's own counts (statistics only) and `global` is the primary's estimate
 * at the last grant, from which the headers' `remaining` is derived.
 *
 * Memory: counters live in a KeyTable (typed arrays, a few numbers per key, allocated for `maxKeys`
 * up front and resident only as slots are used). About 85 bytes per key with 1,000,000 per-IP keys
 * (RSS +106 MB): 68 in the typed arrays, ~8 of IPv4 hash, 8 of pointer — since `by: [ip]`
 * counters of IPv4 clients are keyed by the address as a number; other partitions (IPv6, paths,
 * headers) add a Map entry and a string, ~72 bytes on the JS heap. Idle keys expire and the table
 * never evicts an active key. When all `maxKeys` slots hold active keys, a new key is not tracked:
 * `onTableFull: 'open'` (default) lets its rule pass the request uncounted (other rules still
 * apply; stats().untracked counts these), `'deny'` rejects it.
 */
import type { CounterDelta, CounterSyncResult } from '../store/types.js';
import { parseIpInto } from './ip.js';
import { KeyTable } from './key-table.js';
import type { LeaseAsk, LeaseGrant, LeaseReturn } from './lease-arbiter.js';
import {
  type CompiledRule,
  compileRules,
  counterKey,
  type LimitRequest,
  partitionValue,
  RequestScratch,
  type RuleInfo,
  ruleMatches,
} from './matcher.js';
import type { Rule } from './rule.js';
import { msUntilAvailable, slidingEstimate } from './sliding.js';

export interface LimiterOptions {
  /** Most counter keys kept in memory (default 1,000,000). */
  readonly maxKeys?: number;
  /** What a rule does with a new key when every slot holds an active key (default 'open'). */
  readonly onTableFull?: 'open' | 'deny';
  /** Clock in epoch milliseconds (default Date.now). */
  readonly clock?: () => number;
}

export interface Decision {
  readonly allowed: boolean;
  /**
   * The enforced rule to report in headers: the one that rejected (the longest wait if several),
   * else the most constrained one that applied (least remaining). Undefined when none applied.
   */
  readonly rule: RuleInfo | undefined;
  /** The rule's advertised limit (without burst). */
  readonly limit: number;
  /** Requests left for the rule after this one, counted against `limit`. */
  readonly remaining: number;
  /** Seconds until the rule's current window ends; when rejected, equal to retryAfterSeconds. */
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

export interface SharingOptions {
  /** c in the allowance formula, used when more than one replica is live (default 0.25). */
  readonly shareFactor?: number;
  /** Keep enforcing the allowance while the store is unreachable (fail closed). */
  readonly failClosed?: boolean;
  /** Replicas to assume until the store has answered once (default 1). */
  readonly initialReplicas?: number;
}

/** One key's deltas for one window, as collected for a push; the bookkeeping to settle it after. */
export interface PendingDelta {
  readonly delta: CounterDelta;
  readonly totalKey: string;
  /** Slot and generation for a live window; slot −1 for a retired window held in the outbox. */
  readonly slot: number;
  readonly generation: number;
  readonly rule: number;
  readonly partition: string;
}

/** Lease mode: how a worker holds and sizes its permits (see lease-client.ts). */
export interface LeaseOptions {
  /** A lease should last about this long at the key's recent rate (two sync intervals). */
  readonly targetMs: number;
  /** Permits held longer than this since their grant go back to the primary (demand fell). */
  readonly holdMs: number;
  /** While the primary does not answer: refuse (true) or admit uncounted (false). */
  readonly failClosed: boolean;
  /** Called when the first ask of a batch is queued, so the caller can schedule the batch. */
  readonly onAsk: () => void;
}

/** One queued ask, with what it takes to find its slot again when the grant comes back. */
export interface LeaseRequest {
  readonly ask: LeaseAsk;
  readonly ruleId: string;
  readonly partition: string;
}

interface RetiredWindow {
  readonly key: string;
  readonly rule: number;
  readonly partition: string;
  readonly windowStart: number;
  readonly windowMs: number;
  /** Admissions not acknowledged yet (may be 0: then the push only reads the final total). */
  delta: number;
  pushed: boolean;
}

const NO_SHADOW: readonly string[] = Object.freeze([]);

/**
 * Lease mode: the answer when a matching counter holds no permit and no known refusal. Nothing
 * was counted; ask for the queued leases (collectAsks) and decide again once they are in.
 */
export const LEASE_PENDING: Decision = Object.freeze({
  allowed: false,
  rule: undefined,
  limit: 0,
  remaining: 0,
  resetSeconds: 0,
  retryAfterSeconds: 0,
  rejectedBy: undefined,
  shadowExceeded: NO_SHADOW,
});
const IP_WORDS = new Uint32Array(4);

/** The partition text of an IPv4 `by: [ip]` counter as a number, -1 for anything else (IPv6). */
function ipv4Number(partition: string): number {
  return partition.indexOf(':') < 0 && parseIpInto(partition, IP_WORDS) === 4 ? IP_WORDS[0]! : -1;
}
/** Reads of previous-window totals for new keys are a nicety; a stuck store must not pile them up. */
const MAX_PENDING_READS = 65_536;
/** Slots store their rule index in 16 bits. */
const MAX_RULES = 65_535;

export class Limiter {
  private readonly compiled: CompiledRule[];
  private readonly table: KeyTable;
  private readonly clock: () => number;
  private readonly denyWhenFull: boolean;
  private readonly scratch = new RequestScratch();
  private readonly matchedRule: Int32Array;
  private readonly matchedSlot: Int32Array;
  private readonly over: Uint8Array;
  private readonly remaining: Float64Array;
  private readonly resetMs: Float64Array;
  private readonly retryMs: Float64Array;
  private readonly statMatched: Float64Array;
  private readonly statRejected: Float64Array;
  private readonly statShadow: Float64Array;
  private readonly fixedSlot: Int32Array;
  /** The slot's generation when fixedSlot was taken: any removal or reuse since changes it. */
  private readonly fixedGeneration: Uint32Array;
  /** 1 for a rule partitioned by the client address alone (`by: [ip]`): see KeyTable.getIp4. */
  private readonly ipRule: Uint8Array;
  private untracked = 0;

  private shared = false;
  private storeHealthy = true;
  private failClosed = false;
  private shareFactor = 0.25;
  private replicas = 1;
  private readonly retired = new Map<string, RetiredWindow>();

  private leasing = false;
  private leaseHealthy = true;
  private lease: LeaseOptions | undefined;
  private readonly ruleIndex = new Map<string, number>();
  private askSlots: number[] = [];
  private askGenerations: number[] = [];
  private readonly returns = new Map<string, LeaseReturn>();

  constructor(rules: readonly Rule[], options: LimiterOptions = {}) {
    if (rules.length > MAX_RULES) throw new RangeError(`at most ${MAX_RULES} rules, got ${rules.length}`);
    this.compiled = compileRules(rules);
    this.table = new KeyTable(options.maxKeys ?? 1_000_000);
    this.clock = options.clock ?? Date.now;
    this.denyWhenFull = options.onTableFull === 'deny';
    const n = this.compiled.length;
    this.matchedRule = new Int32Array(n);
    this.matchedSlot = new Int32Array(n);
    this.over = new Uint8Array(n);
    this.remaining = new Float64Array(n);
    this.resetMs = new Float64Array(n);
    this.retryMs = new Float64Array(n);
    this.statMatched = new Float64Array(n);
    this.statRejected = new Float64Array(n);
    this.statShadow = new Float64Array(n);
    this.fixedSlot = new Int32Array(n).fill(-1);
    this.fixedGeneration = new Uint32Array(n);
    this.ipRule = Uint8Array.from(this.compiled, (rule) =>
      rule.rule.by.length === 1 && rule.rule.by[0] === 'ip' ? 1 : 0,
    );
    for (const rule of this.compiled) this.ruleIndex.set(rule.info.id, rule.index);
  }

  get rules(): readonly RuleInfo[] {
    return this.compiled.map((rule) => rule.info);
  }

  decide(request: LimitRequest, now: number = this.clock()): Decision {
    const scratch = this.scratch;
    scratch.reset(request);
    const rules = this.compiled;
    const table = this.table;
    let matched = 0;
    let rejected = false;
    let pending = 0;

    for (let r = 0; r < rules.length; r++) {
      const rule = rules[r]!;
      if (!ruleMatches(rule, scratch)) continue;
      this.statMatched[r]!++;
      const windowMs = rule.windowMs;
      let elapsed = now % windowMs;
      let windowStart = now - elapsed;
      // A `by: [ip]` counter of an IPv4 client is keyed by the address as a number (no string).
      const address = this.ipRule[r] === 1 && scratch.ipFamily() === 4 ? scratch.words[0]! : -1;
      const partition = address >= 0 ? '' : partitionValue(rule, scratch);
      // An unpartitioned rule has one counter for ever: remember its slot and skip the Map.
      let slot = this.fixedSlot[r]!;
      if (address >= 0) slot = table.getIp4(r, address);
      else if (slot < 0 || table.generation[slot] !== this.fixedGeneration[r]) {
        slot = table.get(r, partition);
        if (rule.byKinds.length === 0) this.fixSlot(r, slot);
      }
      if (slot < 0) {
        slot =
          address >= 0
            ? table.insertIp4(r, address, rule.windowSlot, windowStart, now)
            : table.insert(r, partition, rule.windowSlot, windowStart, now);
        if (rule.byKinds.length === 0) this.fixSlot(r, slot);
        if (slot < 0) {
          this.untracked++;
          if (!this.denyWhenFull || rule.shadow) continue;
        } else if (this.shared && this.storeHealthy && this.retired.size < MAX_PENDING_READS) {
          this.retire(r, table.partition(slot), windowStart - windowMs, 0);
        }
      } else {
        const slotStart = table.windowStart[slot]!;
        if (slotStart < windowStart) this.roll(slot, rule, windowStart);
        else if (slotStart > windowStart) {
          // The wall clock stepped back: keep counting in the newer window rather than reset it.
          windowStart = slotStart;
          elapsed = 0;
        }
        table.touch(slot);
      }

      const i = matched++;
      this.matchedRule[i] = r;
      this.matchedSlot[i] = slot;
      this.resetMs[i] = windowMs - elapsed;
      if (slot < 0) {
        // Table full of active keys and onTableFull = 'deny'.
        this.over[i] = 1;
        this.remaining[i] = 0;
        this.retryMs[i] = 1000;
        rejected = true;
        continue;
      }
      if (this.leasing) {
        const state = this.leaseState(i, slot, rule, now);
        if (state === 1 && !rule.shadow) rejected = true;
        else if (state === 2) pending++;
        continue;
      }
      const previous = table.previous[slot]!;
      const local = table.current[slot]!;
      const current = this.shared ? Math.max(local, table.global[slot]! + local - table.acked[slot]!) : local;
      const estimate = slidingEstimate(previous, current, windowMs, elapsed);
      let isOver = estimate + 1 > rule.cap;
      let retry = 0;
      if (isOver) {
        retry = msUntilAvailable(previous, current, windowMs, elapsed, rule.cap);
      } else if (
        this.shared &&
        (this.storeHealthy || this.failClosed) &&
        this.overShare(slot, rule, windowStart, elapsed)
      ) {
        isOver = true;
        // The share refills with the next acknowledged push, well within a second.
        retry = 1000;
      }
      this.over[i] = isOver ? 1 : 0;
      this.retryMs[i] = retry;
      this.remaining[i] = isOver ? 0 : Math.max(0, rule.limit - estimate - 1);
      if (isOver && !rule.shadow) rejected = true;
    }

    if (pending > 0 && !rejected) {
      // Wait for permits: count nothing, and let the decision made once they are in be the one.
      for (let i = 0; i < matched; i++) {
        this.statMatched[this.matchedRule[i]!]!--;
        if (this.over[i] === 2) this.ask(this.matchedSlot[i]!, 1);
      }
      scratch.reset(undefined);
      return LEASE_PENDING;
    }
    if (!rejected) {
      for (let i = 0; i < matched; i++) {
        const slot = this.matchedSlot[i]!;
        if (slot < 0) continue;
        table.current[slot]!++;
        if (this.shared) table.markDirty(slot);
        // A known refusal of a shadow rule is not counted against the primary's budget.
        else if (this.leasing && this.over[i] !== 1) {
          const left = --table.permits[slot]!;
          // Half the lease is used: ask for the next one now, so steady traffic never waits.
          if (left > 0 && 2 * left <= table.leaseSize[slot]! && table.asking[slot] === 0) this.ask(slot, 0);
        }
      }
    }
    scratch.reset(undefined);
    return this.result(matched, rejected);
  }

  /** Remembers the one slot of an unpartitioned rule, valid until the table removes or reuses it. */
  private fixSlot(rule: number, slot: number): void {
    this.fixedSlot[rule] = slot;
    if (slot >= 0) this.fixedGeneration[rule] = this.table.generation[slot]!;
  }

  private result(matched: number, rejected: boolean): Decision {
    const rules = this.compiled;
    let chosen = -1;
    let shadowExceeded = NO_SHADOW;
    for (let i = 0; i < matched; i++) {
      const r = this.matchedRule[i]!;
      const rule = rules[r]!;
      if (rule.shadow) {
        if (this.over[i] === 1) {
          this.statShadow[r]!++;
          if (shadowExceeded === NO_SHADOW) shadowExceeded = [];
          (shadowExceeded as string[]).push(rule.info.id);
        }
        continue;
      }
      if (rejected) {
        if (this.over[i] !== 1) continue;
        this.statRejected[r]!++;
        if (chosen < 0 || this.retryMs[i]! > this.retryMs[chosen]!) chosen = i;
      } else if (chosen < 0 || this.remaining[i]! < this.remaining[chosen]!) {
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
    const info = rules[this.matchedRule[chosen]!]!.info;
    const retryAfterSeconds = rejected ? Math.max(1, Math.ceil(this.retryMs[chosen]! / 1000)) : 0;
    return {
      allowed: !rejected,
      rule: info,
      limit: info.limit,
      remaining: this.remaining[chosen]!,
      resetSeconds: rejected ? retryAfterSeconds : Math.ceil(this.resetMs[chosen]! / 1000),
      retryAfterSeconds,
      rejectedBy: rejected ? info.id : undefined,
      shadowExceeded,
    };
  }

  /**
   * Lease mode: the state of one matched counter — 0 within (a permit in hand, or admitted without
   * one: a shadow rule, or the primary unreachable with onStoreError 'open'), 1 over (a known
   * refusal, or the primary unreachable with 'deny'), 2 pending (ask the primary first).
   */
  private leaseState(i: number, slot: number, rule: CompiledRule, now: number): number {
    const table = this.table;
    const permits = table.permits[slot]!;
    let state = 0;
    let retry = 0;
    if (permits > 0) state = 0;
    else if (table.deniedUntil[slot]! > now) {
      state = 1;
      retry = Math.max(0, table.retryAt[slot]! - now);
    } else if (!this.leaseHealthy) {
      // Keep one ask going per key: its answer is how we learn the primary is back.
      this.ask(slot, 0);
      if (this.lease!.failClosed && !rule.shadow) {
        state = 1;
        retry = 1000;
      }
    } else if (rule.shadow) {
      // Shadow rules never hold a request up: count it now, settle with the next grant.
      this.ask(slot, 0);
    } else state = 2;
    this.over[i] = state;
    this.retryMs[i] = retry;
    const used = Math.max(0, table.global[slot]! - Math.max(0, permits));
    this.remaining[i] = state === 1 ? 0 : Math.max(0, rule.limit - used - 1);
    return state;
  }

  /** Queues an ask for a slot's counter (once per batch); `waiting` requests will wait for it. */
  private ask(slot: number, waiting: number): void {
    const table = this.table;
    table.waiting[slot]! += waiting;
    if (table.asking[slot] !== 0) return;
    table.asking[slot] = 1;
    this.askSlots.push(slot);
    this.askGenerations.push(table.generation[slot]!);
    if (this.askSlots.length === 1) this.lease?.onAsk();
  }

  /**
   * Whether this replica has used up its share of a shared key: the allowance derived at the top of
   * this file, i.e. a fraction c/R of what was left at the last acknowledged push, plus 1/R of what
   * the previous window's decay has freed since (room that is certain, not a guess).
   */
  private overShare(slot: number, rule: CompiledRule, windowStart: number, elapsed: number): boolean {
    const table = this.table;
    const previous = table.previous[slot]!;
    const base = Math.max(table.global[slot]!, table.acked[slot]!);
    const known = slidingEstimate(previous, base, rule.windowMs, elapsed);
    const ackElapsed = Math.min(elapsed, Math.max(0, table.ackedAt[slot]! - windowStart));
    const knownAtAck = slidingEstimate(previous, base, rule.windowMs, ackElapsed);
    const c = this.replicas === 1 ? 1 : this.shareFactor;
    const allowance = Math.floor((c * (rule.cap - knownAtAck) + (knownAtAck - known)) / this.replicas);
    return table.current[slot]! - table.acked[slot]! >= Math.max(1, allowance);
  }

  /** Moves a slot to the window starting at `windowStart`, keeping what the sliding estimate needs. */
  private roll(slot: number, rule: CompiledRule, windowStart: number): void {
    const table = this.table;
    const oldStart = table.windowStart[slot]!;
    const local = table.current[slot]!;
    let total = local;
    if (this.leasing) {
      // Permits of the old window are void now: hand them back so they stop counting as admitted.
      // A debt (admitted without a permit, not yet counted by the primary) stays, to be charged to
      // the new window: counted later rather than not at all, which can only make limits stricter.
      const held = table.permits[slot]!;
      if (held > 0) {
        this.giveBack(counterKey(rule, table.partition(slot)), oldStart, rule.windowMs, held);
        table.permits[slot] = 0;
      }
    }
    if (this.shared) {
      const unacked = local - table.acked[slot]!;
      total = Math.max(local, table.global[slot]! + unacked);
      // The old window still counts as "previous" for everyone: finish its sync (or at least read
      // its final total) through the retired-window outbox. Older windows matter to no one.
      if (oldStart === windowStart - rule.windowMs && local > 0) {
        this.retire(rule.index, table.partition(slot), oldStart, unacked);
      }
    }
    table.previous[slot] = oldStart === windowStart - rule.windowMs ? total : 0;
    table.windowStart[slot] = windowStart;
    table.current[slot] = 0;
    table.global[slot] = 0;
    table.acked[slot] = 0;
  }

  /**
   * Queues a window that is no longer current for a push: its unacknowledged admissions, or with
   * `delta` 0 just a read of its total. New keys read their previous window this way, so a replica
   * that first sees a key mid-stream still weighs what the others admitted before.
   */
  private retire(rule: number, partition: string, windowStart: number, delta: number): void {
    const compiled = this.compiled[rule]!;
    const key = counterKey(compiled, partition);
    const totalKey = `${key}@${windowStart}`;
    const retired = this.retired.get(totalKey);
    if (retired) retired.delta += delta;
    else {
      this.retired.set(totalKey, {
        key,
        rule,
        partition,
        windowStart,
        windowMs: compiled.windowMs,
        delta,
        pushed: false,
      });
    }
  }

  /**
   * Takes over the counts of the limiter this one replaces when rules change, for every rule that
   * still counts the same way (same id, window and partition keys; its limit may differ), so that
   * editing one rule resets nobody's quota. Call it while no push of `previous` is in flight.
   * Returns how many counters were carried over.
   */
  adoptCounts(previous: Limiter, now: number = this.clock()): number {
    const before = new Map(previous.compiled.map((rule) => [rule.info.id, rule]));
    const from = previous.table;
    const to = this.table;
    const remap = new Map<number, number>();
    let carried = 0;
    for (const rule of this.compiled) {
      const old = before.get(rule.info.id);
      if (!old || old.windowMs !== rule.windowMs || old.rule.by.join(',') !== rule.rule.by.join(','))
        continue;
      remap.set(old.index, rule.index);
      for (const [partition, oldSlot] of from.entries(old.index)) {
        const address = this.ipRule[rule.index] === 1 ? ipv4Number(partition) : -1;
        const windowStart = from.windowStart[oldSlot]!;
        const slot =
          address >= 0
            ? to.insertIp4(rule.index, address, rule.windowSlot, windowStart, now)
            : to.insert(rule.index, partition, rule.windowSlot, windowStart, now);
        if (slot < 0) break;
        to.current[slot] = from.current[oldSlot]!;
        to.previous[slot] = from.previous[oldSlot]!;
        to.global[slot] = from.global[oldSlot]!;
        to.acked[slot] = from.acked[oldSlot]!;
        to.ackedAt[slot] = from.ackedAt[oldSlot]!;
        if (this.shared && to.current[slot]! > to.acked[slot]!) to.markDirty(slot);
        if (this.leasing && previous.leasing) this.adoptLease(slot, previous, oldSlot, rule.cap >= old.cap);
        carried++;
      }
    }
    for (const [id, back] of previous.returns) this.returns.set(id, back);
    previous.returns.clear();
    for (const [totalKey, retired] of previous.retired) {
      const rule = remap.get(retired.rule);
      if (rule !== undefined && !retired.pushed) this.retired.set(totalKey, { ...retired, rule });
    }
    return carried;
  }

  /**
   * Moves one counter's lease state over from the limiter this one replaces. Permits move only when
   * the rule's cap did not shrink (granted under a larger cap, they could exceed the new one); a
   * known refusal only when the cap is unchanged or smaller. Permits left behind go back through
   * `previous.releaseAll()`.
   */
  private adoptLease(slot: number, previous: Limiter, oldSlot: number, capKept: boolean): void {
    const from = previous.table;
    const to = this.table;
    to.leaseAt[slot] = from.leaseAt[oldSlot]!;
    to.leaseSize[slot] = from.leaseSize[oldSlot]!;
    const capSame =
      capKept && this.compiled[to.rule[slot]!]!.cap === previous.compiled[from.rule[oldSlot]!]!.cap;
    if (capSame || !capKept) {
      to.deniedUntil[slot] = from.deniedUntil[oldSlot]!;
      to.retryAt[slot] = from.retryAt[oldSlot]!;
    }
    if (!capKept) return;
    to.permits[slot] = from.permits[oldSlot]!;
    from.permits[oldSlot] = 0;
    if (to.permits[slot]! > 0) to.markDirty(slot);
  }

  /**
   * Which rules a request would match and how far each is into its window, without counting it:
   * what `meli-proxy limits test` shows.
   */
  inspect(request: LimitRequest, now: number = this.clock()): RuleUsage[] {
    const scratch = this.scratch;
    scratch.reset(request);
    const usage: RuleUsage[] = [];
    for (const rule of this.compiled) {
      if (!ruleMatches(rule, scratch)) continue;
      const partition = partitionValue(rule, scratch);
      const slot = this.slotOf(rule.index, partition);
      const elapsed = now % rule.windowMs;
      const windowStart = now - elapsed;
      let used = 0;
      if (slot >= 0) {
        const slotStart = this.table.windowStart[slot]!;
        const local = this.table.current[slot]!;
        const current = this.shared
          ? Math.max(local, this.table.global[slot]! + local - this.table.acked[slot]!)
          : local;
        if (this.leasing)
          used =
            slotStart === windowStart
              ? Math.max(0, this.table.global[slot]! - Math.max(0, this.table.permits[slot]!))
              : 0;
        else if (slotStart === windowStart)
          used = slidingEstimate(this.table.previous[slot]!, current, rule.windowMs, elapsed);
        else if (slotStart === windowStart - rule.windowMs)
          used = slidingEstimate(current, 0, rule.windowMs, elapsed);
      }
      usage.push({
        rule: rule.info,
        key: counterKey(rule, partition),
        used,
        remaining: Math.max(0, rule.limit - used),
        resetSeconds: Math.ceil((rule.windowMs - elapsed) / 1000),
      });
    }
    scratch.reset(undefined);
    return usage;
  }

  /** The slot of a rule's counter for a partition given as text, wherever the table keeps it. */
  private slotOf(rule: number, partition: string): number {
    if (this.ipRule[rule] === 1) {
      const address = ipv4Number(partition);
      if (address >= 0) return this.table.getIp4(rule, address);
    }
    return this.table.get(rule, partition);
  }

  /** Expires up to `budget` idle keys per window size (inserts also do a little of this). */
  sweep(now: number = this.clock(), budget = 10_000): number {
    return this.table.sweep(now, budget);
  }

  stats(): LimiterStats {
    return {
      keys: this.table.size,
      maxKeys: this.table.maxKeys,
      allocatedSlots: this.table.allocated,
      untracked: this.untracked,
      pendingSync: this.leasing ? this.returns.size : this.table.dirtyCount + this.retired.size,
    };
  }

  ruleStats(): RuleStats[] {
    return this.compiled.map((rule, r) => ({
      id: rule.info.id,
      mode: rule.info.mode,
      matched: this.statMatched[r]!,
      rejected: this.statRejected[r]!,
      shadowExceeded: this.statShadow[r]!,
    }));
  }

  // ---- Lease mode (worker side of exact limits across the workers of one host; see
  // lease-arbiter.ts and lease-client.ts); driven by LeaseClient, not meant for request handlers ----

  /** Switches on lease mode: decisions spend permits granted by the primary. */
  enableLeases(options: LeaseOptions): void {
    if (this.shared) throw new Error('a limiter cannot both share counters and hold leases');
    this.leasing = true;
    this.lease = options;
    this.table.enableLeases();
  }

  /** Whether the primary answers; while it does not, `failClosed` decides for counters without permits. */
  setLeaseHealthy(healthy: boolean): void {
    this.leaseHealthy = healthy;
  }

  /**
   * The asks queued since the last call, sized from demand: the requests waiting for the key, or
   * what the key used of its last lease scaled to `targetMs` (growing at most twofold per lease),
   * at most the rule's cap; any debt (admitted without a permit) goes as a charge the primary
   * counts whatever the room, so nothing admitted goes uncounted. Marks them in flight. A key
   * asks when it runs out with requests waiting, and in the background once half its lease is
   * used, so that a key with steady traffic gets its next lease before it runs out.
   */
  collectAsks(now: number = this.clock()): LeaseRequest[] {
    const table = this.table;
    const target = this.lease?.targetMs ?? 200;
    const requests: LeaseRequest[] = [];
    for (let k = 0; k < this.askSlots.length; k++) {
      const slot = this.askSlots[k]!;
      if (table.generation[slot] !== this.askGenerations[k] || table.asking[slot] !== 1) continue;
      table.asking[slot] = 2;
      const rule = this.compiled[table.rule[slot]!]!;
      const partition = table.partition(slot);
      const waiting = table.waiting[slot]!;
      table.waiting[slot] = 0;
      const permits = table.permits[slot]!;
      let want = Math.max(1, waiting);
      // What the key used of its last lease, and how fast, projected over `target`.
      const last = table.leaseSize[slot]!;
      const used = last - Math.max(0, permits);
      if (last > 0 && used > 0) {
        const projected = Math.ceil((used * target) / Math.max(1, now - table.leaseAt[slot]!));
        want = Math.max(want, Math.min(projected, 2 * last + waiting));
      }
      requests.push({
        ask: {
          key: counterKey(rule, partition),
          windowMs: rule.windowMs,
          cap: rule.cap,
          want: Math.min(want, rule.cap),
          charge: Math.max(0, -permits),
        },
        ruleId: rule.info.id,
        partition,
      });
    }
    this.askSlots = [];
    this.askGenerations = [];
    return requests;
  }

  /**
   * Applies the primary's answers to asks (possibly made by the limiter this one replaced): permits
   * for the key's current window, or a known refusal. Permits nobody here can use go back.
   */
  applyGrants(
    requests: readonly LeaseRequest[],
    grants: readonly LeaseGrant[],
    now: number = this.clock(),
  ): void {
    const table = this.table;
    for (let k = 0; k < requests.length; k++) {
      const { ask } = requests[k]!;
      const grant = grants[k];
      const slot = this.leaseSlot(requests[k]!);
      if (slot >= 0) table.asking[slot] = 0;
      if (!grant) continue;
      // The primary has counted what was admitted without a permit: that debt is settled, in
      // whichever window the counter is now (a debt carried over a window roll stays owed).
      const charge = ask.charge ?? 0;
      if (slot >= 0 && charge > 0) table.permits[slot]! += charge;
      const start = slot >= 0 ? table.windowStart[slot]! : Number.POSITIVE_INFINITY;
      if (start > grant.windowStart) {
        // No counter to hold them, or the counter moved on to a later window already.
        if (grant.granted > 0) this.giveBack(ask.key, grant.windowStart, ask.windowMs, grant.granted);
        continue;
      }
      if (start < grant.windowStart) this.roll(slot, this.compiled[table.rule[slot]!]!, grant.windowStart);
      table.global[slot] = grant.estimate;
      if (grant.granted === 0) {
        table.deniedUntil[slot] = now + grant.recheckMs;
        table.retryAt[slot] = now + grant.retryMs;
        continue;
      }
      table.permits[slot]! += grant.granted;
      table.leaseAt[slot] = now;
      table.leaseSize[slot] = grant.granted;
      table.deniedUntil[slot] = 0;
      if (table.permits[slot]! > 0) table.markDirty(slot);
    }
  }

  /** Asks that got no answer: their counters may ask again. */
  dropAsks(requests: readonly LeaseRequest[]): void {
    for (const request of requests) {
      const slot = this.leaseSlot(request);
      if (slot >= 0) this.table.asking[slot] = 0;
    }
  }

  /**
   * Hands back permits that can no longer be used (their window ended) or were held longer than
   * `holdMs` (the key's demand fell): held, they would only keep other workers waiting.
   */
  scanLeases(now: number = this.clock()): void {
    const table = this.table;
    const holdMs = this.lease?.holdMs ?? 400;
    table.compactDirty((slot) => {
      const held = table.permits[slot]!;
      if (held <= 0) return false;
      const rule = this.compiled[table.rule[slot]!]!;
      const start = table.windowStart[slot]!;
      if (start >= now - (now % rule.windowMs) && now - table.leaseAt[slot]! <= holdMs) return true;
      this.giveBack(counterKey(rule, table.partition(slot)), start, rule.windowMs, held);
      table.permits[slot] = 0;
      return false;
    });
  }

  /** Hands back every permit held (shutdown, or the limiter is being replaced). */
  releaseAll(): void {
    const table = this.table;
    table.compactDirty((slot) => {
      const held = table.permits[slot]!;
      if (held > 0) {
        const rule = this.compiled[table.rule[slot]!]!;
        this.giveBack(counterKey(rule, table.partition(slot)), table.windowStart[slot]!, rule.windowMs, held);
        table.permits[slot] = 0;
      }
      return false;
    });
  }

  /** The permits to hand back since the last call. */
  takeReturns(): LeaseReturn[] {
    const returns = [...this.returns.values()];
    this.returns.clear();
    return returns;
  }

  private giveBack(key: string, windowStart: number, windowMs: number, count: number): void {
    const id = `${key}@${windowStart}`;
    const known = this.returns.get(id);
    this.returns.set(id, { key, windowStart, windowMs, count: count + (known?.count ?? 0) });
  }

  /**
   * The slot an ask was for, in this limiter: same rule id, window and counter key, and a cap no
   * smaller than the one it was asked under (permits granted under a larger cap could exceed the
   * new one: they go back, and waiting requests ask again); else -1.
   */
  private leaseSlot(request: LeaseRequest): number {
    const index = this.ruleIndex.get(request.ruleId);
    if (index === undefined) return -1;
    const rule = this.compiled[index]!;
    if (
      rule.windowMs !== request.ask.windowMs ||
      rule.cap < request.ask.cap ||
      counterKey(rule, request.partition) !== request.ask.key
    )
      return -1;
    return this.slotOf(index, request.partition);
  }

  // ---- Replica side of shared counters; driven by CounterSync, not meant for request handlers ----

  /** Switches on shared accounting (allowance, acknowledgements, retired windows). */
  enableSharing(options: SharingOptions = {}): void {
    const factor = options.shareFactor ?? 0.25;
    if (!(factor > 0 && factor <= 1)) throw new RangeError(`shareFactor must be in (0, 1], got ${factor}`);
    if (this.leasing) throw new Error('a limiter cannot both hold leases and share counters');
    this.shared = true;
    this.shareFactor = factor;
    this.failClosed = options.failClosed ?? false;
    this.replicas = Math.max(1, Math.floor(options.initialReplicas ?? 1));
  }

  setStoreHealthy(healthy: boolean): void {
    this.storeHealthy = healthy;
  }

  /**
   * Everything the store has not acknowledged, as deltas for one push. Nothing is marked as sent:
   * a failed push simply leaves it all to be collected again, and only settleDeltas consumes it.
   * Deltas of windows that no decision reads any more (older than the previous window) are dropped.
   */
  collectDeltas(now: number = this.clock()): PendingDelta[] {
    const table = this.table;
    const rules = this.compiled;
    const pending: PendingDelta[] = [];
    table.compactDirty((slot) => {
      const unacked = table.current[slot]! - table.acked[slot]!;
      if (unacked <= 0) return false;
      const windowMs = rules[table.rule[slot]!]!.windowMs;
      const windowStart = table.windowStart[slot]!;
      if (windowStart < now - (now % windowMs) - windowMs) {
        table.acked[slot] = table.current[slot]!;
        return false;
      }
      const rule = table.rule[slot]!;
      const partition = table.partition(slot);
      const key = counterKey(rules[rule]!, partition);
      pending.push({
        delta: { key, windowStart, windowMs, delta: unacked },
        totalKey: `${key}@${windowStart}`,
        slot,
        generation: table.generation[slot]!,
        rule,
        partition,
      });
      return true;
    });
    for (const [totalKey, retired] of this.retired) {
      const { windowMs, windowStart } = retired;
      if (windowStart < now - (now % windowMs) - windowMs) {
        this.retired.delete(totalKey);
        continue;
      }
      if (retired.delta <= 0 && retired.pushed) {
        this.retired.delete(totalKey);
        continue;
      }
      pending.push({
        delta: { key: retired.key, windowStart, windowMs, delta: Math.max(0, retired.delta) },
        totalKey,
        slot: -1,
        generation: 0,
        rule: retired.rule,
        partition: retired.partition,
      });
    }
    return pending;
  }

  /** Applies an acknowledged push: its deltas are now in the store, and the totals are fresh. */
  settleDeltas(
    pending: readonly PendingDelta[],
    result: CounterSyncResult,
    now: number = this.clock(),
  ): void {
    const table = this.table;
    this.replicas = Math.max(1, Math.floor(result.replicas));
    for (const entry of pending) {
      const { delta, totalKey } = entry;
      const total = result.totals.get(totalKey);
      const slot = entry.slot;
      if (
        slot >= 0 &&
        table.generation[slot] === entry.generation &&
        table.windowStart[slot] === delta.windowStart
      ) {
        table.acked[slot]! += delta.delta;
        table.ackedAt[slot] = now;
        if (total !== undefined) table.global[slot] = total;
        continue;
      }
      // A retired window: either pushed from the outbox, or rolled while its push was in flight
      // (the roll moved the unacknowledged count, this push included, into the outbox).
      const retired = this.retired.get(totalKey);
      if (retired) {
        retired.delta -= delta.delta;
        if (slot < 0) retired.pushed = true;
        if (retired.delta <= 0 && retired.pushed) this.retired.delete(totalKey);
      }
      if (total !== undefined) {
        const live = this.slotOf(entry.rule, entry.partition);
        if (live >= 0 && table.windowStart[live] === delta.windowStart + delta.windowMs) {
          table.previous[live] = Math.max(table.previous[live]!, total);
        }
      }
    }
  }
}
