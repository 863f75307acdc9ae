import type pg from 'pg';
import { BATCH_MEMORY_MS } from './seen-batches.js';
import { mergeRows, minuteOf } from './stats-rows.js';
import { withTimeout } from './timeout.js';
import type { StatDimension, StatRow, StatsQuery, StatsStore } from './types.js';

const ROWS = `SELECT to_timestamp(m / 1000.0), d, v, r, b, l
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::double precision[]) AS x(m, d, v, r, b, l)`;

const ADD_UP = `ORDER BY 1, 2, 3
ON CONFLICT (minute, dimension, value) DO UPDATE SET
  requests = t.requests + excluded.requests,
  bytes = t.bytes + excluded.bytes,
  latency_ms_sum = t.latency_ms_sum + excluded.latency_ms_sum`;

const INSERT =
  'INSERT INTO meli_proxy_stats_minute AS t (minute, dimension, value, requests, bytes, latency_ms_sum)';

const ADD_ROWS = `${INSERT}\n${ROWS}\n${ADD_UP}`;

// One statement, one transaction: the batch id is claimed and the rows added together, or
// neither. A second statement with the same id (a retry racing a stalled original) waits for the
// first to commit, then claims nothing and adds nothing.
const ADD_BATCH = `WITH claimed AS (
  INSERT INTO meli_proxy_stats_batches (batch_id) VALUES ($7) ON CONFLICT DO NOTHING RETURNING 1
)
${INSERT}
${ROWS}
WHERE EXISTS (SELECT 1 FROM claimed)
${ADD_UP}`;

/** Batch ids are needed only until their sender learns that a write went through. */
const FORGET_BATCHES = `DELETE FROM meli_proxy_stats_batches WHERE applied_at < now() - make_interval(secs => $1::float8 / 1000)`;

const QUERY_ROWS = `SELECT value, sum(requests)::float8 AS requests, sum(bytes)::float8 AS bytes,
  sum(latency_ms_sum) AS latency_ms_sum
FROM meli_proxy_stats_minute
WHERE dimension = $1 AND minute >= to_timestamp($2 / 1000.0) AND minute < to_timestamp($3 / 1000.0)
GROUP BY value ORDER BY 2 DESC, value LIMIT $4`;

interface QueriedRow {
  value: string;
  requests: number;
  bytes: number;
  latency_ms_sum: number;
}

/** Per-minute statistics in `meli_proxy_stats_minute` (created by `meli-proxy migrate`). */
export class PostgresStatsStore implements StatsStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly queryTimeoutMs: number,
  ) {}

  async add(rows: readonly StatRow[], batchId?: string): Promise<void> {
    if (rows.length === 0) return;
    const merged = mergeRows(rows);
    const columns = [
      merged.map((row) => row.minute),
      merged.map((row) => row.dimension),
      merged.map((row) => row.value),
      merged.map((row) => Math.round(row.requests)),
      merged.map((row) => Math.round(row.bytes)),
      merged.map((row) => row.latencyMsSum),
    ];
    await withTimeout(
      batchId === undefined
        ? this.pool.query(ADD_ROWS, columns)
        : this.pool.query(ADD_BATCH, [...columns, batchId]),
      this.queryTimeoutMs,
      'writing statistics timed out',
    );
  }

  async query(query: StatsQuery): Promise<StatRow[]> {
    const from = minuteOf(query.from);
    const result = await withTimeout(
      this.pool.query<QueriedRow>(QUERY_ROWS, [query.dimension, from, query.to, query.limit]),
      this.queryTimeoutMs,
      'reading statistics timed out',
    );
    return result.rows.map((row) => ({
      minute: from,
      dimension: query.dimension as StatDimension,
      value: row.value,
      requests: Number(row.requests),
      bytes: Number(row.bytes),
      latencyMsSum: Number(row.latency_ms_sum),
    }));
  }

  async prune(before: number): Promise<number> {
    const result = await withTimeout(
      this.pool.query('DELETE FROM meli_proxy_stats_minute WHERE minute < to_timestamp($1 / 1000.0)', [
        before,
      ]),
      this.queryTimeoutMs,
      'pruning statistics timed out',
    );
    await withTimeout(
      this.pool.query(FORGET_BATCHES, [BATCH_MEMORY_MS]),
      this.queryTimeoutMs,
      'pruning statistics batch ids timed out',
    );
    return result.rowCount ?? 0;
  }
}
