/**
 * The store entry point: `--store` value in, Store out.
 *   embedded (default) / memory → one process, documents in <dataDir>/documents.json / in memory
 *   postgres://… / postgresql://… → shared by every replica
 *   redis://… / rediss://… → shared by every replica; no schema, nothing to migrate
 * The PostgreSQL and Redis back ends (and their client libraries) are loaded only when named: a
 * process on the embedded store, a cluster primary included, does not carry them in memory.
 */
import { openEmbeddedStore } from './embedded.js';
import { errorMessage, StoreUnavailableError } from './errors.js';
import { type StoreLogger, silentLogger } from './logger.js';
import { type Migration, migrate, pendingMigrations } from './migrations.js';
import type { PostgresTuning } from './postgres.js';
import type { RedisTuning } from './redis.js';
import type { Store } from './types.js';
import { parseStoreUrl } from './url.js';

export { totalKey } from './deltas.js';
export { DOCUMENTS_FILE } from './embedded.js';
export { StoreConfigError, StoreNotMigratedError, StoreUnavailableError } from './errors.js';
export type { StoreLogger } from './logger.js';
export { MIGRATIONS, type Migration } from './migrations.js';
export type { PostgresTuning } from './postgres.js';
export type { RedisTuning } from './redis.js';
export type * from './types.js';
export { maskUrl, parseStoreUrl, type StoreTarget } from './url.js';

export interface OpenStoreOptions {
  /** Where the embedded store keeps documents.json (created 0700). */
  dataDir: string;
  logger?: StoreLogger;
  /** PostgreSQL: apply pending migrations instead of failing with StoreNotMigratedError (`--migrate`). */
  migrate?: boolean;
  /** PostgreSQL: pool size, timeouts, replica horizon, cleanup interval. */
  postgres?: Partial<PostgresTuning>;
  /** Redis: timeouts, reconnection backoff, replica horizon, script batch size. */
  redis?: Partial<RedisTuning>;
  /** Embedded: delay between a document change and its write. Default 50 ms. */
  flushDelayMs?: number;
  /**
   * PostgreSQL and Redis: the longest a rate-limit operation may wait (`--store-timeout`), which the
   * counter sync enforces itself. The clients' own per-call bounds are raised to it when lower, so
   * they never cut such an operation short; they are not lowered, as they also bound statistics.
   */
  operationTimeoutMs?: number;
}

/**
 * Opens the store named by `url`. Throws StoreConfigError for a bad value (exit 2),
 * StoreNotMigratedError when PostgreSQL needs `meli-proxy migrate` (exit 2), and
 * StoreUnavailableError when PostgreSQL or Redis cannot be reached (exit 1).
 */
export async function openStore(url: string, opts: OpenStoreOptions): Promise<Store> {
  const target = parseStoreUrl(url);
  if (target.kind === 'embedded') {
    return openEmbeddedStore({
      dataDir: opts.dataDir,
      persistent: target.persistent,
      logger: opts.logger,
      flushDelayMs: opts.flushDelayMs,
    });
  }
  if (target.kind === 'redis') {
    const { openRedisStore, DEFAULT_REDIS_TUNING } = await import('./redis.js');
    const commandTimeoutMs = Math.max(
      opts.redis?.commandTimeoutMs ?? DEFAULT_REDIS_TUNING.commandTimeoutMs,
      opts.operationTimeoutMs ?? 0,
    );
    return openRedisStore({
      url: target.url,
      displayUrl: target.displayUrl,
      logger: opts.logger,
      tuning: { ...opts.redis, commandTimeoutMs },
    });
  }
  const { openPostgresStore, DEFAULT_POSTGRES_TUNING } = await import('./postgres.js');
  const atLeastOperation = (value: number) => Math.max(value, opts.operationTimeoutMs ?? 0);
  // A pooled connection may have to be opened for the operation, so connecting is within it too.
  const queryTimeoutMs = atLeastOperation(
    opts.postgres?.queryTimeoutMs ?? DEFAULT_POSTGRES_TUNING.queryTimeoutMs,
  );
  const connectTimeoutMs = atLeastOperation(
    opts.postgres?.connectTimeoutMs ?? DEFAULT_POSTGRES_TUNING.connectTimeoutMs,
  );
  return openPostgresStore({
    url: target.url,
    displayUrl: target.displayUrl,
    migrate: opts.migrate,
    logger: opts.logger,
    tuning: { ...opts.postgres, queryTimeoutMs, connectTimeoutMs },
  });
}

const MIGRATE_CONNECT_TIMEOUT_MS = 15_000;

export interface MigrateReport {
  displayUrl: string;
  /** Migrations applied by this call (with dryRun: the ones that would be). */
  applied: Migration[];
  /** False for stores without a schema (embedded, memory, Redis): nothing to migrate. */
  hasSchema: boolean;
}

/**
 * `meli-proxy migrate`: brings the store's schema up to date. A no-op for stores without a schema
 * (embedded, memory, Redis), which it does not even connect to.
 */
export async function migrateStore(
  url: string,
  opts: { logger?: StoreLogger; dryRun?: boolean } = {},
): Promise<MigrateReport> {
  const target = parseStoreUrl(url);
  if (target.kind !== 'postgres') return { displayUrl: target.displayUrl, applied: [], hasSchema: false };
  const { createPool, DEFAULT_POOL_TUNING } = await import('./pg-pool.js');
  // A command run by hand (or by a deploy step) may wait for a busy server longer than a request may.
  const pool = createPool(
    target.url,
    { ...DEFAULT_POOL_TUNING, connectTimeoutMs: MIGRATE_CONNECT_TIMEOUT_MS },
    opts.logger ?? silentLogger,
  );
  try {
    const applied = opts.dryRun ? await pendingMigrations(pool) : await migrate(pool);
    return { displayUrl: target.displayUrl, applied, hasSchema: true };
  } catch (error) {
    throw new StoreUnavailableError(
      `Cannot migrate the PostgreSQL store ${target.displayUrl}: ${errorMessage(error)}`,
      {
        cause: error,
      },
    );
  } finally {
    await pool.end().catch(() => undefined);
  }
}
