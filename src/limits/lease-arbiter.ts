/**
 * Exact limits across the workers of one host (`serve --workers N`, embedded store): the primary's
 * side. The primary keeps the authoritative sliding-window counts of every counter key and hands
 * the workers permits ("leases") out of them; a worker admits a request only with a permit in hand
 * (lease-client.ts, and lease-policy.ts).
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
 * Refusals, and why none is premature. Granted permits count as admitted, so "no room" may only
 * mean that some sit unused in a worker. The arbiter therefore keeps, per key, the permits of the
 * current window that are OUTSTANDING: granted, and neither reported spent nor handed back (workers
 * report what they spent with their asks and when reclaimed). While room < 1 and some are
 * outstanding, an ask is not refused: the key is marked contended and the worker told to ask again
 * after `recheckMs` (the request keeps waiting). Every worker that holds permits or has spent some
 * in a window polls the arbiter each sync interval (LeaseTransport.release, even with nothing to
 * return), and the answer lists the contended keys: the worker hands back what it holds of them
 * and reports what it spent. Once nothing is outstanding, room < 1 means the host really admitted
 * cap requests, and only then is a refusal final; it carries how long until one permit frees if
 * nothing else is admitted (msUntilAvailable), which the worker uses for Retry-After and to deny
 * locally without asking again. A worker that died with permits never reports them: after
 * `reclaimMs` of contention the refusal is final anyway (under-admission, never over-admission).
 *
 * Charges. What a worker admitted without a permit (the primary unreachable with --on-store-error
 * open, or a shadow rule) comes with its next ask and is counted whatever the room: the primary's
 * counts then hold everything admitted, and the estimate makes up for it. A debt that outlived its
 * window is charged to the next one, which counts it in full rather than weighted: stricter, never
 * laxer.
 *
 * Versions. A counter is a key and a window length, so while workers reload a rule whose window
 * changed, each version counts apart instead of resetting the other; the old one ages out.
 *
 * A worker that dies keeps its unused permits: they are not given back (the primary cannot know how
 * many it used before dying, and forgetting used ones would over-admit), so they expire with their
 * window, counted as admitted: under-admission of at most one lease per key, for one window.
 *
 * Memory: a few numbers per counter key in typed arrays, no object per key. Keys whose partition is
 * one IPv4 address (a `by: [ip]` rule, the usual way to have a million keys) are found through an
 * Ip4Index with no string kept; other keys through a Map. Keys whose last window is older than the
 * previous one weigh in no estimate and go at the next sweep.
 */

import { parseDottedQuad } from './ip.js';
import { Ip4Index } from './ip4-index.js';
import { flatCopy } from './key-table.js';
import { msUntilAvailable, slidingEstimate } from './sliding.js';
import { resize } from './typed-arrays.js';
import { WINDOW_MS } from './window.js';

/** A worker's request for permits of one counter key. */
export interface LeaseAsk {
  /** Counter key (rule id and partition, as counterKey() joins them). */
  readonly key: string;
  readonly windowMs: number;
  /** limit + burst of the rule as the worker knows it. */
  readonly cap: number;
  /** Permits the worker would like (at least 1). */
  readonly want: number;
  /**
   * Requests the worker already admitted without a permit (the primary unreachable with
   * --on-store-error open, or a shadow rule): counted in whatever the room, before the grant.
   */
  readonly charge?: number;
  /** Permits the worker spent since it last reported, in the window starting at `spentIn`. */
  readonly spent?: number;
  readonly spentIn?: number;
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
  /**
   * When granted is 0: not a refusal yet, permits are still outstanding in workers and being
   * reclaimed; the request waits and asks again after recheckMs.
   */
  readonly reclaiming?: boolean;
}

/** Unused permits a worker hands back. */
export interface LeaseReturn {
  readonly key: string;
  readonly windowStart: number;
  readonly windowMs: number;
  readonly count: number;
  /** Permits of that window the worker spent since it last reported. */
  readonly spent?: number;
}

/** A key whose asks wait for outstanding permits: holders hand theirs back and report what they spent. */
export interface LeaseReclaim {
  readonly key: string;
  readonly windowStart: number;
  readonly windowMs: number;
}

/** How a worker reaches the arbiter (over IPC in the cluster; directly in tests). */
export interface LeaseTransport {
  lease(asks: readonly LeaseAsk[]): Promise<LeaseGrant[]>;
  /**
   * Returns and spending reports (possibly none: a poll); answers the keys being reclaimed. A lost
   * call only leaves permits unused until their window ends or `reclaimMs` passes.
   */
  release(returns: readonly LeaseReturn[]): Promise<readonly LeaseReclaim[] | undefined>;
}

