/**
 * Shared counters by allowance: the replica side of approximate sharing across replicas on
 * PostgreSQL or Redis (counter-sync.ts pushes and reads the totals in the background). A replica
 * decides with the last total the store returned for the key's window plus its own admissions not
 * acknowledged yet, and holds at most an allowance of such admissions per key, so that the cluster
 * stays within limit + burst + about 2 × replicas per window (derived in docs/rate-limiting.md).
 *
 * Invariant: `current − acked` is what this replica admitted in the slot's window that the store
 * has not acknowledged; `global` is the store's last total for that window, acknowledged part included.
 */
import type { CounterDelta, CounterSyncResult } from '../store/types.js';
import { type CounterPolicy, judgeSliding, slidingUsed } from './counting.js';
import { type DecisionScratch, OVER, WITHIN } from './decision.js';
import type { KeyTable } from './key-table.js';
import { type CompiledRule, counterKey } from './matcher.js';
import { slidingEstimate } from './sliding.js';
import type { StoreErrorDecisions } from './store-error-decisions.js';

export interface SharingOptions {
  /** c in the allowance formula, used when more than one replica is live (default 0.25). */
  readonly shareFactor?: number;
  /** Keep enforcing the allowance while the store is unreachable (fail closed). */
  readonly failClosed?: boolean;
  /** Replicas to assume until the store has answered once (default 1). */
  readonly initialReplicas?: number;
  /** How often the allowance refills (one acknowledged push per interval; default 100 ms). */
  readonly syncIntervalMs?: number;
  /**
   * Rules without an explicit `counting` are counted exactly (one atomic store operation per
   * request) when limit + burst < exactPerReplica × live replicas; 0 turns that off (default 0).
   */
  readonly exactPerReplica?: number;
  /** Whether the store can count exactly (ExactCounterStore); without it every rule is approximate. */
  readonly exact?: boolean;
  /** Where --on-store-error's decisions for exact counters are counted. */
  readonly storeErrorDecisions?: StoreErrorDecisions | undefined;
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

/** Reads of previous-window totals for new keys are a nicety; a stuck store must not pile them up. */
const MAX_PENDING_READS = 65_536;

/** What the shared policies need of the limiter they serve. */
export interface CounterHost {
  readonly table: KeyTable;
  readonly rules: readonly CompiledRule[];
  /** The slot of a rule's counter for a partition given as text, or -1. */
  slotOf(rule: number, partition: string): number;
}

export class SharedCounting implements CounterPolicy {
  /** Last total of the slot's window returned by the store (includes our acknowledged part). */
  readonly global: Float64Array;
  /** How many of `current` the store has acknowledged. */
  readonly acked: Float64Array;
  /** When the store last acknowledged a push for this slot (epoch ms; 0 = never). */
  readonly ackedAt: Float64Array;
  storeHealthy = true;
  readonly failClosed: boolean;
  readonly storeErrorDecisions: StoreErrorDecisions | undefined;
  readonly shareFactor: number;
  readonly syncIntervalMs: number;
  readonly exactPerReplica: number;
  replicas: number;
  private readonly retired = new Map<string, RetiredWindow>();

  constructor(
    private readonly host: CounterHost,
    options: SharingOptions = {},
  ) {
    const factor = options.shareFactor ?? 0.25;
    if (!(factor > 0 && factor <= 1)) throw new RangeError(`shareFactor must be in (0, 1], got ${factor}`);
    this.shareFactor = factor;
    this.failClosed = options.failClosed ?? false;
    this.storeErrorDecisions = options.storeErrorDecisions;
    this.replicas = Math.max(1, Math.floor(options.initialReplicas ?? 1));
    this.syncIntervalMs = options.syncIntervalMs ?? 100;
    this.exactPerReplica = options.exactPerReplica ?? 0;
    // Zero-filled pages that become resident only as slots are used, like the table's own arrays.
    const size = host.table.maxKeys;
    this.global = new Float64Array(size);
    this.acked = new Float64Array(size);
    this.ackedAt = new Float64Array(size);
  }

  /** What the store has not acknowledged: dirty keys plus retired windows pending. */
  get pendingCount(): number {
    return this.host.table.dirtyCount + this.retired.size;
  }

  added(slot: number, rule: CompiledRule, windowStart: number): void {
    // A reused slot may hold an old key's numbers; a fresh one is zero and stays untouched.
    if (this.global[slot] !== 0) this.global[slot] = 0;
    if (this.acked[slot] !== 0) this.acked[slot] = 0;
    if (this.ackedAt[slot] !== 0) this.ackedAt[slot] = 0;
    // Read the previous window's total with the next push, so a replica that first sees a key
    // mid-stream still weighs what the others admitted before.
    if (this.storeHealthy && this.retired.size < MAX_PENDING_READS) {
      this.retire(rule.index, this.host.table.partition(slot), windowStart - rule.windowMs, 0);
    }
  }

  roll(slot: number, rule: CompiledRule, windowStart: number): number {
    const table = this.host.table;
    const local = table.current[slot]!;
    const unacked = local - this.acked[slot]!;
    const total = Math.max(local, this.global[slot]! + unacked);
    // The old window still counts as "previous" for everyone: finish its sync (or at least read
    // its final total) through the retired-window outbox. Older windows matter to no one.
    if (table.windowStart[slot] === windowStart - rule.windowMs && local > 0) {
      this.retire(rule.index, table.partition(slot), table.windowStart[slot]!, unacked);
    }
    this.global[slot] = 0;
    this.acked[slot] = 0;
    return total;
  }

