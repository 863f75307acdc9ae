/**
 * A hash from (rule, IPv4 address) to slot numbers, for tables that keep per-key state in typed
 * arrays indexed by slot (key-table.ts in every process, lease-arbiter.ts in the cluster primary).
 * The table owns the per-slot `rule` and `ip4` arrays and may replace them as it grows; the index
 * reads them through the table and stores only slot numbers, 4 bytes an entry at most half full.
 * So a million client addresses cost no string, no Map entry and no object: a per-IP rule is the
 * usual way to have that many keys. Open addressing with linear probing; deletions shift later
 * entries back instead of leaving tombstones, so churn never slows lookups down.
 */

/** The table's view of a slot's key, as the index reads it. */
export interface Ip4Slots {
  readonly rule: ArrayLike<number>;
  readonly ip4: ArrayLike<number>;
}

const NONE = -1;
const MIN_SIZE = 2048;

export class Ip4Index {
  private hash = new Int32Array(0);
  private mask = 0;
  private count = 0;

  constructor(private readonly slots: Ip4Slots) {}

  /** The slot keyed by (rule, address), or -1. */
  get(rule: number, address: number): number {
    const mask = this.mask;
    if (mask === 0) return NONE;
    const hash = this.hash;
    const { rule: rules, ip4 } = this.slots;
    for (let i = home(rule, address, mask); ; i = (i + 1) & mask) {
      const slot = hash[i]!;
      if (slot === NONE) return NONE;
      if (ip4[slot] === address && rules[slot] === rule) return slot;
    }
  }

  /** Indexes a slot whose `rule` and `ip4` the table has set (and which is not indexed yet). */
  add(slot: number): void {
    if ((this.count + 1) * 2 > this.hash.length) this.rehash(Math.max(MIN_SIZE, this.hash.length * 2));
    const hash = this.hash;
    const mask = this.mask;
    let i = home(this.slots.rule[slot]!, this.slots.ip4[slot]!, mask);
    while (hash[i] !== NONE) i = (i + 1) & mask;
    hash[i] = slot;
    this.count++;
  }

  /** Takes an indexed slot out, before the table reuses it. */
  delete(slot: number): void {
    const hash = this.hash;
    const mask = this.mask;
    const { rule: rules, ip4 } = this.slots;
    let hole = home(rules[slot]!, ip4[slot]!, mask);
    while (hash[hole] !== slot) {
      // Probing from its home reaches an empty cell first only when the slot was never added.
      if (mask === 0 || hash[hole] === NONE) throw new Error(`slot ${slot} is not in the IPv4 index`);
      hole = (hole + 1) & mask;
    }
    for (let i = (hole + 1) & mask; hash[i] !== NONE; i = (i + 1) & mask) {
      const other = hash[i]!;
      const otherHome = home(rules[other]!, ip4[other]!, mask);
      // `other` may move into the hole when its home is not in (hole, i] (cyclically).
      const between = hole <= i ? otherHome > hole && otherHome <= i : otherHome > hole || otherHome <= i;
      if (!between) {
        hash[hole] = other;
        hole = i;
      }
    }
    hash[hole] = NONE;
    this.count--;
  }

  /** Every indexed slot, in no particular order. */
  *entries(): IterableIterator<number> {
    for (const slot of this.hash) if (slot !== NONE) yield slot;
  }

  private rehash(size: number): void {
    const old = this.hash;
    const hash = new Int32Array(size).fill(NONE);
    const mask = size - 1;
    const { rule: rules, ip4 } = this.slots;
    for (const slot of old) {
      if (slot === NONE) continue;
      let i = home(rules[slot]!, ip4[slot]!, mask);
      while (hash[i] !== NONE) i = (i + 1) & mask;
      hash[i] = slot;
    }
    this.hash = hash;
    this.mask = mask;
  }
}

/** Home position of (rule, address) in a hash of size mask + 1 (a murmur3-style mix of both). */
function home(rule: number, address: number, mask: number): number {
  let h = (address ^ Math.imul(rule + 1, 0x9e3779b1)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) & mask;
}
