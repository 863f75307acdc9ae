/**
 * The KeyTable's IPv4 index (counters of `by: [ip]` rules keyed by the address as a number): every
 * key stays reachable through inserts, lookups and expiries (backward-shift deletion), slots are
 * reused, and the partition text is the canonical address.
 */
import { describe, expect, it } from 'vitest';
import { KeyTable } from '../../src/limits/key-table.js';

/** Deterministic pseudo-random numbers in [0, 1). */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

describe('KeyTable IPv4 index', () => {
  it('keeps every address reachable through churn, and agrees with its own size', () => {
    for (const maxKeys of [50, 3000]) {
      const table = new KeyTable(maxKeys);
      const next = random(maxKeys);
      let now = 1_000_000;
      for (let step = 0; step < 60_000; step++) {
        now += next() < 0.01 ? 500 : 1;
        const rule = Math.floor(next() * 3);
        const address = (Math.floor(next() * 4000) * 2654435761) >>> 0;
        const slot = table.getIp4(rule, address);
        if (slot >= 0) {
          expect(table.ip4[slot]).toBe(address);
          expect(table.rule[slot]).toBe(rule);
          table.windowStart[slot] = now - (now % 1000);
          table.touch(slot);
        } else {
          const inserted = table.insertIp4(rule, address, 0, now - (now % 1000), now);
          if (inserted >= 0) expect(table.getIp4(rule, address)).toBe(inserted);
        }
        if (step % 997 === 0) {
          if (step % 20_000 === 0) table.sweep(now, 1_000_000);
          let reachable = 0;
          for (let rule = 0; rule < 3; rule++) {
            for (const [partition, slot] of table.entries(rule)) {
              const words = partition.split('.').map(Number);
              const number = (((words[0]! << 24) | (words[1]! << 16) | (words[2]! << 8) | words[3]!) >>>
                0) as number;
              expect(table.getIp4(rule, number)).toBe(slot);
              reachable++;
            }
          }
          expect(reachable).toBe(table.size);
        }
      }
    }
  });

  it('shows the address as text, and keeps string partitions apart', () => {
    const table = new KeyTable(10);
    const address = ((10 << 24) | (1 << 8) | 5) >>> 0;
    const slot = table.insertIp4(0, address, 0, 0, 0);
    expect(table.partition(slot)).toBe('10.0.1.5');
    expect(table.getIp4(1, address)).toBe(-1);
    const text = table.insert(0, '2001:db8::1', 0, 0, 0);
    expect(table.partition(text)).toBe('2001:db8::1');
    expect(table.get(0, '2001:db8::1')).toBe(text);
    expect([...table.entries(0)].sort()).toEqual([
      ['10.0.1.5', slot],
      ['2001:db8::1', text],
    ]);
  });
});
