/**
 * Which TokenStore a command uses, from the `--store` and `--data-dir` settings:
 *   embedded (default)  the private file `<dir>/tokens.json`, where dir is `--data-dir` when given
 *                       explicitly (flag, environment or config file) and otherwise the user's
 *                       config directory ($XDG_CONFIG_HOME/meli-proxy, ~/.config/meli-proxy)
 *   postgres://…        the store's documents, shared by every replica
 * `serve` and the `auth` commands apply the same rule, so `auth login` writes where `serve` reads.
 */
import type { Config } from '../config.js';
import { UsageError } from '../errors.js';
import { openStore, parseStoreUrl } from '../store/index.js';
import type { StoreLogger } from '../store/logger.js';
import type { Store } from '../store/types.js';
import { defaultTokenDir, TokenFileDocuments } from './token-file.js';
import { TokenStore } from './token-store.js';

export type TokenStoreSettings = Pick<Config, 'store' | 'dataDir' | 'sources'>;

/** The directory of the embedded token file. */
export function tokenDir(config: Pick<Config, 'dataDir' | 'sources'>, env: NodeJS.ProcessEnv): string {
  return config.sources.dataDir ? config.dataDir : defaultTokenDir(env);
}

function fileStore(dir: string): TokenStore {
  const documents = new TokenFileDocuments(dir);
  return new TokenStore(documents, documents.file);
}

/** For `serve`: the token next to an already open store (which the caller closes). */
export function tokenStoreBeside(
  store: Store,
  config: TokenStoreSettings,
  env: NodeJS.ProcessEnv,
): TokenStore {
  if (store.kind === 'embedded') return fileStore(tokenDir(config, env));
  return new TokenStore(store.documents, store.displayUrl);
}

/** For the `auth` commands: opens what holds the token; TokenStore.close() closes it. */
export async function openTokenStore(
  config: TokenStoreSettings,
  env: NodeJS.ProcessEnv,
  logger?: StoreLogger,
): Promise<TokenStore> {
  const target = parseStoreUrl(config.store);
  if (target.kind === 'embedded') {
    if (!target.persistent) {
      throw new UsageError(
        '--store memory keeps nothing after the command ends, so it cannot hold a login: use the default (embedded) or a postgres:// store.',
      );
    }
    return fileStore(tokenDir(config, env));
  }
  const store = await openStore(config.store, { dataDir: config.dataDir, logger, migrate: false });
  return new TokenStore(store.documents, store.displayUrl, () => store.close());
}