export interface LeaseArbiterOptions {
  /** Live workers; leases are at most room / (2 × workers). */
  readonly workers: () => number;
  /** Ask again after this long when a refusal may be undone by returned permits (default 100 ms). */
  readonly recheckMs?: number;
  /**
   * How long an ask may wait for outstanding permits before its refusal is final anyway (a worker
   * that died holding permits never reports them; default 2000 ms).
   */
  readonly reclaimMs?: number;
  /** Keys to allocate room for up front (default 1,000,000, as a worker's limiter); more double it. */
  readonly initialKeys?: number;
}

const NONE = -1;
/** Rule ids get a 16-bit number each for the IPv4 index; beyond that, keys go to the Map. */
const MAX_RULE_IDS = 65_535;
const MIN_CAPACITY = 1024;

export class LeaseArbiter {
  /** Start (epoch ms, aligned) of the window `current` counts. */
  private windowStart = new Float64Array(0);
  /** The key's window length; 0 marks a free slot. */
  private windowMs = new Float64Array(0);
  /** Permits granted in the current window, minus those returned. */
  private current = new Float64Array(0);
  /** The same for the window before it (0 when that was not the previous window). */
  private previous = new Float64Array(0);
  /**
   * Permits granted and neither reported spent nor handed back, of the current window and of the
   * previous one (which the estimate still weighs: its unused permits come back after the roll).
   */
  private outstanding = new Float64Array(0);
  private outstandingBefore = new Float64Array(0);
  /**
   * The keys being reclaimed, by slot, and since when asks wait for them (an entry only while
   * asks wait: few, and short-lived, so no per-slot array for it).
   */
  private readonly contended = new Map<number, { readonly reclaim: LeaseReclaim; readonly since: number }>();
  /** For keys found by address: the number of their rule id, and the address (read by byAddress). */
  private readonly view = { rule: new Uint16Array(0), ip4: new Uint32Array(0) };
  /** The key of a slot found through `byKey`; undefined (or past the end) for one found by address. */
  private keys: (string | undefined)[] = [];
  /** Free slots, linked through `nextFree`. */
  private nextFree = new Int32Array(0);
  private freeHead = NONE;
  private used = 0;
  private count = 0;
  private readonly byKey = new Map<string, number>();
  private readonly byAddress = new Ip4Index(this.view);
  private readonly ruleNumbers = new Map<string, number>();
  /** Where the next sweep slice starts. */
  private sweepCursor = 0;
  private readonly workers: () => number;
  private readonly recheckMs: number;
  private readonly reclaimMs: number;

  constructor(options: LeaseArbiterOptions) {
    this.workers = options.workers;
    this.recheckMs = options.recheckMs ?? 100;
    this.reclaimMs = options.reclaimMs ?? 2000;
    // Fresh zeroed pages become resident only as slots are used, and never outgrowing them means no
    // outgrown copies left in the allocator (a million keys: 81 MB of RSS instead of 97).
    this.grow(Math.max(MIN_CAPACITY, options.initialKeys ?? 1_000_000));
  }

  get size(): number {
    return this.count;
  }

  /** Answers a batch of asks in order; each grant is counted before the next ask is looked at. */
  grant(asks: readonly LeaseAsk[], now: number): LeaseGrant[] {
    const workers = Math.max(1, Math.floor(this.workers()));
    const grants: LeaseGrant[] = [];
    for (const ask of asks) {
      const { windowMs, cap } = ask;
      const elapsed = now % windowMs;
      const windowStart = now - elapsed;
      const slot = this.slotFor(ask.key, windowMs, windowStart);
      const charge = ask.charge ?? 0;
      if (charge > 0) this.current[slot]! += charge;
      if (ask.spentIn === windowStart) this.settle(slot, ask.spent ?? 0, this.outstanding);
      else if (ask.spentIn === windowStart - windowMs)
        this.settle(slot, ask.spent ?? 0, this.outstandingBefore);
      const previous = this.previous[slot]!;
      const current = this.current[slot]!;
      const estimate = slidingEstimate(previous, current, windowMs, elapsed);
      const room = cap - estimate;
      if (room >= 1) {
        const share = Math.max(1, Math.floor(room / (2 * workers)));
        const granted = Math.min(Math.max(1, Math.floor(ask.want)), share);
        this.current[slot] = current + granted;
        this.outstanding[slot]! += granted;
        grants.push({ windowStart, granted, estimate: estimate + granted, retryMs: 0, recheckMs: 0 });
        continue;
      }
      const retryMs = Math.max(1, msUntilAvailable(previous, current, windowMs, elapsed, cap));
      if (this.outstanding[slot]! + this.outstandingBefore[slot]! > 0) {
        // Permits sit in workers, maybe unused: reclaim them before refusing anyone.
        let contention = this.contended.get(slot);
        if (contention === undefined) {
          contention = { reclaim: { key: ask.key, windowStart, windowMs }, since: now };
          this.contended.set(slot, contention);
        }
        if (now - contention.since < this.reclaimMs) {
          const recheckMs = Math.min(retryMs, this.recheckMs);
          grants.push({ windowStart, granted: 0, estimate, retryMs, recheckMs, reclaiming: true });
          continue;
        }
      }
      grants.push({ windowStart, granted: 0, estimate, retryMs, recheckMs: retryMs });
    }
    return grants;
  }

