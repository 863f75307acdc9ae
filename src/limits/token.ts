/**
 * Bearer tokens are secrets: rules and counter keys only ever hold their SHA-256 hex digest, and the
 * hash is computed lazily by the request descriptor because most requests hit no token rule.
 */
import { createHash } from 'node:crypto';

export const TOKEN_HASH_PATTERN = /^[0-9a-f]{64}$/;

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The hash of the token in an `Authorization: Bearer <token>` value; `undefined` for other schemes. */
export function bearerTokenHash(authorization: string | undefined): string | undefined {
  if (authorization === undefined || authorization.length < 8) return undefined;
  if (authorization.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
  const token = authorization.slice(7).trim();
  return token === '' ? undefined : hashToken(token);
}
