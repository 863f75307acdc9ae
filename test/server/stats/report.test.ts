/**
 * What a statistics report counts: one row per client whatever the spelling of its address, and a
 * range that says which whole minutes it counted when the range asked was not whole minutes.
 * Also: a batch whose write failed is sent again under the same id, and new counts wait for the
 * next batch, so a store that applied the first write after all counts each request once.
 */
import { describe, expect, it } from 'vitest';
import { formatStats } from '../../../src/cli/stats.js';
import { createLogger } from '../../../src/logger.js';
import { countedRange, StatsRecorder } from '../../../src/server/stats/recorder.js';
import { openStore, type StatRow, type StatsStore } from '../../../src/store/index.js';

const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
const MINUTE = 60_000;

function recorder(store: StatsStore, clock: () => number): StatsRecorder {
  return new StatsRecorder({
    store,
    logger: createLogger('silent'),
    routeCapacity: 4,
    routeLabel: (id) => ['/other', '/', '/items/:id', '/sites/:site'][id] ?? '/other',
    clock,
  });
}

describe('statistics report', () => {
  it('counts every spelling of one client address as one row', async () => {
    const store = await openStore('memory', { dataDir: '/nonexistent' });
    const stats = recorder(store.stats, () => T0 + 1000);
    stats.record(2, 200, 10, 1, '152.152.152.152');
    stats.record(2, 200, 10, 1, '::ffff:152.152.152.152');
    stats.record(2, 200, 10, 1, '::ffff:9898:9898');
    stats.record(2, 200, 10, 1, '2001:db8:0:0:0:0:0:7');
    stats.record(2, 200, 10, 1, '2001:db8::7');
    const report = await stats.report(T0, T0 + MINUTE, 'ip', 10);
    expect(report.rows.map((row) => [row.key, row.requests])).toEqual([
      ['152.152.152.152', 3],
      ['2001:db8::7', 2],
    ]);
    expect(stats.liveSnapshot().topIps).toEqual([
      { key: '152.152.152.152', requests: 3 },
      { key: '2001:db8::7', requests: 2 },
    ]);
    await store.close();
  });

  it('says which whole minutes it counted for a range that is not whole minutes', async () => {
    const store = await openStore('memory', { dataDir: '/nonexistent' });
    let now = T0 + 10_000;
    const stats = recorder(store.stats, () => now);
    stats.record(2, 200, 10, 1, '10.0.0.1');
    now = T0 + 50_000;
    stats.record(2, 200, 10, 1, '10.0.0.1');
    now = T0 + 5 * MINUTE;

    const half = await stats.report(T0 + 30_000, T0 + 45_000, 'route', 10);
    expect(half.totals.requests).toBe(2);
    expect(half.counted).toEqual({
      from: new Date(T0).toISOString(),
      to: new Date(T0 + MINUTE).toISOString(),
    });
    const printed = formatStats(half);
    expect(printed[0]).toContain('2026-11-27 12:00:30Z → 2026-11-27 12:00:45Z (15 s)');
    expect(printed.at(-1)).toBe(
      'Counted: 2026-11-27 12:00:00Z → 2026-11-27 12:01:00Z (60 s): statistics are kept per whole minute.',
    );

    const whole = await stats.report(T0, T0 + MINUTE, 'route', 10);
    expect(whole.counted).toBeUndefined();
    expect(formatStats(whole).at(-1)).toMatch(/^Total requests: 2 /);
    await store.close();
  });

  it('ends the counted range at the end asked when that lies in the current minute', () => {
    expect(countedRange(T0 + 5000, T0 + 20_000, T0 + 30_000)).toEqual({ from: T0, to: T0 + 20_000 });
    expect(countedRange(T0 + 5000, T0 + 20_000, T0 + MINUTE + 1)).toEqual({ from: T0, to: T0 + MINUTE });
    expect(countedRange(T0, T0 + 2 * MINUTE, T0 + 10 * MINUTE)).toEqual({ from: T0, to: T0 + 2 * MINUTE });
  });

  it('sends a failed batch again under the same id, and new counts in the next batch', async () => {
    const memory = await openStore('memory', { dataDir: '/nonexistent' });
    const calls: Array<{ id: string | undefined; requests: number }> = [];
    let failNext = true;
    // A store that applies the write, then fails the call: what a timeout during a stall looks like.
    const stalling: StatsStore = {
      async add(rows: readonly StatRow[], batchId?: string) {
        calls.push({ id: batchId, requests: rows.find((row) => row.dimension === 'total')?.requests ?? 0 });
        await memory.stats.add(rows, batchId);
        if (failNext) {
          failNext = false;
          throw new Error('writing statistics timed out');
        }
      },
      query: (query) => memory.stats.query(query),
      prune: (before) => memory.stats.prune(before),
    };
    const stats = recorder(stalling, () => T0 + 1000);
    for (let i = 0; i < 4; i++) stats.record(2, 200, 1, 1, '10.0.0.1');
    await stats.flush();
    for (let i = 0; i < 3; i++) stats.record(2, 200, 1, 1, '10.0.0.1');
    await stats.flush();
    expect(calls.map((call) => call.requests)).toEqual([4, 4, 3]);
    expect(calls[1]!.id).toBe(calls[0]!.id);
    expect(calls[2]!.id).not.toBe(calls[0]!.id);
    const [total] = await memory.stats.query({ from: T0, to: T0 + MINUTE, dimension: 'total', limit: 1 });
    expect(total?.requests).toBe(7);
    await memory.close();
  });
});
