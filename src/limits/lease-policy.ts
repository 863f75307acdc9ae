/**
 * Lease counting: exact limits across the workers of one host (`serve --workers N`, embedded
 * store). The primary, which owns the store, keeps the one set of counts and grants permits out of
 * it (lease-arbiter.ts explains why that is exact); lease-client.ts carries asks and grants.
 *
 * Per counter the worker holds permits for the current window, or a known refusal (until when, and
 * the Retry-After the primary computed), or neither. A counter with a permit is within, one with a
 * known refusal is over, and one with neither is PENDING: the whole decision waits (nothing
 * counted, an ask queued) unless another enforced rule already refuses the request. Committing
 * spends one permit per counter. Shadow rules never refuse, but their verdict (would this request
 * have been refused?) needs the primary's count as much as an enforced rule's does, so they wait
 * for permits the same way; over their limit they count the request as a debt, charged with the
 * next ask. Their counts are thus the ones a single process would have. Permits of a window that
 * has ended are void and go back to the primary. While the primary does not answer, failClosed
 * decides for counters without permits (shadow ones are admitted and owe).
 *
 * Invariant: `permits` > 0 are unspent permits of the slot's window; < 0 admissions the primary has
 * not counted yet (a debt). `spent` are permits of the slot's window spent and not yet reported:
 * the primary's outstanding count of a key is what its workers hold plus what they have not
 * reported, so a worker reports (with its asks, and when the primary reclaims the key) before the
 * primary may refuse anyone for good. `current` and `previous` are this worker's own counts
 * (statistics only).
 */
import type { CounterPolicy } from './counting.js';
import { type DecisionScratch, OVER, PENDING, WITHIN } from './decision.js';
import type { KeyTable } from './key-table.js';
import type { LeaseAsk, LeaseGrant, LeaseReclaim, LeaseReturn } from './lease-arbiter.js';
import { type CompiledRule, counterKey } from './matcher.js';
import type { CounterHost } from './shared-policy.js';
import type { StoreErrorDecisions } from './store-error-decisions.js';

/** How a worker holds and sizes its permits (see lease-client.ts). */
export interface LeaseOptions {
  /** A lease should last about this long at the key's recent rate (two sync intervals). */
  readonly targetMs: number;
  /** Permits held longer than this since their grant go back to the primary (demand fell). */
  readonly holdMs: number;
  /** While the primary does not answer: refuse (true) or admit uncounted (false). */
  readonly failClosed: boolean;
  /** Where --on-store-error's decisions are counted. */
  readonly storeErrorDecisions?: StoreErrorDecisions | undefined;
  /** Called when the first ask of a batch is queued, so the caller can schedule the batch. */
  readonly onAsk: () => void;
}

/** One queued ask, with what it takes to find its slot again when the grant comes back. */
export interface LeaseRequest {
  readonly ask: LeaseAsk;
  readonly ruleId: string;
  readonly partition: string;
}

export class LeaseCounting implements CounterPolicy {
  /** Permits held for the slot's window; negative = admitted without one (shadow rule, outage). */
  readonly permits: Float64Array;
  /** The primary's estimate of the slot's window at the last grant. */
  readonly estimate: Float64Array;
  /** When the last grant arrived (epoch ms), and how many permits it brought: recent demand. */
  readonly leaseAt: Float64Array;
  readonly leaseSize: Float64Array;
  /** Known refusal: deny locally until `deniedUntil`; Retry-After counts to `retryAt`. */
  readonly deniedUntil: Float64Array;
  readonly retryAt: Float64Array;
  /** Requests waiting for this slot's next ask (sizes the ask). */
  readonly waiting: Int32Array;
  /** Permits of the slot's window spent since the last report to the primary. */
  readonly spent: Float64Array;
  /** 0 no ask, 1 an ask queued for the next batch, 2 an ask in flight, 3 an ask deferred (reclaiming). */
  readonly asking: Uint8Array;
  /** Whether the primary answers; while it does not, `failClosed` decides. */
  healthy = true;
  private askSlots: number[] = [];
  private askGenerations: number[] = [];
  /** Slots whose ask waits for a recheck (the primary reclaims their key), with their generation. */
  private deferredSlots: number[] = [];
  private deferredGenerations: number[] = [];
  /** The shortest recheck the primary asked for since takeRecheckMs() (0: none). */
  private recheckMs = 0;
  /** When a permit was last spent (epoch ms): the primary may want a report for a while after. */
  private lastSpentAt = Number.NEGATIVE_INFINITY;
  /** The longest window of the rules: how long a spent permit may be asked about. */
  private readonly longestWindowMs: number;
  private readonly returns = new Map<string, LeaseReturn>();
  private readonly ruleIndex = new Map<string, number>();

