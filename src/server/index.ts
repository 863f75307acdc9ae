/**
 * Starts and stops the whole server: proxy port, admin port, upstream pool, and the shutdown
 * sequence (drain, finish in-flight requests within the grace period, flush, close).
 */

import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Store } from '../store/types.js';
import { createTracing } from '../tracing/index.js';
import { buildAdminApp } from './admin-app.js';
import { assertAdminExposureAllowed } from './admin-auth.js';
import { dashboardRoutes } from './admin-dashboard.js';
import { limitsRoutes } from './admin-limits.js';
import { statsRoutes } from './admin-stats.js';
import { statusRoutes } from './admin-status.js';
import { primaryLeases } from './cluster-worker.js';
import { ProxyMetrics } from './metrics.js';
import { buildProxyApp } from './proxy-app.js';
import { RateLimiter } from './rate-limit.js';
import { RouteTable } from './routes.js';
import { ServerState } from './state.js';
import { StatsRecorder } from './stats/recorder.js';
import { compileTrust } from './trusted-proxies.js';
import { createUpstreamPool } from './upstream.js';
import type { UpstreamAuth } from './upstream-auth.js';

export interface ServerDeps {
  logger: Logger;
  store: Store;
  version: string;
  /** Work to finish after traffic stops and before the store closes (e.g. flushing statistics). */
  flushers?: Array<() => Promise<void>>;
  adminPlugins?: FastifyPluginAsync[];
  /** Bearer token injection into upstream requests (`--inject-token`). */
  upstreamAuth?: UpstreamAuth;
  /** Environment for default rules (MELI_PROXY_LIMIT_PER_IP, MELI_PROXY_LIMIT_GLOBAL). */
  env?: NodeJS.ProcessEnv;
  /**
   * Log warnings about the setup itself (an admin API without a token). Default true; the workers
   * of `serve --workers` leave them to the first worker, so they read once, not once per core.
   */
  warnAboutSetup?: boolean;
}

export interface RunningServer {
  proxyUrl: string;
  adminUrl: string;
  metrics: ProxyMetrics;
  stats: StatsRecorder;
  routes: RouteTable;
  rateLimit: RateLimiter;
  state: ServerState;
  /** Drains and stops everything; resolves when the process may exit. Safe to call twice. */
  shutdown(reason: string): Promise<void>;
}