  /**
   * Takes back unused permits and spending reports (returns for windows that no estimate reads any
   * more are ignored); answers the keys being reclaimed, for every worker to hand back its part.
   */
  release(returns: readonly LeaseReturn[], now: number): LeaseReclaim[] {
    for (const back of returns) {
      const slot = this.find(back.key, back.windowMs);
      if (slot === NONE) continue;
      const count = Math.max(0, back.count || 0);
      const windowStart = this.windowStart[slot]!;
      if (windowStart === back.windowStart) {
        this.current[slot] = Math.max(0, this.current[slot]! - count);
        this.settle(slot, count + (back.spent ?? 0), this.outstanding);
      } else if (windowStart === back.windowStart + back.windowMs) {
        this.previous[slot] = Math.max(0, this.previous[slot]! - count);
        this.settle(slot, count + (back.spent ?? 0), this.outstandingBefore);
      }
    }
    const reclaims: LeaseReclaim[] = [];
    for (const [slot, { reclaim }] of this.contended) {
      if (reclaim.windowStart !== now - (now % reclaim.windowMs)) this.contended.delete(slot);
      else reclaims.push(reclaim);
    }
    return reclaims;
  }

  /** Outstanding permits reported spent or handed back; once none is left, nothing is reclaimed. */
  private settle(slot: number, count: number, outstanding: Float64Array): void {
    if (!(count > 0)) return;
    outstanding[slot] = Math.max(0, outstanding[slot]! - count);
    if (this.outstanding[slot]! + this.outstandingBefore[slot]! === 0) this.contended.delete(slot);
  }

  /**
   * The counts of a key as of `now` (for tests and diagnostics), for one window length or the first
   * of the standard lengths the key is counted in.
   */
  counts(key: string, now: number, length?: number): { current: number; previous: number } | undefined {
    let slot = NONE;
    for (const candidate of length === undefined ? Object.values(WINDOW_MS) : [length]) {
      slot = this.find(key, candidate);
      if (slot !== NONE) break;
    }
    if (slot === NONE) return undefined;
    const windowMs = this.windowMs[slot]!;
    const windowStart = now - (now % windowMs);
    const start = this.windowStart[slot]!;
    if (start === windowStart) return { current: this.current[slot]!, previous: this.previous[slot]! };
    if (start === windowStart - windowMs) return { current: 0, previous: this.current[slot]! };
    return { current: 0, previous: 0 };
  }

  /**
   * Forgets keys whose counts no estimate reads any more (last window older than the previous),
   * looking at up to `budget` slots; returns how many went.
   */
  sweep(now: number, budget = Number.POSITIVE_INFINITY): number {
    // Resumes where the last call stopped, so a million keys are swept a slice at a time and the
    // primary never stops answering leases for a whole pass.
    let removed = 0;
    for (let visited = 0; visited < budget; visited++) {
      if (this.sweepCursor >= this.used) {
        this.sweepCursor = 0;
        break;
      }
      const slot = this.sweepCursor++;
      const windowMs = this.windowMs[slot]!;
      if (windowMs === 0) continue;
      if (this.windowStart[slot]! < now - (now % windowMs) - windowMs) {
        this.remove(slot);
        removed++;
      }
    }
    return removed;
  }

