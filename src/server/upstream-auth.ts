/**
 * How the proxy adds MercadoLibre's bearer token to upstream requests (`serve --inject-token`).
 * The token itself is managed in src/auth; the hot path only reads the current value. With several
 * accounts, `forRequest` picks the account (and so the token) per request.
 */
import type { IncomingMessage } from 'node:http';

/** The header a client names the account with; never forwarded. */
export const ACCOUNT_HEADER = 'x-meli-account';

/** A request naming an account the proxy does not hold: refused, never sent with another's token. */
export interface AccountRefusal {
  status: 403;
  error: 'forbidden';
  message: string;
}

export interface AccountChoice {
  /** The chosen account's token; undefined when the request gets none. */
  auth: UpstreamAuth | undefined;
  /** The account's user id, for the access log. */
  account: string | undefined;
}

export interface UpstreamAuth {
  /** Replace a client's own Authorization header too, not only fill it in when missing. */
  readonly overrideClientToken: boolean;
  /** The `Bearer …` value to send now, or undefined when no valid token is held. Must not block. */
  currentAuthorization(): string | undefined;
  /**
   * When no usable token is held but one may arrive shortly (a refresh in flight), a promise that
   * settles when it does or after a short bound; undefined when there is nothing to wait for.
   */
  authorizationSoon?(): Promise<unknown> | undefined;
  /**
   * Called after the upstream answered 401 to a request sent with `used`: refreshes the token (once
   * across the fleet) or reloads one another replica refreshed, and resolves with the value to retry
   * with, or undefined when there is none.
   */
  refreshAfterUnauthorized(used: string): Promise<string | undefined>;
  /**
   * With several accounts: the account for this request (the ACCOUNT_HEADER, else a routing rule,
   * else the default), or a refusal. Absent with a single token.
   */
  forRequest?(req: IncomingMessage, clientIp: string, path: string): AccountChoice | AccountRefusal;
  /** With several accounts: the nickname of account `id`, when it is held and known. */
  accountName?(id: string): string | undefined;
}

/** Removes the account header from built upstream headers (flat [name, value, …]). */
export function stripAccountHeader(headers: string[]): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    const name = headers[i]!;
    if (name.length === ACCOUNT_HEADER.length && name.toLowerCase() === ACCOUNT_HEADER) headers.splice(i, 2);
  }
}

/** Adds the injected Authorization to built upstream headers; returns its value index, or -1. */
export function injectAuthorization(headers: string[], auth: UpstreamAuth, clientSentOne: boolean): number {
  if (clientSentOne && !auth.overrideClientToken) return -1;
  const value = auth.currentAuthorization();
  if (value === undefined) return -1;
  if (clientSentOne) {
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (headers[i]!.toLowerCase() === 'authorization') headers.splice(i, 2);
    }
  }
  headers.push('authorization', value);
  return headers.length - 1;
}
