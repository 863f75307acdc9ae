import { Pool } from 'undici';
import type { Config } from '../config.js';

/** One keep-alive HTTP/1.1 pool to the configured upstream; the only destination the proxy knows. */
export function createUpstreamPool(config: Config): Pool {
  return new Pool(config.upstream.origin, {
    connections: config.upstreamConnections,
    pipelining: config.upstreamPipelining,
    headersTimeout: config.upstreamTimeout,
    bodyTimeout: config.upstreamTimeout,
    connectTimeout: Math.min(config.upstreamTimeout, 10_000),
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 600_000,
    // No redirect interceptor is composed in: a 3xx goes back to the client as it came.
  });
}