  /** The current window's count as this replica knows it: the store's total plus its own unacknowledged. */
  known(slot: number): number {
    const local = this.host.table.current[slot]!;
    return Math.max(local, this.global[slot]! + local - this.acked[slot]!);
  }

  evaluate(s: DecisionScratch, i: number, slot: number, rule: CompiledRule, now: number): number {
    const previous = this.host.table.previous[slot]!;
    const current = this.known(slot);
    if (judgeSliding(s, i, rule, previous, current) === OVER) return OVER;
    if (
      !(this.storeHealthy || this.failClosed) ||
      !this.overShare(slot, rule, s.windowStart[i]!, s.elapsed[i]!)
    )
      return WITHIN;
    // This replica's share is used up, not the quota: say what is left as far as it knows, and
    // that its share refills with the next acknowledged push.
    s.state[i] = OVER;
    s.remaining[i] = Math.max(
      0,
      rule.limit - slidingEstimate(previous, current, rule.windowMs, s.elapsed[i]!),
    );
    const sinceAck = this.ackedAt[slot]! > 0 ? now - this.ackedAt[slot]! : 0;
    s.retryMs[i] = Math.max(1, this.syncIntervalMs - sinceAck);
    return OVER;
  }

  commit(_s: DecisionScratch, _i: number, slot: number): void {
    this.host.table.markDirty(slot);
  }

  used(slot: number, rule: CompiledRule, sameWindow: boolean, elapsed: number): number {
    return slidingUsed(this.host.table, slot, rule, this.known(slot), sameWindow, elapsed);
  }

  /**
   * Whether this replica has used up its share of a key: a fraction c/R of what was left at the
   * last acknowledged push, plus 1/R of what the previous window's decay has freed since.
   */
  private overShare(slot: number, rule: CompiledRule, windowStart: number, elapsed: number): boolean {
    const table = this.host.table;
    const previous = table.previous[slot]!;
    const base = Math.max(this.global[slot]!, this.acked[slot]!);
    const known = slidingEstimate(previous, base, rule.windowMs, elapsed);
    const ackElapsed = Math.min(elapsed, Math.max(0, this.ackedAt[slot]! - windowStart));
    const knownAtAck = slidingEstimate(previous, base, rule.windowMs, ackElapsed);
    const c = this.replicas === 1 ? 1 : this.shareFactor;
    const allowance = Math.floor((c * (rule.cap - knownAtAck) + (knownAtAck - known)) / this.replicas);
    return table.current[slot]! - this.acked[slot]! >= Math.max(1, allowance);
  }

  /**
   * Queues a window that is no longer current for a push: its unacknowledged admissions, or with
   * `delta` 0 just a read of its total.
   */
  private retire(rule: number, partition: string, windowStart: number, delta: number): void {
    const compiled = this.host.rules[rule]!;
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
   * Everything the store has not acknowledged, as deltas for one push. Nothing is marked as sent:
   * a failed push simply leaves it all to be collected again, and only settleDeltas consumes it.
   * Deltas of windows that no decision reads any more (older than the previous window) are dropped.
   */
  collectDeltas(now: number): PendingDelta[] {
    const table = this.host.table;
    const rules = this.host.rules;
    const pending: PendingDelta[] = [];
    table.compactDirty((slot) => {
      const unacked = table.current[slot]! - this.acked[slot]!;
      if (unacked <= 0) return false;
      const windowMs = rules[table.rule[slot]!]!.windowMs;
      const windowStart = table.windowStart[slot]!;
      if (windowStart < now - (now % windowMs) - windowMs) {
        this.acked[slot] = table.current[slot]!;
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
      if (windowStart < now - (now % windowMs) - windowMs || (retired.delta <= 0 && retired.pushed)) {
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
  settleDeltas(pending: readonly PendingDelta[], result: CounterSyncResult, now: number): void {
    const table = this.host.table;
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
        this.acked[slot]! += delta.delta;
        this.ackedAt[slot] = now;
        if (total !== undefined) this.global[slot] = Math.max(this.global[slot]!, total);
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
      if (total !== undefined) this.raisePrevious(entry.rule, entry.partition, delta.windowStart, total);
    }
  }

  /** A final total of a window that is now some live counter's previous one. */
  raisePrevious(rule: number, partition: string, windowStart: number, total: number): void {
    const table = this.host.table;
    const live = this.host.slotOf(rule, partition);
    if (live >= 0 && table.windowStart[live] === windowStart + this.host.rules[rule]!.windowMs) {
      table.previous[live] = Math.max(table.previous[live]!, total);
    }
  }

  /** Takes over one counter's sync state from the limiter this one replaces. */
  adopt(slot: number, from: SharedCounting | undefined, oldSlot: number): void {
    if (!from) return;
    this.global[slot] = from.global[oldSlot]!;
    this.acked[slot] = from.acked[oldSlot]!;
    this.ackedAt[slot] = from.ackedAt[oldSlot]!;
    if (this.host.table.current[slot]! > this.acked[slot]!) this.host.table.markDirty(slot);
  }

  /** Takes over the retired windows not pushed yet, for the rules still counted the same way. */
  adoptRetired(from: SharedCounting, remap: ReadonlyMap<number, number>): void {
    for (const [totalKey, retired] of from.retired) {
      const rule = remap.get(retired.rule);
      if (rule !== undefined && !retired.pushed) this.retired.set(totalKey, { ...retired, rule });
    }
  }
}
