/**
 * The counter table: one slot per counter key, state in parallel typed arrays (a few numbers per
 * key, no object per key), one Map per rule from partition to slot (so a lookup by client address
 * needs no concatenated key), and one least-recently-used list per window size.
 *
 * Partitions that are one IPv4 address (a `by: [ip]` rule, the common way to have a million keys)
 * skip the Map and the string: the address is kept as a 32-bit number in a typed array and found
 * through an open-addressing hash of slot numbers (linear probing, at most half full, deletions by
 * backward shift, in ip4-index.ts). Such a key costs ~60 bytes of resident memory, all outside the
 * JS heap (the counting policies' own per-slot arrays stay untouched zero pages until their mode uses them), against ~136 with a Map entry and a string; and a heap that holds a million small objects
 * also makes V8 let its garbage grow to several times that before collecting (measured: 500 MB RSS
 * at 1,000,000 client addresses, against ~230 MB with this index).
 *
 * Why one list per window size: within a size, the list order is also the order in which keys go
 * idle, so expiring idle keys only ever looks at list tails. A key is idle once its last window is
 * older than the previous one: its counts can no longer weigh in any decision (nor in any shared
 * total anyone reads), so dropping it resets nothing. An active key is never evicted; when the table
 * is full of active keys, `insert` returns -1 and the limiter applies its `onTableFull` policy.
 */

import { formatIpv4 } from './ip.js';
import { Ip4Index } from './ip4-index.js';
import { resize } from './typed-arrays.js';
import { WINDOW_MS, WINDOW_NAMES } from './window.js';

const NONE = -1;

export class KeyTable {
  readonly maxKeys: number;
  private readonly indexes: Map<string, number>[] = [];
  private count = 0;
  private capacity = 0;
  private used = 0;
  private freeHead = NONE;

  /**
   * Partition of each slot within its rule (see partitionValue); undefined (or past the end) when
   * free or keyed by IPv4 address.
   */
  keys: (string | undefined)[] = [];
  /** Start (epoch ms, aligned) of the window `current` counts. Doubles as last-touch time. */
  windowStart = new Float64Array(0);
  /** Requests admitted by this process in that window. */
  current = new Float64Array(0);
  /** Best known total of the window before it (all replicas, when shared). */
  previous = new Float64Array(0);
  /** Rule index, to find the window and limits of a slot from the slot alone. */
  rule = new Uint16Array(0);
  /** Bumped when a slot is freed and when it is reused, so that whoever kept a slot number can tell. */
  generation = new Uint32Array(0);
  /** 1 while the slot is on the dirty list (its policy has background work: deltas to push, permits held). */
  dirty = new Uint8Array(0);
  private next = new Int32Array(0);
  private prev = new Int32Array(0);
  private listOf = new Uint8Array(0);
  private readonly heads = new Int32Array(WINDOW_NAMES.length).fill(NONE);
  private readonly tails = new Int32Array(WINDOW_NAMES.length).fill(NONE);

  /** The IPv4 address of a slot keyed by address (see getIp4); its `keys` entry is then undefined. */
  ip4 = new Uint32Array(0);
  /** The IPv4-keyed slots, by (rule, address). */
  private readonly ip4Index = new Ip4Index(this);

  /** Slots on the dirty list, each once; compacted by the policy's background pass. */
  dirtyList = new Int32Array(64);
  dirtyCount = 0;

  constructor(maxKeys: number) {
    if (!Number.isInteger(maxKeys) || maxKeys < 1 || maxKeys > 2 ** 30) {
      throw new RangeError(`maxKeys must be a whole number from 1 to ${2 ** 30}, got ${maxKeys}`);
    }
    this.maxKeys = maxKeys;
    // All slots at once: the arrays are zero-filled fresh pages that only become resident as slots
    // are used (in order), and never growing means never copying. Doubling from a small size left
    // the outgrown copies (~70 MB on the way to 1,000,000 keys) in the allocator, counted in RSS.
    this.grow(maxKeys);
  }

  get size(): number {
    return this.count;
  }

  get allocated(): number {
    return this.capacity;
  }

  get(rule: number, partition: string): number {
    return this.indexes[rule]?.get(partition) ?? NONE;
  }

  /** The slot of `rule`'s counter for one IPv4 address (as a 32-bit number), or -1. */
  getIp4(rule: number, address: number): number {
    return this.ip4Index.get(rule, address);
  }

  /** The partition of a slot as text: what `insert` was given, or the IPv4 address it was keyed by. */
  partition(slot: number): string {
    return this.keys[slot] ?? formatIpv4(this.ip4[slot]!);
  }

  /**
   * Adds a key in window `windowStart` and returns its slot, or -1 when every slot holds an active
   * key. Expires a couple of idle keys of the same window size on the way, so the table follows
   * the working set without a timer.
   */
  insert(rule: number, partition: string, list: number, windowStart: number, now: number): number {
    const slot = this.claim(list, now);
    if (slot === NONE) return NONE;
    const stored = flatCopy(partition);
    let index = this.indexes[rule];
    if (index === undefined) {
      index = new Map();
      this.indexes[rule] = index;
    }
    index.set(stored, slot);
    this.keys[slot] = stored;
    this.initialise(slot, rule, list, windowStart);
    return slot;
  }

  /** `insert` for a partition that is one IPv4 address, given as a 32-bit number (see getIp4). */
  insertIp4(rule: number, address: number, list: number, windowStart: number, now: number): number {
    const slot = this.claim(list, now);
    if (slot === NONE) return NONE;
    // `keys` stays as short as the slots keyed by text need (growing it for every address cost ~40
    // MB of RSS at a million, in outgrown copies); a freed slot's entry is cleared. Holes may turn
    // it into a dictionary, which is fine: no request path reads it (see Limiter.fixSlot).
    this.ip4[slot] = address;
    this.rule[slot] = rule;
    this.ip4Index.add(slot);
    this.initialise(slot, rule, list, windowStart);
    return slot;
  }