function urlOf(app: FastifyInstance): string {
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

export async function startServer(config: Config, deps: ServerDeps): Promise<RunningServer> {
  const { logger, store } = deps;
  assertAdminExposureAllowed(config.adminHost, config.adminToken);

  const routes = new RouteTable({
    extra: config.routes,
    maxRoutes: config.maxRoutes,
    processes: config.workers,
  });
  const routeLabel = (id: number) => routes.label(id);
  const metrics = new ProxyMetrics({ routeCapacity: routes.capacity, routeLabel });
  const stats = new StatsRecorder({
    store: store.stats,
    logger,
    routeCapacity: routes.capacity,
    routeLabel,
    retentionMs: config.statsRetention,
  });
  const upstreamAuth = deps.upstreamAuth;
  if (upstreamAuth?.accountName) stats.nameAccounts((id) => upstreamAuth.accountName?.(id));
  const state = new ServerState();
  const rateLimit = await RateLimiter.start({
    store,
    logger,
    fileRules: config.limits,
    fileName: config.configFile ?? 'config file',
    env: deps.env ?? {},
    legacyHeaders: config.legacyRateLimitHeaders,
    syncIntervalMs: config.syncInterval,
    storeTimeoutMs: config.storeTimeout,
    onStoreError: config.onStoreError,
    exactPerReplica: config.exactPerReplica,
    workers: config.workers,
    // A worker of `serve --workers N` whose primary owns the embedded store: exact limits, with
    // permits granted by the primary. With PostgreSQL or Redis, workers share counters as replicas.
    leases: config.workers > 1 && store.kind === 'embedded' ? primaryLeases() : undefined,
    beforeRulesSwap: () => metrics.rulesReplaced(),
    onStoreHealth: (healthy) => {
      metrics.setStoreHealthy(healthy);
      if (!healthy) metrics.storeError();
    },
  });
  state.addDependency('store', async () => {
    await store.check();
    return undefined;
  });
  const upstream = createUpstreamPool(config);
  const trust = compileTrust(config.trustProxy);
  metrics.watch({
    version: deps.version,
    ruleStats: () => rateLimit.ruleStats(),
    limiterKeys: () => rateLimit.limiterStats(),
    droppedStatsRows: () => stats.droppedRows,
    storeErrorDecisions: () => rateLimit.storeErrorDecisions,
    upstreamPool: () => upstream.stats,
  });

  const tracing = await createTracing(deps.env ?? {}, { version: deps.version, routeLabel });
  const proxyApp = await buildProxyApp({
    config,
    logger,
    metrics,
    upstream,
    state,
    trust,
    upstreamAuth: deps.upstreamAuth,
    stats,
    routes,
    rateLimit,
    tracing,
  });
  const adminApp = await buildAdminApp({
    config,
    logger,
    plugins: [
      statusRoutes({ config, state, store, version: deps.version, metrics }),
      statsRoutes(stats),
      limitsRoutes({ store, rateLimit, metrics }),
      dashboardRoutes(stats),
      ...(deps.adminPlugins ?? []),
    ],
  });

  try {
    await proxyApp.listen({ host: config.host, port: config.port });
    await adminApp.listen({ host: config.adminHost, port: config.adminPort });
  } catch (error) {
    await Promise.allSettled([
      proxyApp.close(),
      adminApp.close(),
      upstream.close(),
      rateLimit.stop(),
      tracing.shutdown(),
    ]);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new UsageError(
        `Cannot listen: ${(error as Error).message}. Choose another --host/--port or --admin-host/--admin-port.`,
      );
    }
    throw error;
  }

  stats.start();
  state.markStarted();
  const proxyUrl = urlOf(proxyApp);
  const adminUrl = urlOf(adminApp);
  logger.info(
    { url: proxyUrl, upstream: config.upstream.origin, store: store.displayUrl },
    'proxy listening',
  );
  logger.info({ url: adminUrl, authenticated: Boolean(config.adminToken) }, 'admin listening');
  if (tracing.exporting) logger.info({ endpoint: tracing.endpoint }, 'exporting spans over OTLP/HTTP');
  if (!config.adminToken && deps.warnAboutSetup !== false) {
    logger.warn('no admin token set: the admin API is open to anyone on this machine (loopback only)');
  }

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info({ reason, inFlight: metrics.inFlightRequests, graceMs: config.shutdownGrace }, 'draining');
      state.startDraining();
      const closed = proxyApp.close();
      const deadline = Date.now() + config.shutdownGrace;
      while (metrics.inFlightRequests > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      if (metrics.inFlightRequests > 0) {
        logger.warn(
          { inFlight: metrics.inFlightRequests },
          'grace period over: cutting the remaining requests',
        );
      }
      // Whatever is left (cut requests, idle keep-alive sockets) goes now.
      proxyApp.server.closeAllConnections();
      await closed;
      await upstream.close().catch(() => upstream.destroy());
      // Last counter deltas go out while the store is still open.
      await rateLimit
        .stop()
        .catch((error: unknown) => logger.error({ err: error }, 'final counter sync failed'));
      // Every answered request is counted by now: the final flush stores them all.
      await stats
        .stop()
        .catch((error: unknown) => logger.error({ err: error }, 'final statistics flush failed'));
      // Spans of the last requests go to the collector (bounded by the exporter's own timeout).
      await tracing
        .shutdown()
        .catch((error: unknown) => logger.error({ err: error }, 'final span export failed'));
      for (const flush of deps.flushers ?? []) {
        await flush().catch((error: unknown) => logger.error({ err: error }, 'flush on shutdown failed'));
      }
      await adminApp.close();
      await store.close().catch((error: unknown) => logger.error({ err: error }, 'closing the store failed'));
      logger.info('stopped');
    })();
    return stopping;
  };

  return { proxyUrl, adminUrl, metrics, stats, routes, rateLimit, state, shutdown };
}
