import type pg from 'pg';
import { withTimeout } from './pg-pool.js';
import { mergeRows, minuteOf } from './stats-rows.js';
import type { StatDimension, StatRow, StatsQuery, StatsStore } from './types.js';

const ADD_ROWS = `INSERT INTO meli_proxy_stats_minute AS t (minute, dimension, value, requests, bytes, latency_ms_sum)
SELECT to_timestamp(m / 1000.0), d, v, r, b, l
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::double precision[]) AS x(m, d, v, r, b, l)
ORDER BY 1, 2, 3
ON CONFLICT (minute, dimension, value) DO UPDATE SET
  requests = t.requests + excluded.requests,
  bytes = t.bytes + excluded.bytes,
  latency_ms_sum = t.latency_ms_sum + excluded.latency_ms_sum`;

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

  async add(rows: readonly StatRow[]): Promise<void> {
    if (rows.length === 0) return;
    const merged = mergeRows(rows);
    await withTimeout(
      this.pool.query(ADD_ROWS, [
        merged.map((row) => row.minute),
        merged.map((row) => row.dimension),
        merged.map((row) => row.value),
        merged.map((row) => Math.round(row.requests)),
        merged.map((row) => Math.round(row.bytes)),
        merged.map((row) => row.latencyMsSum),
      ]),
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
    return result.rowCount ?? 0;
  }
}
