/**
 * The Redis store: documents (keyv over the store's connection), counters (one Lua script per sync) and checks
 * over one connection (see redis-client.ts for timeouts and reconnection). Redis has no schema:
 * there is nothing to migrate, and opening only needs the server to answer.
 */

import Keyv from 'keyv';
import { KeyvDocumentStore } from './documents.js';
import { errorMessage, StoreUnavailableError } from './errors.js';
import { type StoreLogger, silentLogger } from './logger.js';
import {
  DEFAULT_REDIS_CONNECTION_TUNING,
  RedisConnection,
  type RedisConnectionTuning,
} from './redis-client.js';
import {
  DEFAULT_REDIS_COUNTER_TUNING,
  RedisCounterBackend,
  type RedisCounterTuning,
} from './redis-counters.js';
import { REDIS_DOCUMENT_NAMESPACE, RedisKeyvAdapter } from './redis-documents.js';
import { GuardedDocuments, warnWithoutPersistence } from './redis-durability.js';
import { RedisExactCounters } from './redis-exact.js';
import { RedisStatsStore } from './redis-stats.js';
import type { Store } from './types.js';

export interface RedisTuning extends RedisConnectionTuning, RedisCounterTuning {
  /** Bound on check() (PING). Default 1000 ms. */
  checkTimeoutMs: number;
}

export const DEFAULT_REDIS_TUNING: RedisTuning = {
  ...DEFAULT_REDIS_CONNECTION_TUNING,
  ...DEFAULT_REDIS_COUNTER_TUNING,
  checkTimeoutMs: 1000,
};

export interface RedisStoreOptions {
  /** redis:// or rediss:// URL, credentials included. */
  url: string;
  displayUrl: string;
  logger?: StoreLogger;
  tuning?: Partial<RedisTuning>;
}

export interface RedisStore extends Store {
  readonly kind: 'redis';
  readonly counters: RedisCounterBackend;
}

/** Opens the store; throws StoreUnavailableError (exit 1) when Redis does not answer or refuses us. */
export async function openRedisStore(opts: RedisStoreOptions): Promise<RedisStore> {
  const logger = opts.logger ?? silentLogger;
  const tuning = { ...DEFAULT_REDIS_TUNING, ...opts.tuning };
  const connection = new RedisConnection(opts.url, opts.displayUrl, tuning, logger);
  const counters = new RedisCounterBackend(connection, tuning);
  const stats = new RedisStatsStore(connection);
  const adapter = new RedisKeyvAdapter(connection);
  const keyv = new Keyv<unknown>(adapter, { namespace: REDIS_DOCUMENT_NAMESPACE, throwOnErrors: true });
  const documents = new GuardedDocuments(new KeyvDocumentStore(keyv, adapter.scan), connection, logger);
  try {
    await connection.open();
    await documents.open();
  } catch (error) {
    await connection.close().catch(() => undefined);
    throw new StoreUnavailableError(`Cannot use the Redis store ${opts.displayUrl}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  await warnWithoutPersistence(connection, logger);
  let closing: Promise<void> | undefined;

  return {
    kind: 'redis',
    displayUrl: opts.displayUrl,
    documents,
    counters,
    exact: new RedisExactCounters(connection),
    stats,
    async check() {
      if (closing) throw new Error(`the store ${opts.displayUrl} is closed`);
      await connection.bound((client) => client.ping(), tuning.checkTimeoutMs);
    },
    close() {
      closing ??= connection.close();
      return closing;
    },
  };
}
