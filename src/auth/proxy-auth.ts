/**
 * `serve --inject-token`: builds the account pool for a running proxy from its configuration
 * (accounts and lock from token-backend.ts, refresher, routing), starts it, and stops it on shutdown.
 */
import type { Config } from '../config.js';
import { UsageError } from '../errors.js';
import { isLoopbackHost } from '../net/loopback.js';
import { AccountPool } from './account-pool.js';
import type { Lock } from './lock.js';
import { createOAuthConfiguration, refreshGrant, resolveEndpoints } from './oauth-client.js';
import { DEFAULT_SITE } from './sites.js';
import { openTokenBackend, tokenKeysFor } from './token-backend.js';
import type { AuthLogger, Refresher, TokenManagerOptions } from './token-manager.js';

export type ProxyAuthSettings = Pick<
  Config,
  | 'store'
  | 'dataDir'
  | 'sources'
  | 'clientId'
  | 'clientSecret'
  | 'tokenUrl'
  | 'overrideClientToken'
  | 'tokenKeyFile'
  | 'upstream'
  | 'defaultAccount'
  | 'accountRoutes'
  | 'accountLabelLimit'
  | 'maxConcurrentRefreshes'
>;

export interface ProxyTokenAuth {
  /** Every account's token, and the choice of one per request; as an UpstreamAuth, the default account. */
  manager: AccountPool;
  stop(): Promise<void>;
}

export interface ProxyAuthDeps {
  config: ProxyAuthSettings;
  logger: AuthLogger;
  /** The cluster primary's lock, for a worker of `serve --workers N` on the embedded store. */
  hostLock?: Lock | undefined;
  env: NodeJS.ProcessEnv;
  /** Overrides for tests (timings, clock). */
  tuning?: Partial<
    Pick<TokenManagerOptions, 'pollIntervalMs' | 'refreshAt' | 'jitter' | 'lockWaitMs' | 'lockTtlMs'>
  > & { discoverIntervalMs?: number };
}

/**
 * The settings `--inject-token` cannot do without, checked before anything starts (and by a cluster
 * primary before it forks): the application secret; a usable --token-url (https, or http on
 * loopback) rather than a failure at the first refresh; an upstream the bearer may travel to in
 * clear only on loopback; a key when the token lives in a shared store. Returns the secret.
 */
export function checkTokenInjection(
  config: Pick<
    ProxyAuthSettings,
    'clientSecret' | 'tokenUrl' | 'upstream' | 'store' | 'dataDir' | 'sources' | 'tokenKeyFile'
  >,
  env: NodeJS.ProcessEnv,
): string {
  const clientSecret = config.clientSecret;
  if (!clientSecret) {
    throw new UsageError(
      '--inject-token keeps the token fresh, which needs the application secret: set MELI_CLIENT_SECRET (or --client-secret).',
    );
  }
  resolveEndpoints({ site: DEFAULT_SITE, tokenUrl: config.tokenUrl });
  if (config.upstream.protocol === 'http:' && !isLoopbackHost(config.upstream.hostname)) {
    throw new UsageError(
      `--inject-token would send the seller's token in clear text to --upstream ${config.upstream.origin}: use an https:// upstream (plain http:// only on a loopback address).`,
    );
  }
  tokenKeysFor(config, env);
  return clientSecret;
}

export async function startProxyTokenAuth(deps: ProxyAuthDeps): Promise<ProxyTokenAuth> {
  const { config, logger } = deps;
  const clientSecret = checkTokenInjection(config, deps.env);
  const { accounts, lock, close } = await openTokenBackend(config, deps.env, {
    role: 'serve',
    logger,
    hostLock: deps.hostLock,
  });
  const { discoverIntervalMs, ...tuning } = deps.tuning ?? {};
  const pool = new AccountPool({
    accounts,
    lock,
    logger,
    tuning,
    ...(discoverIntervalMs !== undefined ? { discoverIntervalMs } : {}),
    overrideClientToken: config.overrideClientToken,
    defaultAccount: config.defaultAccount,
    routes: config.accountRoutes,
    labelLimit: config.accountLabelLimit,
    maxConcurrentRefreshes: config.maxConcurrentRefreshes,
    refresher: tokenRefresher({ tokenUrl: config.tokenUrl, clientId: config.clientId, clientSecret }),
  });
  const stop = async (): Promise<void> => {
    await pool.stop();
    await close();
  };
  try {
    await pool.start();
  } catch (error) {
    await stop();
    throw error;
  }
  const held = pool.accounts().size;
  const wanted = config.defaultAccount;
  if (wanted !== 'auto' && wanted !== 'none' && pool.resolve(wanted) === undefined) {
    logger.warn(
      { defaultAccount: wanted },
      '--default-account names no stored account: requests that name none go without a token until it is logged in',
    );
  }
  if (held === 0) {
    logger.warn(
      { tokenStore: accounts.location },
      'no MercadoLibre account stored yet: requests go upstream without a token until "meli-proxy auth login" stores one',
    );
  } else {
    logger.info(
      { accounts: held, defaultAccount: pool.defaultId() ?? null, tokenStore: accounts.location },
      'injecting MercadoLibre tokens into upstream requests',
    );
  }
  return { manager: pool, stop };
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
