/**
 * Rules that pick the account for a request that does not name one (`--account-routes`), tried in
 * order, the first match wins. Each rule is `MATCH=ACCOUNT`, ACCOUNT a user id or nickname:
 *
 *   client:<address or CIDR>=ACCOUNT     the client address (after --trust-proxy resolution)
 *   path:<prefix>=ACCOUNT                the path is the prefix, or continues it after a `/`
 *   header:<name>:<value>=ACCOUNT        the request carries that header with exactly that value
 *
 * A rule naming an account the proxy does not hold refuses the request: it never falls back to
 * another seller's token.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import { parseIpRange } from '../limits/ip.js';
import { compileTrust } from '../server/trusted-proxies.js';

export type AccountRoute =
  | { kind: 'client'; range: string; account: string }
  | { kind: 'path'; prefix: string; account: string }
  | { kind: 'header'; name: string; value: string; account: string };

const ACCOUNT_REF = /^[A-Za-z0-9._-]{1,64}$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

export const ACCOUNT_ROUTE_SYNTAX =
  'client:<address or CIDR>=ACCOUNT, path:<prefix>=ACCOUNT or header:<name>:<value>=ACCOUNT (ACCOUNT a user id or nickname)';

/** Parses one rule; a string says what is wrong with it. */
export function parseAccountRoute(input: string): AccountRoute | string {
  const text = input.trim();
  const equals = text.lastIndexOf('=');
  if (equals < 0) return 'expected MATCH=ACCOUNT';
  const match = text.slice(0, equals).trim();
  const account = text.slice(equals + 1).trim();
  if (!ACCOUNT_REF.test(account)) return `"${account}" is not a user id or nickname`;
  const colon = match.indexOf(':');
  const kind = colon < 0 ? match : match.slice(0, colon);
  const rest = colon < 0 ? '' : match.slice(colon + 1);
  if (kind === 'client') {
    const range = parseIpRange(rest);
    return typeof range === 'string' ? `client "${rest}": ${range}` : { kind, range: rest, account };
  }
  if (kind === 'path') {
    if (!rest.startsWith('/')) return `path "${rest}" must start with /`;
    return { kind, prefix: rest.endsWith('/') && rest.length > 1 ? rest.slice(0, -1) : rest, account };
  }
  if (kind === 'header') {
    const split = rest.indexOf(':');
    const name = split < 0 ? rest : rest.slice(0, split);
    if (split < 0 || !HEADER_NAME.test(name)) return `header rule "${rest}" must be header:<name>:<value>`;
    return { kind, name: name.toLowerCase(), value: rest.slice(split + 1), account };
  }
  return `unknown match "${kind}": expected client:, path: or header:`;
}

/** A user id or nickname (or auto / none for --default-account). */
export const accountRef = z
  .union([z.string(), z.number()])
  .transform((value) => String(value).trim())
  .pipe(z.string().regex(ACCOUNT_REF));

/** The setting's value kind: a list (file) or comma-separated text of rules. */
export const accountRouteList = z
  .union([z.array(z.union([z.string(), z.number()])), z.string()])
  .transform((value, ctx): AccountRoute[] => {
    const items = Array.isArray(value) ? value.map(String) : value.split(',');
    const routes: AccountRoute[] = [];
    for (const item of items) {
      if (item.trim() === '') continue;
      const route = parseAccountRoute(item);
      if (typeof route === 'string') {
        ctx.addIssue({
          code: 'custom',
          message: `${JSON.stringify(item.trim())}: ${route}`,
          params: { detail: true },
        });
        return z.NEVER;
      }
      routes.push(route);
    }
    return routes;
  });

export interface RoutedRequest {
  clientIp: string;
  /** The path, without the query. */
  path: string;
  headers: IncomingHttpHeaders;
}

/** A function giving the account a request's first matching rule names, or undefined. */
export function compileAccountRoutes(
  routes: readonly AccountRoute[],
): (request: RoutedRequest) => string | undefined {
  const tests = routes.map((route): ((request: RoutedRequest) => boolean) => {
    if (route.kind === 'client') {
      const inRange = compileTrust([route.range]);
      return (request) => inRange(request.clientIp);
    }
    if (route.kind === 'path') {
      const { prefix } = route;
      return (request) =>
        prefix === '/' ||
        (request.path.startsWith(prefix) &&
          (request.path.length === prefix.length || request.path[prefix.length] === '/'));
    }
    const { name, value } = route;
    return (request) => {
      const sent = request.headers[name];
      return Array.isArray(sent) ? sent.includes(value) : sent === value;
    };
  });
  return (request) => {
    for (let i = 0; i < tests.length; i++) if (tests[i]!(request)) return routes[i]!.account;
    return undefined;
  };
}
