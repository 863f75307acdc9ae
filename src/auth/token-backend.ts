/**
 * Where the token lives and which lock guards its refresh, decided in this one place for `serve`
 * and for every `auth` command, from the `--store`, `--data-dir` and key settings:
 *
 *   store            token                                   refresh lock
 *   embedded/memory  <dir>/tokens.json (file 0600, dir 0700)  the process's own; for the workers of
 *                    dir: --data-dir when given explicitly,   `serve --workers N`, the cluster
 *                    else $XDG_CONFIG_HOME/meli-proxy          primary's, over IPC (lock-ipc.ts)
 *   postgres://…     the documents table, sealed              advisory lock (lock-postgres.ts)
 *   redis://…        the documents' key, sealed               SET NX PX (lock-redis.ts)
 *
 * The lock only saves work: every save is a compare-and-set on the token's lineage and generation
 * (token-slot.ts), so a writer whose lock ran out can never overwrite a newer token.
 */
import type { Config } from '../config.js';
import { UsageError } from '../errors.js';
import { openStore, parseStoreUrl } from '../store/index.js';
import { type StoreLogger, silentLogger } from '../store/logger.js';
import { maskUrl } from '../store/url.js';
import { AccountStore } from './accounts.js';
import { InProcessLock, type Lock } from './lock.js';
import { defaultTokenDir } from './token-file.js';
import { loadKeyRing, type TokenKeyRing } from './token-key.js';
import { FileTokenSlots, TOKEN_KEY, type TokenSlots } from './token-slot.js';
import { missingKey, TokenStore } from './token-store.js';

export type TokenBackendSettings = Pick<Config, 'store' | 'dataDir' | 'sources' | 'tokenKeyFile'>;

export interface TokenBackend {
  /** The single token of versions before accounts (read by the migration, and by older tests). */
  tokens: TokenStore;
  /** Every account's token, each under its own lock name and compare-and-set. */
  accounts: AccountStore;
  lock: Lock;
  /** Closes the lock and the token's connections. */
  close(): Promise<void>;
}

export interface TokenBackendOptions {
  /** `serve` (the store is open and checked already) or an `auth` command (checks it here). */
  role: 'serve' | 'command';
  logger?: StoreLogger | undefined;
  /** The lock of the host's cluster primary, for a worker of `serve --workers N`. */
  hostLock?: Lock | undefined;
}

/** The directory of the embedded token file. */
export function tokenDir(config: Pick<Config, 'dataDir' | 'sources'>, env: NodeJS.ProcessEnv): string {
  return config.sources.dataDir ? config.dataDir : defaultTokenDir(env);
}

/** Whether the token lives in a store other replicas share (and so must be sealed). */
export function sharedTokenStore(store: string): boolean {
  return parseStoreUrl(store).kind !== 'embedded';
}

/**
 * The key ring, checked against the store: a shared store needs one. `serve --inject-token` calls
 * this before it starts anything (exit 2 with how to make a key).
 */
export function tokenKeysFor(config: TokenBackendSettings, env: NodeJS.ProcessEnv): TokenKeyRing | undefined {
  const keys = loadKeyRing(config, env);
  if (!keys && sharedTokenStore(config.store)) throw missingKey(maskUrl(config.store));
  return keys;
}

export async function openTokenBackend(
  config: TokenBackendSettings,
  env: NodeJS.ProcessEnv,
  options: TokenBackendOptions,
): Promise<TokenBackend> {
  const target = parseStoreUrl(config.store);
  const keys = loadKeyRing(config, env);
  if (target.kind === 'embedded') {
    if (options.role === 'command' && !target.persistent) {
      throw new UsageError(
        '--store memory keeps nothing after the command ends, so it cannot hold a login: use the default (embedded) or a postgres:// or redis:// store.',
      );
    }
    const slots = new FileTokenSlots(tokenDir(config, env));
    const lock = options.hostLock ?? new InProcessLock();
    return backend(slots, slots.file, { keys }, lock);
  }
  const location = maskUrl(config.store);
  if (!keys) throw missingKey(location);
  // An auth command opens the store once to have its usual checks (reachable, schema migrated).
  if (options.role === 'command') {
    const store = await openStore(config.store, {
      dataDir: config.dataDir,
      logger: options.logger,
      migrate: false,
    });
    await store.close();
  }
  const warn = (error: Error): void =>
    options.logger?.warn({ detail: error.message }, 'lost an idle token-store connection');
  let slots: TokenSlots;
  let lock: Lock;
  if (target.kind === 'postgres') {
    const [{ PostgresTokenSlots }, { PostgresLock }] = await Promise.all([
      import('./token-slot-postgres.js'),
      import('./lock-postgres.js'),
    ]);
    slots = new PostgresTokenSlots(config.store, warn);
    lock = new PostgresLock(config.store, { onError: warn });
  } else {
    const [{ RedisTokenSlots }, { RedisLock }, { DEFAULT_REDIS_CONNECTION_TUNING, RedisConnection }] =
      await Promise.all([
        import('./token-slot-redis.js'),
        import('./lock-redis.js'),
        import('../store/redis-client.js'),
      ]);
    const connection = new RedisConnection(
      config.store,
      location,
      DEFAULT_REDIS_CONNECTION_TUNING,
      options.logger ?? silentLogger,
    );
    await connection.open();
    slots = new RedisTokenSlots(connection);
    lock = new RedisLock(connection);
  }
  return backend(slots, location, { keys, shared: true }, lock);
}

function backend(
  slots: TokenSlots,
  location: string,
  options: { keys: TokenKeyRing | undefined; shared?: boolean },
  lock: Lock,
): TokenBackend {
  return {
    tokens: new TokenStore(slots.slot(TOKEN_KEY), location, options),
    accounts: new AccountStore(slots, location, options),
    lock,
    close: async () => {
      await Promise.allSettled([lock.close(), slots.close()]);
    },
  };
}
