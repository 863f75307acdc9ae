/**
 * Shared counters in PostgreSQL. One sync is one statement, hence one round trip and one
 * transaction: it upserts the replica's heartbeat, adds the whole batch of deltas with
 * INSERT … ON CONFLICT DO UPDATE (atomic per row, whatever other replicas do concurrently), and
 * returns the new totals plus the number of live replicas.
 */
import type pg from 'pg';
import { DEFAULT_REPLICA_TUNING, type ReplicaTuning } from './counter-tuning.js';
import { mergeDeltas, totalKey } from './deltas.js';
import type { StoreLogger } from './logger.js';
import type { CounterBackend, CounterDelta, CounterSyncResult } from './types.js';

export interface CounterTuning extends ReplicaTuning {
  /** How often expired windows and long-gone replicas are deleted. Default 60 s; 0 disables. */
  cleanupIntervalMs: number;
}

export const DEFAULT_COUNTER_TUNING: CounterTuning = { ...DEFAULT_REPLICA_TUNING, cleanupIntervalMs: 60_000 };

// Rows are upserted in key order so concurrent batches lock rows in the same order and cannot
// deadlock each other. A window's row outlives the window by one window length, so a sliding
// window can still read the previous one. The replica count cannot see this statement's own
// heartbeat (same snapshot), so it counts the others and adds one.
const SYNC_SQL = `
WITH heartbeat AS (
  INSERT INTO meli_proxy_replicas AS r (replica_id, seen_at) VALUES ($1, now())
  ON CONFLICT (replica_id) DO UPDATE SET seen_at = excluded.seen_at
), batch AS (
  INSERT INTO meli_proxy_counters AS c (key, window_start, window_ms, n, expires_at)
  SELECT d.key, d.window_start, d.window_ms, d.delta,
         to_timestamp((d.window_start + 2 * d.window_ms::bigint) / 1000.0)
    FROM unnest($2::text[], $3::bigint[], $4::integer[], $5::bigint[]) AS d(key, window_start, window_ms, delta)
   ORDER BY d.key, d.window_start
  ON CONFLICT (key, window_start) DO UPDATE SET n = c.n + excluded.n
  RETURNING c.key, c.window_start, c.n
)
SELECT key, window_start::float8 AS window_start, n::float8 AS n FROM batch
UNION ALL
SELECT NULL, NULL, (count(*) + 1)::float8
  FROM meli_proxy_replicas
 WHERE replica_id <> $1 AND seen_at > now() - make_interval(secs => $6::float8 / 1000)`;

// SKIP LOCKED and a LIMIT: cleanup never waits on rows a sync is updating, and never holds a
// long lock; whatever is left goes next time.
const CLEANUP_SQL = `
WITH doomed AS (
  SELECT key, window_start FROM meli_proxy_counters
   WHERE expires_at < now()
   LIMIT 10000
     FOR UPDATE SKIP LOCKED
), deleted AS (
  DELETE FROM meli_proxy_counters c USING doomed d
   WHERE c.key = d.key AND c.window_start = d.window_start
  RETURNING 1
), gone AS (
  DELETE FROM meli_proxy_replicas WHERE seen_at < now() - interval '1 hour'
  RETURNING 1
)
SELECT (SELECT count(*) FROM deleted)::int AS counters, (SELECT count(*) FROM gone)::int AS replicas`;

interface SyncRow {
  key: string | null;
  window_start: number | null;
  n: number;
}

export class PostgresCounterBackend implements CounterBackend {
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly tuning: CounterTuning,
    private readonly logger: StoreLogger,
  ) {
    if (tuning.cleanupIntervalMs > 0) {
      this.timer = setInterval(() => {
        this.cleanup().catch((error: unknown) => {
          this.logger.warn({ err: error }, 'could not delete expired rate-limit windows; will retry');
        });
      }, tuning.cleanupIntervalMs);
      this.timer.unref();
    }
  }

  async sync(replicaId: string, deltas: readonly CounterDelta[]): Promise<CounterSyncResult> {
    if (typeof replicaId !== 'string' || replicaId === '')
      throw new TypeError('replicaId must be a non-empty string');
    const merged = [...mergeDeltas(deltas).values()];
    const { rows } = await this.pool.query<SyncRow>(SYNC_SQL, [
      replicaId,
      merged.map((d) => d.key),
      merged.map((d) => d.windowStart),
      merged.map((d) => d.windowMs),
      merged.map((d) => d.delta),
      this.tuning.replicaTtlMs,
    ]);
    const totals = new Map<string, number>();
    let replicas = 1;
    for (const row of rows) {
      if (row.key === null || row.window_start === null) replicas = row.n;
      else totals.set(totalKey(row.key, row.window_start), row.n);
    }
    return { totals, replicas };
  }

  /** Deletes expired windows (a bounded batch) and replicas unseen for an hour. */
  async cleanup(): Promise<{ counters: number; replicas: number }> {
    const { rows } = await this.pool.query<{ counters: number; replicas: number }>(CLEANUP_SQL);
    return rows[0] ?? { counters: 0, replicas: 0 };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
