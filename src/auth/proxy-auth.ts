/**
 * `serve --inject-token`: builds the TokenManager for a running proxy from its configuration and
 * store (token source, lock backend, refresher), starts it, and stops it on shutdown.
 */
import type { Config } from '../config.js';
import { UsageError } from '../errors.js';
import type { Store } from '../store/types.js';
import { InProcessLock, type Lock } from './lock.js';
import { createOAuthConfiguration, refreshGrant, resolveEndpoints } from './oauth-client.js';
import { tokenStoreBeside } from './open-token-store.js';
import { DEFAULT_SITE } from './sites.js';
import { type AuthLogger, type Refresher, TokenManager, type TokenManagerOptions } from './token-manager.js';

export type ProxyAuthSettings = Pick<
  Config,
  'store' | 'dataDir' | 'sources' | 'clientId' | 'clientSecret' | 'tokenUrl' | 'overrideClientToken'
>;

export interface ProxyTokenAuth {
  manager: TokenManager;
  stop(): Promise<void>;
}

export interface ProxyAuthDeps {
  config: ProxyAuthSettings;
  store: Store;
  logger: AuthLogger;
  env: NodeJS.ProcessEnv;
  /** Overrides for tests (timings, clock). */
  tuning?: Partial<
    Pick<TokenManagerOptions, 'pollIntervalMs' | 'refreshAt' | 'jitter' | 'lockWaitMs' | 'lockTtlMs'>
  >;
}

/**
 * The settings `--inject-token` cannot do without, checked before anything starts (and by a cluster
 * primary before it forks): the application secret, and a usable --token-url (https, or http on
 * loopback) rather than a failure at the first refresh. Returns the secret.
 */
export function checkTokenInjection(config: Pick<ProxyAuthSettings, 'clientSecret' | 'tokenUrl'>): string {
  const clientSecret = config.clientSecret;
  if (!clientSecret) {
    throw new UsageError(
      '--inject-token keeps the token fresh, which needs the application secret: set MELI_CLIENT_SECRET (or --client-secret).',
    );
  }
  resolveEndpoints({ site: DEFAULT_SITE, tokenUrl: config.tokenUrl });
  return clientSecret;
}

export async function startProxyTokenAuth(deps: ProxyAuthDeps): Promise<ProxyTokenAuth> {
  const { config, store, logger } = deps;
  const clientSecret = checkTokenInjection(config);
  const tokens = tokenStoreBeside(store, config, deps.env);
  const lock = await refreshLockFor(config.store, store.kind, logger);
  const manager = new TokenManager({
    ...deps.tuning,
    tokens,
    lock,
    logger,
    overrideClientToken: config.overrideClientToken,
    refresher: tokenRefresher({ tokenUrl: config.tokenUrl, clientId: config.clientId, clientSecret }),
  });
  const stop = async (): Promise<void> => {
    await manager.stop();
    await Promise.allSettled([lock.close(), tokens.close()]);
  };
  let token: Awaited<ReturnType<TokenManager['start']>>;
  try {
    token = await manager.start();
  } catch (error) {
    await stop();
    throw error;
  }
  if (token) {
    logger.info(
      {
        user: token.nickname,
        userId: token.userId,
        site: token.siteId,
        expiresAt: new Date(token.expiresAt).toISOString(),
        tokenStore: tokens.location,
      },
      'injecting the stored MercadoLibre token into upstream requests',
    );
  } else {
    logger.warn(
      { tokenStore: tokens.location },
      'no MercadoLibre token stored yet: requests go upstream without one until "meli-proxy auth login" stores one',
    );
  }
  return { manager, stop };
}

export interface RefresherSettings {
  tokenUrl: URL;
  /** Default: the client id stored with the token at login. */
  clientId?: string | undefined;
  clientSecret: string;
}

/** Spends a stored token's refresh token at the token endpoint (openid-client's refresh grant). */
export function tokenRefresher(settings: RefresherSettings): Refresher {
  const endpoints = resolveEndpoints({ site: DEFAULT_SITE, tokenUrl: settings.tokenUrl });
  return async (token) => {
    if (!token.refreshToken) throw new Error('the stored token has no refresh token');
    const oauth = createOAuthConfiguration({
      endpoints,
      clientId: settings.clientId ?? token.clientId,
      clientSecret: settings.clientSecret,
    });
    return refreshGrant(oauth, token.refreshToken);
  };
}

/**
 * The refresh lock for a store: a PostgreSQL advisory lock, Redis `SET NX PX`, or in-process for
 * the embedded store (one process). The client library of a lock is loaded only when it is used.
 */
export async function refreshLockFor(
  storeUrl: string,
  kind: Store['kind'],
  logger?: AuthLogger,
): Promise<Lock> {
  if (kind === 'postgres') {
    const { PostgresLock } = await import('./lock-postgres.js');
    return new PostgresLock(storeUrl, {
      onError: (error) => logger?.warn({ detail: error.message }, 'lost an idle refresh-lock connection'),
    });
  }
  if (kind === 'redis') {
    const { RedisLock } = await import('./lock-redis.js');
    return new RedisLock(storeUrl, logger);
  }
  return new InProcessLock();
}