  /** The slot of a key, moved to the window starting at `windowStart` (created if new). */
  private slotFor(key: string, windowMs: number, windowStart: number): number {
    const address = keyAddress(key);
    const slot = this.find(key, windowMs, address);
    if (slot === NONE) return this.add(key, windowMs, windowStart, address);
    const start = this.windowStart[slot]!;
    if (start < windowStart) {
      this.previous[slot] = start === windowStart - windowMs ? this.current[slot]! : 0;
      this.current[slot] = 0;
      this.windowStart[slot] = windowStart;
      // Permits of an ended window are void: none is outstanding in the new one, and those of the
      // window before still weigh until they are reported.
      this.outstandingBefore[slot] = start === windowStart - windowMs ? this.outstanding[slot]! : 0;
      this.outstanding[slot] = 0;
      this.contended.delete(slot);
    }
    return slot;
  }

  /**
   * A counter is a key and a window length: while workers reload a rule whose window changed (up to
   * a sync interval apart), each version counts on its own instead of resetting the other's counts
   * at every ask; the old one ages out through the sweep.
   */
  private find(key: string, windowMs: number, address = keyAddress(key)): number {
    if (address !== NONE) {
      const rule = this.ruleNumbers.get(ruleVersion(key.slice(0, key.indexOf('|')), windowMs));
      if (rule !== undefined) return this.byAddress.get(rule, address);
    }
    return this.byKey.get(ruleVersion(key, windowMs)) ?? NONE;
  }

  /** Adds a key; `address` is keyAddress(key). */
  private add(key: string, windowMs: number, windowStart: number, address: number): number {
    const slot = this.allocate();
    this.windowStart[slot] = windowStart;
    this.windowMs[slot] = windowMs;
    this.current[slot] = 0;
    this.previous[slot] = 0;
    this.outstanding[slot] = 0;
    this.outstandingBefore[slot] = 0;
    this.count++;
    const rule =
      address === NONE ? NONE : this.ruleNumber(ruleVersion(key.slice(0, key.indexOf('|')), windowMs));
    if (rule !== NONE) {
      // `keys` stays as short as the slots keyed by text need (a freed slot's entry is cleared);
      // only `remove` reads it, so the holes cost nothing.
      this.view.rule[slot] = rule;
      this.view.ip4[slot] = address;
      this.byAddress.add(slot);
    } else {
      const stored = flatCopy(ruleVersion(key, windowMs));
      this.keys[slot] = stored;
      this.byKey.set(stored, slot);
    }
    return slot;
  }

  /** The number of a rule id for the IPv4 index; -1 once there are too many ids to number. */
  private ruleNumber(id: string): number {
    let rule = this.ruleNumbers.get(id);
    if (rule === undefined) {
      if (this.ruleNumbers.size >= MAX_RULE_IDS) return NONE;
      rule = this.ruleNumbers.size;
      this.ruleNumbers.set(flatCopy(id), rule);
    }
    return rule;
  }

  private remove(slot: number): void {
    const key = this.keys[slot];
    if (key === undefined) this.byAddress.delete(slot);
    else {
      this.byKey.delete(key);
      this.keys[slot] = undefined;
    }
    this.windowMs[slot] = 0;
    this.contended.delete(slot);
    this.count--;
    this.nextFree[slot] = this.freeHead;
    this.freeHead = slot;
  }

  private allocate(): number {
    if (this.freeHead !== NONE) {
      const slot = this.freeHead;
      this.freeHead = this.nextFree[slot]!;
      return slot;
    }
    if (this.used === this.windowStart.length) this.grow(Math.max(MIN_CAPACITY, this.used * 2));
    return this.used++;
  }

  private grow(capacity: number): void {
    this.windowStart = resize(this.windowStart, capacity);
    this.windowMs = resize(this.windowMs, capacity);
    this.current = resize(this.current, capacity);
    this.previous = resize(this.previous, capacity);
    this.outstanding = resize(this.outstanding, capacity);
    this.outstandingBefore = resize(this.outstandingBefore, capacity);
    this.view.rule = resize(this.view.rule, capacity);
    this.view.ip4 = resize(this.view.ip4, capacity);
    this.nextFree = resize(this.nextFree, capacity);
  }
}

/**
 * The address of a key that is a rule id, '|' and one canonical IPv4 address, or -1. Rule ids never
 * contain '|' (rule.ts), so such a key has exactly one; a partition of several parts, or a header
 * value that contains '|', keeps its key as text, and clients cannot make up rule ids.
 */
function keyAddress(key: string): number {
  const sep = key.indexOf('|');
  return sep > 0 && key.indexOf('|', sep + 1) < 0 ? parseDottedQuad(key, sep + 1) : NONE;
}

/** A key (or rule id) with its window length: what the arbiter counts by. */
function ruleVersion(key: string, windowMs: number): string {
  return `${key} ${windowMs}`;
}
