import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { HeavyHitters } from '../../src/server/stats/heavy-hitters.js';
import { LATENCY_BUCKETS, quantileMs } from '../../src/server/stats/latency-buckets.js';
import { StatsRecorder } from '../../src/server/stats/recorder.js';
import { openStore, type StatRow, type StatsStore } from '../../src/store/index.js';

const silent = createLogger('silent');
const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);

describe('heavy hitters', () => {
  it('finds the heavy keys among many light ones with bounded memory', () => {
    const sketch = new HeavyHitters(100);
    for (let i = 0; i < 50_000; i++) {
      sketch.add(`light-${i}`, 1, 1);
      if (i % 10 === 0) sketch.add('10.0.0.1', 1, 1);
      if (i % 20 === 0) sketch.add('10.0.0.2', 1, 1);
    }
    expect(sketch.size).toBe(100);
    const top = sketch.top(2);
    expect(top.map((entry) => entry.key)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(top[0]!.requests - top[0]!.error).toBeLessThanOrEqual(5000);
    expect(top[0]!.requests).toBeGreaterThanOrEqual(5000);
  });
});

describe('latency quantiles', () => {
  it('interpolates inside buckets', () => {
    const counts = new Float64Array(LATENCY_BUCKETS);
    counts[4] = 100; // (5 ms, 10 ms]
    expect(quantileMs(counts, 0, 0.5)).toBeCloseTo(7.5, 5);
    expect(quantileMs(counts, 0, 0.99)).toBeCloseTo(9.95, 5);
    expect(quantileMs(new Float64Array(LATENCY_BUCKETS), 0, 0.5)).toBe(0);
  });
});

function recorder(store: StatsStore, clock: () => number): StatsRecorder {
  const labels = ['/other', '/', '/items/:id', '/sites/:site/search'];
  return new StatsRecorder({
    store,
    logger: silent,
    routeCapacity: 8,
    routeLabel: (id) => labels[id] ?? '/other',
    clock,
  });
}

describe('statistics recorder', () => {
  it('reports what was recorded, including the current unflushed minute, grouped every way', async () => {
    const store = await openStore('memory', { dataDir: '/nonexistent' });
    let now = T0 + 1000;
    const stats = recorder(store.stats, () => now);
    for (let i = 0; i < 30; i++) stats.record(2, 200, 100, 4, '152.152.152.152');
    for (let i = 0; i < 10; i++) stats.record(3, 429, 50, 1, '10.0.0.7');
    stats.record(2, 502, 0, 30, '10.0.0.7');
    for (let i = 0; i < 10; i++) stats.recordRule('ip-items');
    now += 61_000;
    stats.record(3, 200, 10, 2, '10.0.0.8');

    const routes = await stats.report(T0, now + 1, 'route', 10);
    expect(routes.rows).toEqual([
      { key: '/items/:id', requests: 31, bytes: 3000, latencyMsAvg: 4.84 },
      { key: '/sites/:site/search', requests: 11, bytes: 510, latencyMsAvg: 1.09 },
    ]);
    expect(routes.totals).toMatchObject({ requests: 42, bytes: 3510, rateLimited: 10, errors: 1 });
    const statuses = await stats.report(T0, now + 1, 'status', 10);
    expect(statuses.rows.map((row) => [row.key, row.requests])).toEqual([
      ['2xx', 31],
      ['429', 10],
      ['5xx', 1],
    ]);
    const ips = await stats.report(T0, now + 1, 'ip', 1);
    expect(ips.rows.map((row) => [row.key, row.requests])).toEqual([['152.152.152.152', 30]]);
    const rules = await stats.report(T0, now + 1, 'rule', 10);
    expect(rules.rows.map((row) => [row.key, row.requests])).toEqual([['ip-items', 10]]);
    const firstMinute = await stats.report(T0, T0 + 60_000, 'route', 10);
    expect(firstMinute.totals.requests).toBe(41);
    await store.close();
  });

  it('counts requests by the account whose token was injected, named by nickname when held', async () => {
    const store = await openStore('memory', { dataDir: '/nonexistent' });
    let now = T0 + 1000;
    const stats = recorder(store.stats, () => now);
    stats.nameAccounts((id) => (id === '123456789' ? 'TIENDA_SUR' : undefined));
    for (let i = 0; i < 5; i++) stats.record(2, 200, 100, 4, '10.0.0.1', '123456789');
    for (let i = 0; i < 3; i++) stats.record(2, 200, 10, 2, '10.0.0.1', '222333444');
    stats.record(2, 200, 10, 2, '10.0.0.1'); // no injected token: in no account's row
    await stats.flush();
    now += 61_000;
    stats.record(3, 404, 10, 2, '10.0.0.2', '222333444');
    const accounts = await stats.report(T0, now + 1, 'account', 10);
    expect(accounts.rows).toEqual([
      { key: '123456789', name: 'TIENDA_SUR', requests: 5, bytes: 500, latencyMsAvg: 4 },
      { key: '222333444', requests: 4, bytes: 40, latencyMsAvg: 2 },
    ]);
    expect(accounts.totals.requests).toBe(10);
    await store.close();
  });

  it('writes at most a bounded number of account rows per minute and flush, the busiest first', async () => {
    const written: StatRow[] = [];
    const store: StatsStore = {
      add: async (rows) => {
        written.push(...rows);
      },
      query: async () => [],
      prune: async () => 0,
    };
    const stats = recorder(store, () => T0);
    for (let n = 0; n < 3000; n++) stats.record(2, 200, 1, 1, '10.0.0.1', `acct-${n}`);
    for (let i = 0; i < 50; i++) stats.record(2, 200, 1, 1, '10.0.0.1', 'busy');
    await stats.flush();
    const accountRows = written.filter((row) => row.dimension === 'account');
    expect(accountRows.length).toBe(1000);
    expect(accountRows[0]).toMatchObject({ value: 'busy' });
    expect(accountRows[0]!.requests).toBeGreaterThanOrEqual(50);
  });

  it('keeps rows while the store fails and writes them once it answers again', async () => {
    const memory = await openStore('memory', { dataDir: '/nonexistent' });
    let failing = true;
    const flaky: StatsStore = {
      add: (rows: readonly StatRow[]) =>
        failing ? Promise.reject(new Error('store down')) : memory.stats.add(rows),
      query: (query) => memory.stats.query(query),
      prune: (before) => memory.stats.prune(before),
    };
    const now = T0 + 5000;
    const stats = recorder(flaky, () => now);
    for (let i = 0; i < 25; i++) stats.record(2, 200, 1, 1, '10.0.0.1');
    await stats.flush();
    expect(await memory.stats.query({ from: T0, to: T0 + 60_000, dimension: 'total', limit: 1 })).toEqual([]);
    for (let i = 0; i < 5; i++) stats.record(2, 200, 1, 1, '10.0.0.1');
    failing = false;
    await stats.stop();
    const [total] = await memory.stats.query({ from: T0, to: T0 + 60_000, dimension: 'total', limit: 1 });
    expect(total?.requests).toBe(30);
    await memory.close();
  });

  it('keeps trying the final flush while the store is still coming back, then says what it gave up', async () => {
    const memory = await openStore('memory', { dataDir: '/nonexistent' });
    let failuresLeft = 3;
    const reconnecting: StatsStore = {
      add: (rows: readonly StatRow[]) =>
        failuresLeft-- > 0 ? Promise.reject(new Error('client offline')) : memory.stats.add(rows),
      query: (query) => memory.stats.query(query),
      prune: (before) => memory.stats.prune(before),
    };
    const stats = recorder(reconnecting, () => T0 + 5000);
    for (let i = 0; i < 12; i++) stats.record(2, 200, 1, 1, '10.0.0.1');
    await stats.stop();
    const [total] = await memory.stats.query({ from: T0, to: T0 + 60_000, dimension: 'total', limit: 1 });
    expect(total?.requests).toBe(12);

    const lines: string[] = [];
    const down: StatsStore = { ...reconnecting, add: () => Promise.reject(new Error('store down')) };
    const gone = new StatsRecorder({
      store: down,
      logger: createLogger('error', { write: (line: string) => void lines.push(line) }),
      routeCapacity: 4,
      routeLabel: (id) => String(id),
      clock: () => T0 + 5000,
    });
    gone.record(2, 200, 1, 1, '10.0.0.1');
    await gone.stop(300);
    expect(lines.some((line) => line.includes('statistics not written before shutdown'))).toBe(true);
    await memory.close();
  });

  it('shows the last 60 seconds second by second', async () => {
    const store = await openStore('memory', { dataDir: '/nonexistent' });
    let now = T0;
    const stats = recorder(store.stats, () => now);
    for (let i = 0; i < 5; i++) stats.record(2, 200, 1, 3, '10.0.0.1');
    now += 1000;
    stats.record(3, 429, 1, 1, '10.0.0.2');
    stats.recordRule('per-ip');
    stats.record(3, 503, 1, 1, '10.0.0.2');
    const live = stats.liveSnapshot();
    expect(live.seconds).toHaveLength(60);
    expect(live.seconds.at(-2)).toMatchObject({ requests: 5, rateLimited: 0, errors: 0 });
    expect(live.seconds.at(-1)).toMatchObject({ requests: 2, rateLimited: 1, errors: 1 });
    expect(live.seconds.at(-2)!.p50Ms).toBeGreaterThan(2);
    expect(live.topRoutes[0]).toEqual({ key: '/items/:id', requests: 5 });
    expect(live.topIps[0]).toEqual({ key: '10.0.0.1', requests: 5 });
    expect(live.topRules).toEqual([{ key: 'per-ip', requests: 1 }]);
    now += 120_000;
    expect(stats.liveSnapshot().seconds.every((second) => second.requests === 0)).toBe(true);
    await store.close();
  });
});
