/**
 * The rate limiter core: sliding-window counters (sliding.ts) in a KeyTable, and one
 * decide-all-then-commit step over a per-counter policy (counting.ts) that says how a counter is
 * read, judged and committed in each mode:
 *
 *   local        one process's own counts (LocalCounting, counting.ts)
 *   shared       replicas on PostgreSQL or Redis, approximately (SharedCounting, shared-policy.ts)
 *                or exactly through one atomic store operation per request (exact-policy.ts)
 *   lease        the workers of one host, exactly, with permits from the primary (lease-policy.ts)
 *
 * Decide all, then commit: every matching rule is evaluated first, and only if no enforced rule is
 * over do the counters of all matching rules (enforced and shadow) go up. A rejected request thus
 * consumes nothing. Shadow rules over their limit are reported in `shadowExceeded` either way.
 * Algorithm, bounds and measurements: docs/rate-limiting.md.
 *
 * Memory: the KeyTable's typed arrays hold a few numbers per key (the shared and lease policies add
 * their own, allocated only in their mode); idle keys expire and an active key is never evicted.
 * When all `maxKeys` slots hold active keys, a new key is not tracked: `onTableFull: 'open'`
 * (default) lets its rule pass the request uncounted (stats().untracked counts these), `'deny'`
 * rejects it.
 */
import type { ExactTakeResult } from '../store/types.js';
import { type CounterPolicy, LocalCounting } from './counting.js';
import {
  type Decision,
  type DecisionCounts,
  DecisionScratch,
  decisionOf,
  LEASE_PENDING,
  type LimiterStats,
  OVER,
  PENDING,
  type RuleStats,
  type RuleUsage,
  STORE,
  STORE_PENDING,
} from './decision.js';
import { ExactCounting, type ExactTake, settleExact, type WaitingDecision } from './exact-policy.js';
import { parseIpInto } from './ip.js';
import { KeyTable } from './key-table.js';
import type { LeaseGrant, LeaseReclaim, LeaseReturn } from './lease-arbiter.js';
import { LeaseCounting, type LeaseOptions, type LeaseRequest } from './lease-policy.js';
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
import { type PendingDelta, SharedCounting, type SharingOptions } from './shared-policy.js';

export type { Decision, LimiterStats, RuleStats, RuleUsage } from './decision.js';
export { LEASE_PENDING, STORE_PENDING } from './decision.js';
export type { ExactTake } from './exact-policy.js';
export type { LeaseOptions, LeaseRequest } from './lease-policy.js';
export type { PendingDelta, SharingOptions } from './shared-policy.js';

export interface LimiterOptions {
  /** Most counter keys kept in memory (default 1,000,000). */
  readonly maxKeys?: number;
  /** What a rule does with a new key when every slot holds an active key (default 'open'). */
  readonly onTableFull?: 'open' | 'deny';
  /** Clock in epoch milliseconds (default Date.now). */
  readonly clock?: () => number;
}

const IP_WORDS = new Uint32Array(4);

/** The partition text of an IPv4 `by: [ip]` counter as a number, -1 for anything else (IPv6). */
function ipv4Number(partition: string): number {
  return partition.indexOf(':') < 0 && parseIpInto(partition, IP_WORDS) === 4 ? IP_WORDS[0]! : -1;
}
/** Slots store their rule index in 16 bits. */
const MAX_RULES = 65_535;

export class Limiter {
  readonly table: KeyTable;
  private readonly compiled: CompiledRule[];
  private readonly clock: () => number;
  private readonly denyWhenFull: boolean;
  private readonly scratch = new RequestScratch();
  private readonly decision: DecisionScratch;
  private readonly statMatched: Float64Array;
  private readonly stat: DecisionCounts;
  private readonly fixedSlot: Int32Array;
  /** The slot's generation when fixedSlot was taken: any removal or reuse since changes it. */
  private readonly fixedGeneration: Uint32Array;
  /** 1 for a rule partitioned by the client address alone (`by: [ip]`): see KeyTable.getIp4. */
  private readonly ipRule: Uint8Array;
  private untracked = 0;
  /** Each rule's counting policy; every rule starts local, enableSharing/enableLeases switch them. */
  private readonly policies: CounterPolicy[];
  private shared: SharedCounting | undefined;
  private lease: LeaseCounting | undefined;
  private lastTake: ExactTake | undefined;

  constructor(rules: readonly Rule[], options: LimiterOptions = {}) {
    if (rules.length > MAX_RULES) throw new RangeError(`at most ${MAX_RULES} rules, got ${rules.length}`);
    this.compiled = compileRules(rules);
    this.table = new KeyTable(options.maxKeys ?? 1_000_000);
    this.clock = options.clock ?? Date.now;
    this.denyWhenFull = options.onTableFull === 'deny';
    const n = this.compiled.length;
    this.decision = new DecisionScratch(n);
    this.statMatched = new Float64Array(n);
    this.stat = { rejected: new Float64Array(n), shadowExceeded: new Float64Array(n) };
    this.fixedSlot = new Int32Array(n).fill(-1);
    this.fixedGeneration = new Uint32Array(n);
    this.ipRule = Uint8Array.from(this.compiled, (rule) =>
      rule.rule.by.length === 1 && rule.rule.by[0] === 'ip' ? 1 : 0,
    );
    this.policies = new Array<CounterPolicy>(n).fill(new LocalCounting(this.table));
  }

