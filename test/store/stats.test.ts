/** The StatsStore contract, on every backend. */
import { appendFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type StatRow, type Store } from '../../src/store/index.js';
import { allBackends } from '../support/backends.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);

function row(
  minuteOffset: number,
  dimension: StatRow['dimension'],
  value: string,
  requests: number,
): StatRow {
  return {
    minute: T0 + minuteOffset * MINUTE,
    dimension,
    value,
    requests,
    bytes: requests * 100,
    latencyMsSum: requests * 2.5,
  };
}

describe.each(allBackends())('statistics on $name', (backend) => {
  let store: Store;

  beforeAll(async () => {
    store = await backend.open();
  });
  afterAll(async () => {
    await store?.close();
    await backend.cleanup();
  });

  it('adds rows up per minute, dimension and value, and groups a range by value', async () => {
    await store.stats.add([
      row(0, 'route', '/items/:id', 3),
      row(0, 'route', '/items/:id', 2),
      row(0, 'route', '/sites/:site', 1),
    ]);
    await store.stats.add([
      row(1, 'route', '/items/:id', 4),
      row(1, 'status', '2xx', 9),
      row(5, 'route', '/sites/:site', 50),
    ]);

    const rows = await store.stats.query({ from: T0, to: T0 + 2 * MINUTE, dimension: 'route', limit: 10 });
    expect(rows.map((r) => [r.value, r.requests, r.bytes, r.latencyMsSum])).toEqual([
      ['/items/:id', 9, 900, 22.5],
      ['/sites/:site', 1, 100, 2.5],
    ]);
    const later = await store.stats.query({
      from: T0 + 30_000,
      to: T0 + 10 * MINUTE,
      dimension: 'route',
      limit: 1,
    });
    // `from` rounds down to its minute, so minute 0 counts too.
    expect(later.map((r) => [r.value, r.requests])).toEqual([['/sites/:site', 51]]);
    const statuses = await store.stats.query({
      from: T0,
      to: T0 + 10 * MINUTE,
      dimension: 'status',
      limit: 10,
    });
    expect(statuses.map((r) => [r.value, r.requests])).toEqual([['2xx', 9]]);
  });

  it('keeps rows by account, written plainly or as a batch, and reads them back by account', async () => {
    await store.stats.add([row(3, 'account', '123456789', 5), row(3, 'account', '222333444', 2)]);
    await store.stats.add([row(4, 'account', '222333444', 6)], 'accounts-test:1');
    await store.stats.add([row(4, 'account', '222333444', 6)], 'accounts-test:1');
    const accounts = await store.stats.query({
      from: T0 + 3 * MINUTE,
      to: T0 + 5 * MINUTE,
      dimension: 'account',
      limit: 10,
    });
    expect(accounts.map((r) => [r.value, r.requests, r.bytes])).toEqual([
      ['222333444', 8, 800],
      ['123456789', 5, 500],
    ]);
  });

  it('prunes minutes before a cut-off', async () => {
    await store.stats.prune(T0 + 2 * MINUTE);
    const rows = await store.stats.query({
      from: T0 - MINUTE,
      to: T0 + 10 * MINUTE,
      dimension: 'route',
      limit: 10,
    });
    expect(rows.map((r) => [r.value, r.requests])).toEqual([['/sites/:site', 50]]);
  });
});

describe('statistics on the embedded store', () => {
  it('survive a restart, in private files, and a torn last line costs only that line', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'meli-stats-'));
    try {
      const first = await openStore('embedded', { dataDir: dir });
      await first.stats.add([
        row(0, 'ip', '152.152.152.152', 7),
        row(0, 'total', '', 7),
        row(0, 'account', '123456789', 4),
      ]);
      await first.close();
      const dayFile = path.join(dir, 'stats', '2026-11-27.jsonl');
      expect((await stat(dayFile)).mode & 0o777).toBe(0o600);
      await appendFile(dayFile, '{"minute":1,"dimen');

      const reopened = await openStore('embedded', { dataDir: dir });
      const ips = await reopened.stats.query({ from: T0, to: T0 + MINUTE, dimension: 'ip', limit: 5 });
      expect(ips.map((r) => [r.value, r.requests])).toEqual([['152.152.152.152', 7]]);
      const accounts = await reopened.stats.query({
        from: T0,
        to: T0 + MINUTE,
        dimension: 'account',
        limit: 5,
      });
      expect(accounts.map((r) => [r.value, r.requests])).toEqual([['123456789', 4]]);
      await reopened.stats.prune(T0 + 2 * 86_400_000);
      expect(await readdir(path.join(dir, 'stats'))).toEqual([]);
      await reopened.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

it('opens stats on a fresh memory store', async () => {
  const store = await openStore('memory', { dataDir: '/nonexistent' });
  expect(await store.stats.query({ from: 0, to: Date.now(), dimension: 'total', limit: 1 })).toEqual([]);
  await store.close();
});
