/**
 * The PostgreSQL store: documents (keyv over the store's pool), counters (plain SQL) and checks over
 * one bounded pool. Opening refuses a database whose schema is behind, unless asked to migrate.
 */
import Keyv from 'keyv';
import type pg from 'pg';
import { DOCUMENT_NAMESPACE, KeyvDocumentStore } from './documents.js';
import { errorMessage, StoreNotMigratedError, StoreUnavailableError } from './errors.js';
import { type StoreLogger, silentLogger } from './logger.js';
import { migrate, pendingMigrations } from './migrations.js';
import { type CounterTuning, DEFAULT_COUNTER_TUNING, PostgresCounterBackend } from './pg-counters.js';
import { currentSchema, PostgresKeyvAdapter } from './pg-documents.js';
import { PostgresExactCounters } from './pg-exact.js';
import { createPool, DEFAULT_POOL_TUNING, type PoolTuning } from './pg-pool.js';
import { PostgresStatsStore } from './pg-stats.js';
import { withTimeout } from './timeout.js';
import type { Store } from './types.js';

export interface PostgresTuning extends PoolTuning, CounterTuning {
  /** Bound on check() as a whole (connect + SELECT 1). Default 1000 ms. */
  checkTimeoutMs: number;
}

export const DEFAULT_POSTGRES_TUNING: PostgresTuning = {
  ...DEFAULT_POOL_TUNING,
  ...DEFAULT_COUNTER_TUNING,
  checkTimeoutMs: 1000,
};

export interface PostgresStoreOptions {
  url: string;
  displayUrl: string;
  /** Apply pending migrations instead of refusing to open. */
  migrate?: boolean;
  logger?: StoreLogger;
  tuning?: Partial<PostgresTuning>;
}

export interface PostgresStore extends Store {
  readonly kind: 'postgres';
  readonly counters: PostgresCounterBackend;
}

export async function openPostgresStore(opts: PostgresStoreOptions): Promise<PostgresStore> {
  const logger = opts.logger ?? silentLogger;
  const tuning = { ...DEFAULT_POSTGRES_TUNING, ...opts.tuning };
  const pool = createPool(opts.url, tuning, logger);
  let schema: string;
  try {
    schema = await prepareSchema(pool, opts, logger);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }

  const adapter = new PostgresKeyvAdapter(pool, schema);
  const keyv = new Keyv(adapter, { namespace: DOCUMENT_NAMESPACE, throwOnErrors: true });
  const documents = new KeyvDocumentStore(keyv, adapter.scan);
  const counters = new PostgresCounterBackend(pool, tuning, logger);
  const stats = new PostgresStatsStore(pool, tuning.queryTimeoutMs);
  let closing: Promise<void> | undefined;

  return {
    kind: 'postgres',
    displayUrl: opts.displayUrl,
    documents,
    counters,
    exact: new PostgresExactCounters(pool),
    stats,
    async check() {
      if (closing) throw new Error(`the store ${opts.displayUrl} is closed`);
      await withTimeout(
        pool.query('SELECT 1'),
        tuning.checkTimeoutMs,
        `PostgreSQL ${opts.displayUrl} did not answer within ${tuning.checkTimeoutMs} ms`,
      );
    },
    close() {
      closing ??= (async () => {
        counters.stop();
        await pool.end();
      })();
      return closing;
    },
  };
}

async function prepareSchema(
  pool: pg.Pool,
  opts: PostgresStoreOptions,
  logger: StoreLogger,
): Promise<string> {
  let pending: string[];
  let schema: string;
  try {
    if (opts.migrate) {
      for (const m of await migrate(pool)) {
        logger.info({ migration: m.id, name: m.name, store: opts.displayUrl }, 'applied store migration');
      }
    }
    pending = (await pendingMigrations(pool)).map((m) => `${m.id} ${m.name}`);
    schema = await currentSchema(pool);
  } catch (error) {
    throw new StoreUnavailableError(
      `Cannot use the PostgreSQL store ${opts.displayUrl}: ${errorMessage(error)}`,
      {
        cause: error,
      },
    );
  }
  if (pending.length > 0) throw new StoreNotMigratedError(opts.displayUrl, pending);
  return schema;
}