  constructor(
    private readonly host: CounterHost,
    private readonly options: LeaseOptions,
  ) {
    const size = host.table.maxKeys;
    this.permits = new Float64Array(size);
    this.estimate = new Float64Array(size);
    this.leaseAt = new Float64Array(size);
    this.leaseSize = new Float64Array(size);
    this.deniedUntil = new Float64Array(size);
    this.retryAt = new Float64Array(size);
    this.waiting = new Int32Array(size);
    this.spent = new Float64Array(size);
    this.asking = new Uint8Array(size);
    let longest = 0;
    for (const rule of host.rules) {
      this.ruleIndex.set(rule.info.id, rule.index);
      longest = Math.max(longest, rule.windowMs);
    }
    this.longestWindowMs = longest;
  }

  private get table(): KeyTable {
    return this.host.table;
  }

  /** Permits waiting to go back to the primary. */
  get pendingCount(): number {
    return this.returns.size;
  }

  added(slot: number): void {
    this.permits[slot] = 0;
    this.estimate[slot] = 0;
    this.leaseAt[slot] = 0;
    this.leaseSize[slot] = 0;
    this.deniedUntil[slot] = 0;
    this.retryAt[slot] = 0;
    this.waiting[slot] = 0;
    this.spent[slot] = 0;
    this.asking[slot] = 0;
  }

  roll(slot: number, rule: CompiledRule): number {
    // Permits of the old window are void now: hand them back so they stop counting as admitted.
    // A debt (admitted without a permit, not yet counted by the primary) stays, to be charged to
    // the new window: counted later rather than not at all, which can only make limits stricter.
    const held = this.permits[slot]!;
    const spent = this.spent[slot]!;
    if (held > 0 || spent > 0) {
      // Reported too: the primary's estimate still weighs the old window.
      const table = this.table;
      const key = counterKey(rule, table.partition(slot));
      this.giveBack(key, table.windowStart[slot]!, rule.windowMs, Math.max(0, held), spent);
      if (held > 0) this.permits[slot] = 0;
      this.spent[slot] = 0;
    }
    this.estimate[slot] = 0;
    return this.table.current[slot]!;
  }

  /**
   * WITHIN with a permit in hand, or admitted without one (the primary unreachable with failClosed
   * off, or a shadow rule); OVER with a known refusal, or the primary unreachable with failClosed
   * on; PENDING when the primary must be asked first.
   */
  evaluate(s: DecisionScratch, i: number, slot: number, rule: CompiledRule, now: number): number {
    const permits = this.permits[slot]!;
    const used = Math.max(0, this.estimate[slot]! - Math.max(0, permits));
    let state = WITHIN;
    let retry = 0;
    if (permits > 0) state = WITHIN;
    else if (this.deniedUntil[slot]! > now) {
      state = OVER;
      retry = Math.max(0, this.retryAt[slot]! - now);
    } else if (!this.healthy) {
      // Keep one ask going per key: its answer is how we learn the primary is back.
      this.ask(slot, 0);
      if (!rule.shadow) this.options.storeErrorDecisions?.count(rule.info.id, !this.options.failClosed);
      if (this.options.failClosed && !rule.shadow) {
        state = OVER;
        retry = 1000;
      }
    } else state = PENDING;
    s.state[i] = state;
    s.retryMs[i] = retry;
    s.remaining[i] = state === OVER ? 0 : Math.max(0, rule.limit - used - 1);
    return state;
  }