  /** A free slot, expiring idle keys on the way; -1 when every slot holds an active key. */
  private claim(list: number, now: number): number {
    this.expireIdle(list, now, 2);
    let slot = this.allocate();
    if (slot === NONE) {
      for (let l = 0; l < WINDOW_NAMES.length && slot === NONE; l++) {
        if (this.expireIdle(l, now, 1) > 0) slot = this.allocate();
      }
    }
    return slot;
  }

  private initialise(slot: number, rule: number, list: number, windowStart: number): void {
    this.count++;
    this.windowStart[slot] = windowStart;
    this.current[slot] = 0;
    this.previous[slot] = 0;
    this.rule[slot] = rule;
    this.generation[slot] = (this.generation[slot]! + 1) >>> 0;
    this.listOf[slot] = list;
    this.linkHead(slot, list);
  }

  /** The partitions and slots of one rule (for carrying counters over to a new rule set). */
  *entries(rule: number): IterableIterator<[string, number]> {
    yield* this.indexes[rule] ?? [];
    for (const slot of this.ip4Index.entries()) {
      if (this.rule[slot] === rule) yield [formatIpv4(this.ip4[slot]!), slot];
    }
  }

  /** Marks a slot most recently used. */
  touch(slot: number): void {
    const list = this.listOf[slot]!;
    if (this.heads[list] === slot) return;
    this.unlink(slot, list);
    this.linkHead(slot, list);
  }

  markDirty(slot: number): void {
    if (this.dirty[slot] === 1) return;
    this.dirty[slot] = 1;
    if (this.dirtyCount === this.dirtyList.length) {
      const bigger = new Int32Array(this.dirtyList.length * 2);
      bigger.set(this.dirtyList);
      this.dirtyList = bigger;
    }
    this.dirtyList[this.dirtyCount++] = slot;
  }

  /** Keeps the dirty slots for which `keep` says so; the others leave the list. */
  compactDirty(keep: (slot: number) => boolean): void {
    let kept = 0;
    for (let i = 0; i < this.dirtyCount; i++) {
      const slot = this.dirtyList[i]!;
      if (keep(slot)) this.dirtyList[kept++] = slot;
      else this.dirty[slot] = 0;
    }
    this.dirtyCount = kept;
  }

  /** Expires up to `budget` idle keys from the tail of each list; returns how many went. */
  sweep(now: number, budget: number): number {
    let removed = 0;
    for (let l = 0; l < WINDOW_NAMES.length; l++) removed += this.expireIdle(l, now, budget);
    return removed;
  }

  private expireIdle(list: number, now: number, budget: number): number {
    const windowMs = WINDOW_MS[WINDOW_NAMES[list]!];
    const relevantFrom = now - (now % windowMs) - windowMs;
    let removed = 0;
    while (removed < budget) {
      const slot = this.tails[list]!;
      if (slot === NONE || this.windowStart[slot]! >= relevantFrom) break;
      this.remove(slot);
      removed++;
    }
    return removed;
  }

  private remove(slot: number): void {
    this.unlink(slot, this.listOf[slot]!);
    const key = this.keys[slot];
    if (key === undefined) this.ip4Index.delete(slot);
    else {
      this.indexes[this.rule[slot]!]!.delete(key);
      this.keys[slot] = undefined;
    }
    this.count--;
    // Whoever remembered this slot (Limiter.fixSlot, late sync or lease answers) sees it is gone.
    this.generation[slot] = (this.generation[slot]! + 1) >>> 0;
    if (this.dirty[slot] === 1) this.compactDirty((s) => s !== slot);
    this.next[slot] = this.freeHead;
    this.freeHead = slot;
  }

  private allocate(): number {
    if (this.freeHead !== NONE) {
      const slot = this.freeHead;
      this.freeHead = this.next[slot]!;
      return slot;
    }
    if (this.used === this.capacity) {
      if (this.capacity >= this.maxKeys) return NONE;
      this.grow(Math.min(this.maxKeys, this.capacity * 2));
    }
    return this.used++;
  }

  private linkHead(slot: number, list: number): void {
    const head = this.heads[list]!;
    this.prev[slot] = NONE;
    this.next[slot] = head;
    if (head !== NONE) this.prev[head] = slot;
    else this.tails[list] = slot;
    this.heads[list] = slot;
  }

  private unlink(slot: number, list: number): void {
    const before = this.prev[slot]!;
    const after = this.next[slot]!;
    if (before !== NONE) this.next[before] = after;
    else this.heads[list] = after;
    if (after !== NONE) this.prev[after] = before;
    else this.tails[list] = before;
  }

  private grow(capacity: number): void {
    this.windowStart = resize(this.windowStart, capacity);
    this.current = resize(this.current, capacity);
    this.previous = resize(this.previous, capacity);
    this.rule = resize(this.rule, capacity);
    this.generation = resize(this.generation, capacity);
    this.dirty = resize(this.dirty, capacity);
    this.next = resize(this.next, capacity);
    this.prev = resize(this.prev, capacity);
    this.listOf = resize(this.listOf, capacity);
    this.ip4 = resize(this.ip4, capacity);
    this.capacity = capacity;
  }
}

/**
 * Partitions may be built by concatenation or slicing, which V8 represents as ropes or slices that
 * keep their parts (or the whole request line) alive. A JSON round trip yields one flat string.
 */
export function flatCopy(key: string): string {
  return JSON.parse(JSON.stringify(key)) as string;
}
