/**
 * The refresh lock on PostgreSQL: `pg_advisory_xact_lock` inside a transaction held open on a
 * dedicated connection for as long as the lock is held.
 *
 * - Waiting is bounded by `SET LOCAL lock_timeout` (advisory locks honour it).
 * - The TTL is `SET LOCAL idle_in_transaction_session_timeout`: a holder that hangs while holding
 *   the lock (idle in its transaction) has its session ended by the server, which frees the lock.
 *   A holder that crashes frees it at once, since its connection closes.
 * - The lock key is a 64-bit number derived from the lock's name.
 *
 * The pool is its own (two connections), so lock waits never starve the store's queries.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Lock, LockHandle, LockOptions } from './lock.js';

export interface PostgresLockOptions {
  /** Bound on opening a connection. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Receives connection errors that happen while no lock call is running. */
  onError?: (error: Error) => void;
}

/** PostgreSQL's SQLSTATE for lock_not_available (lock_timeout expired). */
const LOCK_NOT_AVAILABLE = '55P03';

/** A signed 64-bit advisory lock key for `name`, as a decimal string. */
export function advisoryKey(name: string): string {
  return createHash('sha256').update(`meli-proxy:${name}`).digest().readBigInt64BE(0).toString();
}

export class PostgresLock implements Lock {
  private readonly pool: pg.Pool;

  constructor(url: string, options: PostgresLockOptions = {}) {
    this.pool = new pg.Pool({
      connectionString: url,
      application_name: 'meli-proxy-lock',
      max: 2,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
    });
    // Without a listener, an idle connection dropped by the server would crash the process.
    this.pool.on('error', (error) => options.onError?.(error));
  }

  async acquire(name: string, options: LockOptions): Promise<LockHandle | undefined> {
    const client = await this.pool.connect();
    // A session ended by idle_in_transaction_session_timeout reports on the checked-out client.
    let lost: Error | undefined;
    const onError = (error: Error): void => {
      lost = error;
    };
    client.on('error', onError);
    const giveBack = (error?: Error): void => {
      client.off('error', onError);
      client.release(error ?? lost);
    };
    try {
      await client.query('BEGIN');
      // SET cannot take bind parameters; both values are integers we computed.
      await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(options.waitMs))}`);
      await client.query(
        `SET LOCAL idle_in_transaction_session_timeout = ${Math.max(1, Math.round(options.ttlMs))}`,
      );
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryKey(name)]);
    } catch (error) {
      const timedOut = (error as { code?: string }).code === LOCK_NOT_AVAILABLE;
      await client.query('ROLLBACK').catch(() => undefined);
      giveBack(timedOut ? undefined : (error as Error));
      if (timedOut) return undefined;
      throw error;
    }
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        try {
          // Ending the transaction releases the advisory lock.
          await client.query('COMMIT');
          giveBack();
        } catch (error) {
          // The session is gone (TTL or network): the server has released the lock already.
          giveBack(error as Error);
        }
      },
    };
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
