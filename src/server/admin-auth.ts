import { createHash, timingSafeEqual } from 'node:crypto';
import { UsageError } from '../errors.js';
import { isLoopbackHost } from '../net/loopback.js';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * Compares a presented bearer token with the configured one in constant time: both sides are
 * hashed first so neither the content nor the length of the secret leaks through timing.
 */
export function bearerMatches(authorization: string | undefined, expected: Buffer): boolean {
  if (!authorization) return false;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
  const presented = digest(match?.[1] ?? '');
  return timingSafeEqual(presented, expected) && match !== null;
}

export function adminTokenDigest(token: string): Buffer {
  return digest(token);
}

/**
 * Refuses an admin API that anyone on the network could reach without a token. Checked before a
 * cluster primary forks its workers (one clear message, not one per worker) and again by every
 * server that starts.
 */
export function assertAdminExposureAllowed(adminHost: string, adminToken: string | undefined): void {
  if (!adminToken && !isLoopbackHost(adminHost)) {
    throw new UsageError(
      `Refusing to serve the admin API on ${adminHost} without an admin token: set MELI_PROXY_ADMIN_TOKEN (or --admin-token), or keep --admin-host on a loopback address.`,
    );
  }
}

/** Whether a Host header names this machine's loopback interface (`127.0.0.1:8081`, `[::1]`, `localhost`). */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (!host) return false;
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:]+))(?::\d{1,5})?$/.exec(host);
  if (!match) return false;
  return isLoopbackHost((match[1] ?? match[2]!).toLowerCase());
}
