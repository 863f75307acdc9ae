/**
 * The PostgreSQL schema, as an ordered list of migrations. Migrations own every table, so the
 * role the proxy runs as needs only SELECT/INSERT/UPDATE/DELETE, and `migrate` is an explicit step
 * (`meli-proxy migrate`, or `--migrate` at start). Applied migrations are recorded in
 * meli_proxy_migrations; a session advisory lock makes concurrent runs (several replicas starting
 * with --migrate) apply each migration exactly once.
 */
import type pg from 'pg';
import { errorMessage } from './errors.js';

export interface Migration {
  /** Strictly increasing; never reused or renumbered once released. */
  readonly id: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: 'documents',
    // keyv's key/value layout (as @keyv/postgres has it), with `text`
    // keys instead of its varchar(255). TTLs live inside the serialized value, as keyv does.
    sql: `CREATE TABLE meli_proxy_documents (
      key text PRIMARY KEY,
      value text NOT NULL
    )`,
  },
  {
    id: 2,
    name: 'counters',
    // Created UNLOGGED, made logged by migration 5 (a crash emptied it).
    sql: `CREATE UNLOGGED TABLE meli_proxy_counters (
      key text NOT NULL,
      window_start bigint NOT NULL,
      window_ms integer NOT NULL CHECK (window_ms > 0),
      n bigint NOT NULL DEFAULT 0,
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (key, window_start)
    );
    CREATE INDEX meli_proxy_counters_expires_at ON meli_proxy_counters (expires_at)`,
  },
  {
    id: 3,
    name: 'replicas',
    sql: `CREATE UNLOGGED TABLE meli_proxy_replicas (
      replica_id text PRIMARY KEY,
      seen_at timestamptz NOT NULL
    )`,
  },
  {
    id: 4,
    name: 'stats_minute',
    sql: `CREATE TABLE meli_proxy_stats_minute (
      minute timestamptz NOT NULL,
      dimension text NOT NULL CHECK (dimension IN ('total', 'route', 'status', 'rule', 'ip')),
      value text NOT NULL,
      requests bigint NOT NULL DEFAULT 0,
      bytes bigint NOT NULL DEFAULT 0,
      latency_ms_sum double precision NOT NULL DEFAULT 0,
      PRIMARY KEY (minute, dimension, value)
    );
    CREATE INDEX meli_proxy_stats_minute_dimension ON meli_proxy_stats_minute (dimension, minute)`,
  },
  {
    id: 5,
    name: 'durable_counters',
    // PostgreSQL empties UNLOGGED tables in crash recovery and never replicates them: a crash or a
    // failover would forget every window's count, and the cluster would admit a second window's
    // worth. Logged, a window survives whatever the committed data survives.
    sql: `ALTER TABLE meli_proxy_counters SET LOGGED;
    ALTER TABLE meli_proxy_replicas SET LOGGED`,
  },
  {
    id: 6,
    name: 'stats_batches',
    // The statistics batches already added, by id: a batch written again (its first write timed
    // out on the client but was applied by the server) is recognised and not added twice.
    sql: `CREATE TABLE meli_proxy_stats_batches (
      batch_id text PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX meli_proxy_stats_batches_applied_at ON meli_proxy_stats_batches (applied_at)`,
  },
  {
    id: 7,
    name: 'take_exact',
    // Exact shared counting (src/store/pg-exact.ts): one call judges a request's counters by their
    // sliding estimates and counts it in all or none. The rows are locked in key order, as the
    // sync's upserts lock them, so the two never deadlock; each statement inside sees the rows as
    // committed when it runs (READ COMMITTED), so the check and the increment agree.
    sql: `CREATE FUNCTION meli_proxy_take_exact(
      p_keys text[], p_starts bigint[], p_window_ms integer[], p_left_ms double precision[],
      p_caps double precision[]
    ) RETURNS TABLE (ok_all boolean, prev_n bigint, cur_n bigint)
    LANGUAGE plpgsql AS $fn$
    DECLARE
      v_count integer := coalesce(array_length(p_keys, 1), 0);
      v_prev bigint[] := array_fill(0::bigint, ARRAY[v_count]);
      v_cur bigint[] := array_fill(0::bigint, ARRAY[v_count]);
      v_p bigint;
      v_c bigint;
      v_ok boolean := true;
      i integer;
    BEGIN
      INSERT INTO meli_proxy_counters AS c (key, window_start, window_ms, n, expires_at)
      SELECT d.k, d.s, d.w, 0, to_timestamp((d.s + 2 * d.w::bigint) / 1000.0)
        FROM unnest(p_keys, p_starts, p_window_ms) AS d(k, s, w)
       ORDER BY d.k, d.s
      ON CONFLICT (key, window_start) DO NOTHING;
      PERFORM 1 FROM meli_proxy_counters c
        JOIN unnest(p_keys, p_starts) AS d(k, s) ON c.key = d.k AND c.window_start = d.s
       ORDER BY c.key, c.window_start
         FOR UPDATE OF c;
      FOR i IN 1 .. v_count LOOP
        SELECT coalesce(max(c.n), 0) INTO v_c FROM meli_proxy_counters c
         WHERE c.key = p_keys[i] AND c.window_start = p_starts[i];
        SELECT coalesce(max(c.n), 0) INTO v_p FROM meli_proxy_counters c
         WHERE c.key = p_keys[i] AND c.window_start = p_starts[i] - p_window_ms[i];
        v_cur[i] := v_c;
        v_prev[i] := v_p;
        IF floor(v_p * p_left_ms[i] / p_window_ms[i] + 1e-9) + v_c + 1 > p_caps[i] THEN
          v_ok := false;
        END IF;
      END LOOP;
      IF v_ok THEN
        UPDATE meli_proxy_counters c SET n = c.n + 1
          FROM unnest(p_keys, p_starts) AS d(k, s)
         WHERE c.key = d.k AND c.window_start = d.s;
        FOR i IN 1 .. v_count LOOP
          v_cur[i] := v_cur[i] + 1;
        END LOOP;
      END IF;
      RETURN QUERY SELECT v_ok, t.p, t.c
        FROM unnest(v_prev, v_cur) WITH ORDINALITY AS t(p, c, o) ORDER BY t.o;
    END
    $fn$`,
  },
  {
    id: 8,
    name: 'stats_account_dimension',
    // Statistics grouped by account: the dimension check of migration 4 would refuse its rows.
    sql: `ALTER TABLE meli_proxy_stats_minute
      DROP CONSTRAINT meli_proxy_stats_minute_dimension_check,
      ADD CONSTRAINT meli_proxy_stats_minute_dimension_check
        CHECK (dimension IN ('total', 'route', 'status', 'rule', 'ip', 'account'))`,
  },
];

