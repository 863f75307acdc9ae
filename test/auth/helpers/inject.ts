/**
 * `serve --inject-token` in this process, as the injection suites start it: the real proxy in front
 * of the fake MercadoLibre (also its token endpoint), the in-memory store, and the token file in
 * `dir` that the suite filled first.
 */
import type { DestinationStream } from 'pino';
import { type ProxyTokenAuth, startProxyTokenAuth } from '../../../src/auth/proxy-auth.js';
import type { TokenManagerOptions } from '../../../src/auth/token-manager.js';
import { loadConfig, type SettingKey } from '../../../src/config.js';
import { createLogger } from '../../../src/logger.js';
import { type RunningServer, startServer } from '../../../src/server/index.js';
import { openStore } from '../../../src/store/index.js';
import type { FakeMeli } from '../../peers/oauth-server.js';
import type { WorkerMode } from '../../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../../support/serve.js';

export async function startInjectingProxy(
  meli: FakeMeli,
  dir: string,
  logs: DestinationStream,
  tuning?: Partial<Pick<TokenManagerOptions, 'jitter'>>,
  flags: Record<string, unknown> = {},
): Promise<{ server: RunningServer; auth: ProxyTokenAuth }> {
  const config = loadConfig({
    env: {},
    flags: {
      port: 0,
      adminPort: 0,
      store: 'memory',
      dataDir: dir,
      upstream: meli.url,
      injectToken: true,
      clientSecret: meli.client.secret,
      tokenUrl: meli.tokenUrl,
      logLevel: 'info',
      ...flags,
    },
  });
  const logger = createLogger(config.logLevel, logs);
  const store = await openStore('memory', { dataDir: dir, logger });
  const auth = await startProxyTokenAuth({ config, logger, env: {}, ...(tuning ? { tuning } : {}) });
  const server = await startServer(config, {
    logger,
    store,
    version: 'test',
    upstreamAuth: auth.manager,
    flushers: [auth.stop],
  });
  auth.manager.registerMetrics(server.metrics.registry);
  return { server, auth };
}

/**
 * `serve --inject-token` as the real process under `mode`, in front of the fake MercadoLibre, with
 * the token file in `dir` (its data dir, which the suite filled first and removes).
 */
export function serveInjecting(
  mode: WorkerMode,
  meli: FakeMeli,
  dir: string,
  settings: Omit<Partial<Record<SettingKey, unknown>>, 'upstream'> = {},
): Promise<ServedProxy> {
  return startServeProxy(mode, {
    upstream: meli.url,
    dataDir: dir,
    injectToken: 'on',
    tokenUrl: meli.tokenUrl,
    clientSecret: meli.client.secret,
    ...settings,
  });
}
