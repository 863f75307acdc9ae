/**
 * The traffic shapes the bench measures. `http-1k` is the original one (plain-HTTP origin, 1 KB
 * body, keep-alive clients); the others are production's: an HTTPS upstream, item and search
 * answers of 16 and 64 KB with and without gzip, clients that open a connection per request, and
 * a thousand concurrent keep-alive clients. Every target runs every selected scenario.
 */
import { BODIES, type BodyId } from './bodies.js';
import type { Expectation } from './servers.js';

export const SCENARIO_IDS = [
  'http-1k',
  'https-1k',
  'https-16k',
  'https-16k-gzip',
  'https-64k',
  'https-64k-gzip',
  'https-16k-close',
  'https-16k-c1000',
] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];

export interface Scenario {
  id: ScenarioId;
  /** What the row measures, for the table's heading. */
  label: string;
  /** The proxies forward to the origin over TLS 1.3 (the direct row reaches the origin over HTTP). */
  tls: boolean;
  body: BodyId;
  /** Clients send `Accept-Encoding: gzip` and the origin answers its gzip encoding, passed through. */
  gzip: boolean;
  /** Clients send `Connection: close`: every request on a new client connection. */
  connectionClose: boolean;
  /** Client connections; undefined: the bench's `--connections`. */
  connections: number | undefined;
}

function scenario(
  id: ScenarioId,
  label: string,
  shape: Partial<Omit<Scenario, 'id' | 'label'>> & { body: BodyId },
): Scenario {
  return { id, label, tls: true, gzip: false, connectionClose: false, connections: undefined, ...shape };
}

export const SCENARIOS: Record<ScenarioId, Scenario> = {
  'http-1k': scenario('http-1k', 'plain-HTTP origin, 1 KB, keep-alive', { tls: false, body: '1k' }),
  'https-1k': scenario('https-1k', 'HTTPS origin, 1 KB, keep-alive', { body: '1k' }),
  'https-16k': scenario('https-16k', 'HTTPS origin, 16 KB JSON, keep-alive', { body: '16k' }),
  'https-16k-gzip': scenario('https-16k-gzip', 'HTTPS origin, 16 KB JSON as gzip, keep-alive', {
    body: '16k',
    gzip: true,
  }),
  'https-64k': scenario('https-64k', 'HTTPS origin, 64 KB JSON, keep-alive', { body: '64k' }),
  'https-64k-gzip': scenario('https-64k-gzip', 'HTTPS origin, 64 KB JSON as gzip, keep-alive', {
    body: '64k',
    gzip: true,
  }),
  'https-16k-close': scenario('https-16k-close', 'HTTPS origin, 16 KB, a connection per request', {
    body: '16k',
    connectionClose: true,
  }),
  'https-16k-c1000': scenario('https-16k-c1000', 'HTTPS origin, 16 KB, 1,000 keep-alive connections', {
    body: '16k',
    connections: 1000,
  }),
};

/**
 * The path, request headers and exact answer of a scenario. `http-1k` keeps `--path` (the origin
 * serves the 1 KB body on any path it has no other file for); the others use their body's path.
 */
export function expectationOf(scenario: Scenario, path1k: string): Expectation & { path: string } {
  const body = BODIES[scenario.body];
  const headers: Record<string, string> = {};
  if (scenario.gzip) headers['accept-encoding'] = 'gzip';
  if (scenario.connectionClose) headers.connection = 'close';
  return {
    path: scenario.body === '1k' ? path1k : body.path,
    headers,
    body: scenario.gzip ? body.gzip : body.plain,
  };
}