  commit(s: DecisionScratch, i: number, slot: number): void {
    // Without a permit (a shadow rule over its limit, the primary unreachable) this is a debt,
    // charged with the next ask: the primary counts every request that went through.
    const left = --this.permits[slot]!;
    if (left >= 0) {
      this.spent[slot]!++;
      this.lastSpentAt = s.windowStart[i]! + s.elapsed[i]!;
    }
    // Half the lease is used: ask for the next one now, so steady traffic never waits.
    if (left > 0 && 2 * left <= this.leaseSize[slot]! && this.asking[slot] === 0) this.ask(slot, 0);
  }

  used(slot: number, _rule: CompiledRule, sameWindow: boolean): number {
    return sameWindow ? Math.max(0, this.estimate[slot]! - Math.max(0, this.permits[slot]!)) : 0;
  }

  /** Queues an ask for a slot's counter (once per batch); `waiting` requests will wait for it. */
  ask(slot: number, waiting: number): void {
    this.waiting[slot]! += waiting;
    if (this.asking[slot] !== 0) return;
    this.asking[slot] = 1;
    this.askSlots.push(slot);
    this.askGenerations.push(this.table.generation[slot]!);
    if (this.askSlots.length === 1) this.options.onAsk();
  }

  /**
   * The asks queued since the last call, sized from demand: the requests waiting for the key, or
   * what the key used of its last lease scaled to `targetMs` (growing at most twofold per lease),
   * at most the rule's cap; any debt goes as a charge the primary counts whatever the room, so
   * nothing admitted goes uncounted. A key asks when it runs out with requests waiting, and in the
   * background once half its lease is used, so steady traffic gets its next lease in time.
   */
  collectAsks(now: number): LeaseRequest[] {
    const table = this.table;
    const target = this.options.targetMs;
    const requests: LeaseRequest[] = [];
    for (let k = 0; k < this.askSlots.length; k++) {
      const slot = this.askSlots[k]!;
      if (table.generation[slot] !== this.askGenerations[k] || this.asking[slot] !== 1) continue;
      this.asking[slot] = 2;
      const rule = this.host.rules[table.rule[slot]!]!;
      const partition = table.partition(slot);
      const waiting = this.waiting[slot]!;
      this.waiting[slot] = 0;
      const permits = this.permits[slot]!;
      let want = Math.max(1, waiting);
      // What the key used of its last lease, and how fast, projected over `target`.
      const last = this.leaseSize[slot]!;
      const used = last - Math.max(0, permits);
      if (last > 0 && used > 0) {
        const projected = Math.ceil((used * target) / Math.max(1, now - this.leaseAt[slot]!));
        want = Math.max(want, Math.min(projected, 2 * last + waiting));
      }
      const spent = this.spent[slot]!;
      this.spent[slot] = 0;
      requests.push({
        ask: {
          key: counterKey(rule, partition),
          windowMs: rule.windowMs,
          cap: rule.cap,
          want: Math.min(want, rule.cap),
          charge: Math.max(0, -permits),
          spent,
          spentIn: table.windowStart[slot]!,
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
   * `roll` moves a slot on to a later window (the core's roll).
   */
  applyGrants(
    requests: readonly LeaseRequest[],
    grants: readonly LeaseGrant[],
    now: number,
    roll: (slot: number, rule: CompiledRule, windowStart: number) => void,
  ): void {
    const table = this.table;
    for (let k = 0; k < requests.length; k++) {
      const { ask } = requests[k]!;
      const grant = grants[k];
      const slot = this.leaseSlot(requests[k]!);
      if (slot >= 0) this.asking[slot] = 0;
      if (!grant) continue;
      // The primary has counted what was admitted without a permit: that debt is settled, in
      // whichever window the counter is now (a debt carried over a window roll stays owed).
      const charge = ask.charge ?? 0;
      if (slot >= 0 && charge > 0) this.permits[slot]! += charge;
      const start = slot >= 0 ? table.windowStart[slot]! : Number.POSITIVE_INFINITY;
      if (start > grant.windowStart) {
        // No counter to hold them, or the counter moved on to a later window already.
        if (grant.granted > 0) this.giveBack(ask.key, grant.windowStart, ask.windowMs, grant.granted);
        continue;
      }
      if (start < grant.windowStart) roll(slot, this.host.rules[table.rule[slot]!]!, grant.windowStart);
      this.estimate[slot] = grant.estimate;
      if (grant.granted === 0 && grant.reclaiming === true) {
        // Not a refusal: permits held elsewhere are being reclaimed. Requests keep waiting, and
        // the ask goes again after the recheck time (LeaseClient's timer), not at once.
        this.asking[slot] = 3;
        const recheck = Math.max(1, grant.recheckMs);
        this.recheckMs = this.recheckMs === 0 ? recheck : Math.min(this.recheckMs, recheck);
        this.deferredSlots.push(slot);
        this.deferredGenerations.push(table.generation[slot]!);
        continue;
      }
      if (grant.granted === 0) {
        this.deniedUntil[slot] = now + grant.recheckMs;
        this.retryAt[slot] = now + grant.retryMs;
        continue;
      }
      this.permits[slot]! += grant.granted;
      this.leaseAt[slot] = now;
      this.leaseSize[slot] = grant.granted;
      this.deniedUntil[slot] = 0;
      if (this.permits[slot]! > 0) table.markDirty(slot);
    }
  }

  /** Asks that got no answer: their counters may ask again (and report their spending again). */
  dropAsks(requests: readonly LeaseRequest[]): void {
    for (const request of requests) {
      const slot = this.leaseSlot(request);
      if (slot < 0) continue;
      this.asking[slot] = 0;
      const { spent, spentIn } = request.ask;
      if (spent !== undefined && spent > 0 && spentIn === this.table.windowStart[slot])
        this.spent[slot]! += spent;
    }
  }

  /** How long until the deferred asks should go (the shortest recheck since the last call; 0: none). */
  takeRecheckMs(): number {
    const ms = this.recheckMs;
    this.recheckMs = 0;
    return ms;
  }

  /** Queues the deferred asks again (their recheck time has come). */
  requeueDeferred(): void {
    const table = this.table;
    const slots = this.deferredSlots;
    const generations = this.deferredGenerations;
    this.deferredSlots = [];
    this.deferredGenerations = [];
    for (let k = 0; k < slots.length; k++) {
      const slot = slots[k]!;
      if (table.generation[slot] !== generations[k] || this.asking[slot] !== 3) continue;
      this.asking[slot] = 0;
      this.ask(slot, 0);
    }
  }

  /** Whether asks wait for a recheck time (then waiting requests are redone when they go). */
  get hasDeferred(): boolean {
    return this.deferredSlots.length > 0;
  }

  /**
   * Whether the primary may be waiting for this worker: it holds permits, or spent some within the
   * longest window (their report may be wanted). Then it polls every sync interval.
   */
  shouldPoll(now: number): boolean {
    return this.table.dirtyCount > 0 || now - this.lastSpentAt < this.longestWindowMs;
  }

  /**
   * The primary reclaims these keys: hand back what is held of them and report what was spent, so
   * that a request waiting in another worker gets the permits, or a refusal that is final.
   */
  reclaim(reclaims: readonly LeaseReclaim[]): void {
    const table = this.table;
    for (const reclaim of reclaims) {
      const sep = reclaim.key.indexOf('|');
      const index = this.ruleIndex.get(sep < 0 ? reclaim.key : reclaim.key.slice(0, sep));
      if (index === undefined) continue;
      const rule = this.host.rules[index]!;
      if (rule.windowMs !== reclaim.windowMs) continue;
      const partition = sep < 0 ? '' : reclaim.key.slice(sep + 1);
      if (counterKey(rule, partition) !== reclaim.key) continue;
      const slot = this.host.slotOf(index, partition);
      if (slot < 0) continue;
      // A counter not rolled yet holds permits of the window before, which still weigh.
      const start = table.windowStart[slot]!;
      if (start !== reclaim.windowStart && start !== reclaim.windowStart - reclaim.windowMs) continue;
      const held = Math.max(0, this.permits[slot]!);
      const spent = this.spent[slot]!;
      if (held === 0 && spent === 0) continue;
      this.giveBack(reclaim.key, start, reclaim.windowMs, held, spent);
      this.permits[slot]! -= held;
      this.spent[slot] = 0;
    }
  }

  /**
   * Hands back permits that can no longer be used (their window ended) or were held longer than
   * `holdMs` (the key's demand fell): held, they would only keep other workers waiting.
   */
  scanLeases(now: number): void {
    const table = this.table;
    const holdMs = this.options.holdMs;
    table.compactDirty((slot) => {
      const held = this.permits[slot]!;
      if (held <= 0) return false;
      const rule = this.host.rules[table.rule[slot]!]!;
      const start = table.windowStart[slot]!;
      if (start >= now - (now % rule.windowMs) && now - this.leaseAt[slot]! <= holdMs) return true;
      this.giveBack(counterKey(rule, table.partition(slot)), start, rule.windowMs, held, this.spent[slot]!);
      this.permits[slot] = 0;
      this.spent[slot] = 0;
      return false;
    });
  }

  /** Hands back every permit held (shutdown, or the limiter is being replaced). */
  releaseAll(): void {
    const table = this.table;
    table.compactDirty((slot) => {
      const held = this.permits[slot]!;
      if (held > 0) {
        const rule = this.host.rules[table.rule[slot]!]!;
        this.giveBack(counterKey(rule, table.partition(slot)), table.windowStart[slot]!, rule.windowMs, held);
        this.permits[slot] = 0;
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

  private giveBack(key: string, windowStart: number, windowMs: number, count: number, spent = 0): void {
    const id = `${key}@${windowStart}`;
    const known = this.returns.get(id);
    this.returns.set(id, {
      key,
      windowStart,
      windowMs,
      count: count + (known?.count ?? 0),
      spent: spent + (known?.spent ?? 0),
    });
  }

  /**
   * The slot an ask was for, in this limiter: same rule id, window and counter key, and a cap no
   * smaller than the one it was asked under (permits granted under a larger cap could exceed the
   * new one: they go back, and waiting requests ask again); else -1.
   */
  private leaseSlot(request: LeaseRequest): number {
    const index = this.ruleIndex.get(request.ruleId);
    if (index === undefined) return -1;
    const rule = this.host.rules[index]!;
    if (
      rule.windowMs !== request.ask.windowMs ||
      rule.cap < request.ask.cap ||
      counterKey(rule, request.partition) !== request.ask.key
    )
      return -1;
    return this.host.slotOf(index, request.partition);
  }

  /**
   * Moves one counter's lease state over from the limiter this one replaces. Permits move only when
   * the rule's cap did not shrink (granted under a larger cap, they could exceed the new one); a
   * known refusal only when the cap is unchanged or smaller. Permits left behind go back through
   * `from.releaseAll()`.
   */
  adopt(
    slot: number,
    from: LeaseCounting | undefined,
    oldSlot: number,
    capKept: boolean,
    capSame: boolean,
  ): void {
    if (!from) return;
    this.estimate[slot] = from.estimate[oldSlot]!;
    this.leaseAt[slot] = from.leaseAt[oldSlot]!;
    this.leaseSize[slot] = from.leaseSize[oldSlot]!;
    // What was spent is owed a report whatever happens to the permits.
    this.spent[slot] = from.spent[oldSlot]!;
    from.spent[oldSlot] = 0;
    this.lastSpentAt = Math.max(this.lastSpentAt, from.lastSpentAt);
    if (capSame || !capKept) {
      this.deniedUntil[slot] = from.deniedUntil[oldSlot]!;
      this.retryAt[slot] = from.retryAt[oldSlot]!;
    }
    if (!capKept) return;
    this.permits[slot] = from.permits[oldSlot]!;
    from.permits[oldSlot] = 0;
    if (this.permits[slot]! > 0) this.table.markDirty(slot);
  }

  /** Takes over the permits the replaced limiter still has to hand back. */
  adoptReturns(from: LeaseCounting): void {
    for (const [id, back] of from.returns) this.returns.set(id, back);
    from.returns.clear();
  }
}