  get rules(): readonly RuleInfo[] {
    return this.compiled.map((rule) => rule.info);
  }

  /** The compiled rules, by index (for the policies). */
  get compiledRules(): readonly CompiledRule[] {
    return this.compiled;
  }

  decide(request: LimitRequest, now: number = this.clock()): Decision {
    const scratch = this.scratch;
    scratch.reset(request);
    const rules = this.compiled;
    const table = this.table;
    const s = this.decision;
    let matched = 0;
    let rejected = false;
    let pending = 0;
    let stored = 0;

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
        } else this.policies[r]!.added(slot, rule, windowStart);
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
      s.rule[i] = r;
      s.slot[i] = slot;
      s.resetMs[i] = windowMs - elapsed;
      s.elapsed[i] = elapsed;
      s.windowStart[i] = windowStart;
      if (slot < 0) {
        // Table full of active keys and onTableFull = 'deny'.
        s.state[i] = OVER;
        s.remaining[i] = 0;
        s.retryMs[i] = 1000;
        rejected = true;
        continue;
      }
      s.generation[i] = table.generation[slot]!;
      const state = this.policies[r]!.evaluate(s, i, slot, rule, now);
      if (state === OVER) {
        if (!rule.shadow) rejected = true;
      } else if (state === PENDING) pending++;
      else if (state === STORE) stored++;
    }

    if (!rejected && pending > 0) {
      // Wait for permits: count nothing, and let the decision made once they are in be the one.
      for (let i = 0; i < matched; i++) {
        this.statMatched[s.rule[i]!]!--;
        if (s.state[i] === PENDING) this.lease!.ask(s.slot[i]!, 1);
      }
      scratch.reset(undefined);
      return LEASE_PENDING;
    }
    if (!rejected) {
      // With counters the store decides, the others are counted now (a reservation that
      // settleTake gives back if the store refuses), so that requests decided meanwhile see them.
      for (let i = 0; i < matched; i++) {
        const slot = s.slot[i]!;
        if (slot < 0 || s.state[i] === STORE) continue;
        table.current[slot]!++;
        this.policies[s.rule[i]!]!.commit(s, i, slot, rules[s.rule[i]!]!);
      }
      if (stored > 0) {
        this.lastTake = this.exactTake(matched);
        scratch.reset(undefined);
        return STORE_PENDING;
      }
    }
    scratch.reset(undefined);
    return this.result(s, matched, rejected);
  }

  /** Remembers the one slot of an unpartitioned rule, valid until the table removes or reuses it. */
  private fixSlot(rule: number, slot: number): void {
    this.fixedSlot[rule] = slot;
    if (slot >= 0) this.fixedGeneration[rule] = this.table.generation[slot]!;
  }

  private exactTake(matched: number): ExactTake {
    const scratch = this.decision.copy(matched);
    const waiting: WaitingDecision = {
      scratch,
      exact: scratch.state.map((state) => (state === STORE ? 1 : 0)),
    };
    return {
      counters: ExactCounting.counters(this, scratch),
      settle: (result) => this.settleTake(waiting, result),
    };
  }

  /** After decide() answered STORE_PENDING: what to ask the store, and how to settle (once). */
  takeStorePending(): ExactTake {
    const take = this.lastTake;
    this.lastTake = undefined;
    if (!take) throw new Error('no decision is waiting for the store');
    return take;
  }

  /** The decision for a request that waited for the store (see ExactTake.settle). */
  private settleTake(waiting: WaitingDecision, result: ExactTakeResult | undefined): Decision {
    const shared = this.shared!;
    const s = waiting.scratch;
    const rejected = settleExact(this, shared, waiting, result);
    if (rejected) {
      // Give back the reservations of the counters counted in decide(), where still ours to give.
      for (let i = 0; i < s.rule.length; i++) {
        const slot = s.slot[i]!;
        if (slot < 0 || waiting.exact[i] === 1) continue;
        if (
          this.table.generation[slot] !== s.generation[i] ||
          this.table.windowStart[slot] !== s.windowStart[i]
        )
          continue;
        if (this.table.current[slot]! > shared.acked[slot]!) this.table.current[slot]!--;
      }
    }
    return this.result(s, s.rule.length, rejected);
  }

  private result(s: DecisionScratch, matched: number, rejected: boolean): Decision {
    return decisionOf(s, matched, rejected, this.compiled, this.stat);
  }

  /** Moves a slot to the window starting at `windowStart`, keeping what the sliding estimate needs. */
  private roll(slot: number, rule: CompiledRule, windowStart: number): void {
    const table = this.table;
    const oldStart = table.windowStart[slot]!;
    const total = this.policies[rule.index]!.roll(slot, rule, windowStart);
    table.previous[slot] = oldStart === windowStart - rule.windowMs ? total : 0;
    table.windowStart[slot] = windowStart;
    table.current[slot] = 0;
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
        this.lease?.added(slot);
        to.current[slot] = from.current[oldSlot]!;
        to.previous[slot] = from.previous[oldSlot]!;
        this.shared?.adopt(slot, previous.shared, oldSlot);
        this.lease?.adopt(slot, previous.lease, oldSlot, rule.cap >= old.cap, rule.cap === old.cap);
        carried++;
      }
    }
    if (this.lease && previous.lease) this.lease.adoptReturns(previous.lease);
    if (this.shared && previous.shared) this.shared.adoptRetired(previous.shared, remap);
    return carried;
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
        if (slotStart === windowStart || slotStart === windowStart - rule.windowMs)
          used = this.policies[rule.index]!.used(slot, rule, slotStart === windowStart, elapsed);
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
  slotOf(rule: number, partition: string): number {
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
      pendingSync: this.lease?.pendingCount ?? this.shared?.pendingCount ?? this.table.dirtyCount,
    };
  }

  ruleStats(): RuleStats[] {
    return this.compiled.map((rule, r) => ({
      id: rule.info.id,
      mode: rule.info.mode,
      matched: this.statMatched[r]!,
      rejected: this.stat.rejected[r]!,
      shadowExceeded: this.stat.shadowExceeded[r]!,
    }));
  }

  // ---- Lease mode; driven by LeaseClient (lease-client.ts), not meant for request handlers ----

  /** Switches on lease mode: decisions spend permits granted by the primary. */
  enableLeases(options: LeaseOptions): void {
    if (this.shared) throw new Error('a limiter cannot both share counters and hold leases');
    if (this.lease) return;
    this.lease = new LeaseCounting(this.host(), options);
    this.policies.fill(this.lease);
  }

  /** Whether the primary answers; while it does not, `failClosed` decides for counters without permits. */
  setLeaseHealthy(healthy: boolean): void {
    if (this.lease) this.lease.healthy = healthy;
  }

  collectAsks(now: number = this.clock()): LeaseRequest[] {
    return this.lease?.collectAsks(now) ?? [];
  }

  applyGrants(
    requests: readonly LeaseRequest[],
    grants: readonly LeaseGrant[],
    now: number = this.clock(),
  ): void {
    this.lease?.applyGrants(requests, grants, now, (slot, rule, windowStart) =>
      this.roll(slot, rule, windowStart),
    );
  }

  dropAsks(requests: readonly LeaseRequest[]): void {
    this.lease?.dropAsks(requests);
  }

  scanLeases(now: number = this.clock()): void {
    this.lease?.scanLeases(now);
  }

  releaseAll(): void {
    this.lease?.releaseAll();
  }

  takeReturns(): LeaseReturn[] {
    return this.lease?.takeReturns() ?? [];
  }

  /** The primary reclaims these keys: what is held of them goes back with takeReturns(). */
  reclaim(reclaims: readonly LeaseReclaim[]): void {
    this.lease?.reclaim(reclaims);
  }

  /** Whether this worker should poll the primary for reclaims (see LeaseCounting.shouldPoll). */
  shouldPollLeases(now: number = this.clock()): boolean {
    return this.lease?.shouldPoll(now) ?? false;
  }

  /** How long until asks deferred while the primary reclaims should go again (0: none deferred). */
  takeRecheckMs(): number {
    return this.lease?.takeRecheckMs() ?? 0;
  }

  /** Queues the asks deferred while the primary reclaims. */
  requeueDeferred(): void {
    this.lease?.requeueDeferred();
  }

  get hasDeferredAsks(): boolean {
    return this.lease?.hasDeferred ?? false;
  }

  // ---- Shared counters; driven by CounterSync (counter-sync.ts), not meant for request handlers ----

  /** Switches on shared accounting (allowance, acknowledgements, retired windows, exact rules). */
  enableSharing(options: SharingOptions = {}): void {
    if (this.lease) throw new Error('a limiter cannot both hold leases and share counters');
    const shared = new SharedCounting(this.host(), options);
    this.shared = shared;
    const exact = new ExactCounting(shared, this.table);
    for (const rule of this.compiled)
      this.policies[rule.index] = options.exact === true && exact.handles(rule) ? exact : shared;
  }

  setStoreHealthy(healthy: boolean): void {
    if (this.shared) this.shared.storeHealthy = healthy;
  }

  /** Everything the store has not acknowledged, as deltas for one push (see SharedCounting). */
  collectDeltas(now: number = this.clock()): PendingDelta[] {
    return this.shared?.collectDeltas(now) ?? [];
  }

  settleDeltas(
    pending: readonly PendingDelta[],
    result: Parameters<SharedCounting['settleDeltas']>[1],
    now: number = this.clock(),
  ): void {
    this.shared?.settleDeltas(pending, result, now);
  }

  private host() {
    return {
      table: this.table,
      rules: this.compiled,
      slotOf: (rule: number, partition: string) => this.slotOf(rule, partition),
    };
  }
}
