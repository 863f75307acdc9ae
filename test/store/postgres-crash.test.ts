/**
 * PostgreSQL crashing (SIGKILL of the postmaster and its backends, then crash recovery) and
 * stalling (SIGSTOP/SIGCONT) under an open store: a window's shared count survives the crash, and
 * a statistics batch whose write timed out during the stall, then was sent again, is counted once
 * although the stalled server applies the first write too when it wakes up.
 * Runs on a server of its own: crashing the shared one would break other test files.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type StatRow, type Store } from '../../src/store/index.js';
import { createDatabase, type PostgresServer, startPostgres } from '../support/postgres.js';

const MINUTE = 60_000;

describe('PostgreSQL crash and stall', () => {
  let server: PostgresServer;
  let url: string;
  let store: Store;

  beforeAll(async () => {
    // Commits reach the WAL before they are acknowledged, as in production: what a crash may take
    // is then only what PostgreSQL itself does not keep.
    server = await startPostgres({ settings: { synchronous_commit: 'on' } });
    url = (await createDatabase(server.url)).url;
    store = await openStore(url, {
      dataDir: '/nonexistent',
      migrate: true,
      postgres: { queryTimeoutMs: 800, connectTimeoutMs: 1000, cleanupIntervalMs: 0 },
    });
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await server?.stop();
  });

  it('keeps the counts of the current windows through a crash of the server', async () => {
    const windowStart = Date.now() - (Date.now() % MINUTE);
    const delta = (n: number) => [{ key: 'crash', windowStart, windowMs: MINUTE, delta: n }];
    const id = `crash@${windowStart}`;
    expect((await store.counters.sync('a', delta(40))).totals.get(id)).toBe(40);
    expect((await store.counters.sync('b', delta(2))).totals.get(id)).toBe(42);

    await server.crashServer();
    await server.startServer();

    // The pool's connections died with the server: the first call may fail, the next reconnects.
    await store.counters.sync('a', delta(0)).catch(() => undefined);
    expect((await store.counters.sync('a', delta(1))).totals.get(id)).toBe(43);
  }, 60_000);

  it('adds a statistics batch once when its write timed out in a stall and is sent again', async () => {
    const minute = Date.now() - (Date.now() % MINUTE);
    const rows = (requests: number): StatRow[] => [
      { minute, dimension: 'total', value: '', requests, bytes: requests * 10, latencyMsSum: requests },
    ];
    await store.stats.add(rows(5), 'sender:1');

    await server.pauseServer();
    try {
      // Written to the server's socket, never answered: the client gives up after its timeout.
      await expect(store.stats.add(rows(7), 'sender:2')).rejects.toThrow(/timeout|timed out/i);
    } finally {
      await server.resumeServer();
    }
    // The retry races the original, which the server now runs too; one of them adds the rows.
    let retried = false;
    const deadline = Date.now() + 30_000;
    while (!retried) {
      retried = await store.stats.add(rows(7), 'sender:2').then(
        () => true,
        (error: unknown) => {
          if (Date.now() > deadline) throw error;
          return false;
        },
      );
    }
    await untilNoStatisticsWrite(url);
    const [total] = await store.stats.query({
      from: minute,
      to: minute + MINUTE,
      dimension: 'total',
      limit: 1,
    });
    expect(total?.requests).toBe(12);
    expect(total?.bytes).toBe(120);

    // A batch sent again later (its sender never learnt it went through) changes nothing either.
    await store.stats.add(rows(7), 'sender:2');
    const [again] = await store.stats.query({
      from: minute,
      to: minute + MINUTE,
      dimension: 'total',
      limit: 1,
    });
    expect(again?.requests).toBe(12);
  }, 60_000);
});

/** Waits until no backend is still running a statistics write (the stalled original included). */
async function untilNoStatisticsWrite(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE pid <> pg_backend_pid() AND state <> 'idle' AND query LIKE '%meli_proxy_stats_minute%'`,
      );
      if (rows[0]?.n === 0) return;
      if (Date.now() > deadline) throw new Error('a statistics write is still running after 30 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await client.end();
  }
}
