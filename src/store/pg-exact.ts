/**
 * Exact shared counting in PostgreSQL: one call of meli_proxy_take_exact (migration 5) per request,
 * hence one round trip and one transaction, on the rows the counter sync adds deltas to.
 */
import type pg from 'pg';
import type { ExactCounter, ExactCounterStore, ExactTakeResult } from './types.js';

interface TakeRow {
  ok_all: boolean;
  prev_n: number;
  cur_n: number;
}

const TAKE = {
  // A named statement is parsed and planned once per connection.
  name: 'meli_proxy_take_exact',
  text: `SELECT ok_all, prev_n::float8 AS prev_n, cur_n::float8 AS cur_n
           FROM meli_proxy_take_exact($1::text[], $2::bigint[], $3::integer[], $4::float8[], $5::float8[])`,
};

export class PostgresExactCounters implements ExactCounterStore {
  constructor(private readonly pool: pg.Pool) {}

  async take(counters: readonly ExactCounter[]): Promise<ExactTakeResult> {
    const { rows } = await this.pool.query<TakeRow>({
      ...TAKE,
      values: [
        counters.map((c) => c.key),
        counters.map((c) => c.windowStart),
        counters.map((c) => c.windowMs),
        counters.map((c) => c.leftMs),
        counters.map((c) => c.cap),
      ],
    });
    if (rows.length !== counters.length)
      throw new Error(
        `unexpected answer from meli_proxy_take_exact: ${rows.length} rows for ${counters.length}`,
      );
    return {
      admitted: rows.every((row) => row.ok_all),
      previous: rows.map((row) => row.prev_n),
      current: rows.map((row) => row.cur_n),
    };
  }
}
