import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';
import type { Store } from '../store/types.js';
import type { ProxyMetrics } from './metrics.js';
import type { ServerState } from './state.js';

interface StatusDeps {
  config: Config;
  state: ServerState;
  store: Store;
  metrics: ProxyMetrics;
  version: string;
}

/** `GET /admin/status`: what this process is, and whether it is healthy. */
export function statusRoutes(deps: StatusDeps): FastifyPluginAsync {
  const startedAt = Date.now();
  return async (app) => {
    app.get('/admin/status', async () => {
      const readiness = await deps.state.readiness();
      return {
        version: deps.version,
        pid: process.pid,
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        upstream: deps.config.upstream.origin,
        store: { kind: deps.store.kind, url: deps.store.displayUrl },
        ready: readiness.ready,
        reasons: readiness.reasons,
        dependencies: readiness.dependencies,
        inFlightRequests: deps.metrics.inFlightRequests,
      };
    });
  };
}