/** Any constant works as long as every meli-proxy version uses the same one. */
const MIGRATION_LOCK_KEY = 0x6d656c69; // 'meli'
/** Migrations and waiting for another process's migrations may take long; no 5 s query timeout. */
const MIGRATION_QUERY_TIMEOUT_MS = 15 * 60_000;

const CREATE_LEDGER = `CREATE TABLE IF NOT EXISTS meli_proxy_migrations (
  id integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

/** Migrations not yet applied to the database behind `pool`, in order. */
export async function pendingMigrations(
  pool: pg.Pool,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<Migration[]> {
  const { rows } = await pool.query<{ ledger: string | null }>(
    `SELECT to_regclass('meli_proxy_migrations')::text AS ledger`,
  );
  if (!rows[0]?.ledger) return [...migrations];
  const applied = await pool.query<{ id: number }>('SELECT id FROM meli_proxy_migrations');
  const done = new Set(applied.rows.map((r) => r.id));
  return migrations.filter((m) => !done.has(m.id));
}

/**
 * Applies pending migrations, each in its own transaction, and returns the ones this call applied
 * (empty when another process got there first). Idempotent.
 */
export async function migrate(
  pool: pg.Pool,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<Migration[]> {
  checkOrder(migrations);
  const client = await pool.connect();
  // A checked-out client with no query running has no 'error' listener: add one so a dropped
  // connection surfaces on the next query instead of crashing the process.
  const onError = (): void => undefined;
  client.on('error', onError);
  const run = <R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]) => {
    // pg honours a per-query `query_timeout` that @types/pg does not declare.
    const query: pg.QueryConfig & { query_timeout: number } = {
      text,
      values,
      query_timeout: MIGRATION_QUERY_TIMEOUT_MS,
    };
    return client.query<R>(query);
  };
  let broken: Error | undefined;
  try {
    await run('SET statement_timeout = 0');
    await run('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await run(CREATE_LEDGER);
      const { rows } = await run<{ id: number }>('SELECT id FROM meli_proxy_migrations');
      const done = new Set(rows.map((r) => r.id));
      const applied: Migration[] = [];
      for (const migration of migrations) {
        if (done.has(migration.id)) continue;
        await run('BEGIN');
        try {
          await run(migration.sql);
          await run('INSERT INTO meli_proxy_migrations (id, name) VALUES ($1, $2)', [
            migration.id,
            migration.name,
          ]);
          await run('COMMIT');
        } catch (error) {
          await run('ROLLBACK').catch(() => undefined);
          throw new Error(`migration ${migration.id} (${migration.name}) failed: ${errorMessage(error)}`, {
            cause: error,
          });
        }
        applied.push(migration);
      }
      return applied;
    } finally {
      await run('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
      await run('RESET statement_timeout').catch(() => undefined);
    }
  } catch (error) {
    // Do not hand a connection in an unknown state (lock held, transaction open) back to the pool.
    broken = error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

function checkOrder(migrations: readonly Migration[]): void {
  for (let i = 1; i < migrations.length; i++) {
    const prev = migrations[i - 1];
    const cur = migrations[i];
    if (prev && cur && cur.id <= prev.id) {
      throw new Error(`migrations out of order: ${cur.id} (${cur.name}) after ${prev.id} (${prev.name})`);
    }
  }
}
