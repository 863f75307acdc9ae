/**
 * One pg.Pool per PostgreSQL store, shared by documents, counters and health checks. Every wait
 * is bounded (connect, query, statement) so an outage turns into prompt rejections, and the pool's
 * 'error' event is handled: without a listener, a connection dropped while idle would crash the
 * process.
 */
import pg from 'pg';
import type { StoreLogger } from './logger.js';

export interface PoolTuning {
  /** Connections per process. Default 10. */
  poolSize: number;
  /** Bound on opening a connection, and on waiting for a free one. Default 2000 ms. */
  connectTimeoutMs: number;
  /** Bound on one query, enforced by the client and (slightly later) by the server. Default 5000 ms. */
  queryTimeoutMs: number;
}

export const DEFAULT_POOL_TUNING: PoolTuning = { poolSize: 10, connectTimeoutMs: 2000, queryTimeoutMs: 5000 };

export function createPool(url: string, tuning: PoolTuning, logger: StoreLogger): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    application_name: 'meli-proxy',
    max: tuning.poolSize,
    connectionTimeoutMillis: tuning.connectTimeoutMs,
    query_timeout: tuning.queryTimeoutMs,
    // The server gives up a little after the client, so it does not keep working for nobody.
    statement_timeout: tuning.queryTimeoutMs + 1000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
  });
  let lastWarning = 0;
  pool.on('error', (error) => {
    // One dropped connection per pooled client arrives at once during an outage: log one of them.
    const now = Date.now();
    if (now - lastWarning < 5000) return;
    lastWarning = now;
    logger.warn({ err: error }, 'lost an idle PostgreSQL connection; the next query reconnects');
  });
  return pool;
}
