import { Pool } from 'undici';
import type { Config } from '../config.js';

/**
 * One keep-alive HTTP/1.1 pool to the configured upstream; the only destination the proxy knows.
 *
 * Never pipelined: behind a pipelined request, bytes an upstream sends past the end of one
 * response (a wrong Content-Length, a body after a HEAD answer) would be read as the response to
 * the next request, another client's. One request per connection at a time lets undici treat
 * such bytes as the protocol error they are and close the connection.
 */
export function createUpstreamPool(config: Config): Pool {
  return new Pool(config.upstream.origin, {
    connections: config.upstreamConnections,
    pipelining: 1,
    headersTimeout: config.upstreamTimeout,
    bodyTimeout: config.upstreamTimeout,
    connectTimeout: Math.min(config.upstreamTimeout, 10_000),
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 600_000,
    // No redirect interceptor is composed in: a 3xx goes back to the client as it came.
  });
}
