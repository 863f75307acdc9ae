/**
 * A stand-in for MercadoLibre's OAuth 2.0 server and API: real HTTP/1.1 on 127.0.0.1, a free port.
 *
 *   GET  /authorization        the login page: client_id, redirect_uri, state, PKCE S256 challenge
 *                              checked; an "Allow" and a "Deny" button (a form posting to …/decide)
 *   POST /authorization/decide 302 to the redirect URI with code+state, or error=access_denied+state
 *   POST /oauth/token          MercadoLibre's semantics: form body, client_id+client_secret in the
 *                              body, PKCE verification, codes usable once, single-use refresh tokens
 *                              (each refresh returns a new one), configurable expires_in, errors as
 *                              {"message","error","status","cause":[]}
 *   GET  /users/me             {id, nickname, site_id, …} of the bearer's user, 401 if not valid
 *   anything else              the "API": 200 JSON for a valid bearer or none (with the bearer's
 *                              user_id, so a test sees whose token arrived), 401 for an expired or
 *                              unknown one; counted, so a test can tell how many requests were sent
 *                              with an expired token
 *
 * Several users (sellers) may be known: a browser login authorizes the one loginAs() names, every
 * token belongs to one user, and revokeUser() plays a seller revoking the application.
 *
 * As strict as MercadoLibre, not more lenient: refresh tokens are single use (a reuse is
 * invalid_grant), the access token issued with a refresh token stops working once that refresh
 * token is traded for a new pair, and redirect URIs must match a registered one exactly and be
 * https. `loopbackRedirects` is the explicit test-only switch that also accepts any http(s) URI on
 * 127.0.0.1 or localhost, whatever its port (for listeners on a port picked at run time).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { registerSecret, TEST_SECRETS } from '../support/secrets.js';
import {
  base64urlSha256,
  escapeHtml,
  isLoopbackRedirect,
  meliError,
  random,
  readBody,
  registrable,
  sendHtml,
  sendJson,
} from './oauth-http.js';

export interface FakeClient {
  id: string;
  secret: string;
  /** Registered redirect URIs, matched exactly; each must be https. */
  redirectUris?: string[];
}

export interface FakeUser {
  id: number;
  nickname: string;
  site_id: string;
}

export interface FakeMeliOptions {
  clients?: FakeClient[];
  /** The user a browser login authorizes, until loginAs() names another. */
  user?: FakeUser;
  /** More users (sellers) the server knows; tokens are issued per user. */
  users?: FakeUser[];
  /** Lifetime of access tokens, in seconds. Default 21600 (6 h). */
  expiresIn?: number;
  scope?: string;
  /** Test-only: also accept any http(s) redirect URI on 127.0.0.1/localhost, any port. Default off. */
  loopbackRedirects?: boolean;
}

export interface FakeMeliStats {
  authorizationPages: number;
  codeExchanges: number;
  refreshCalls: number;
  /** How many refresh calls presented each refresh token: every value must be 1 in a healthy fleet. */
  refreshCallsByToken: Map<string, number>;
  invalidGrants: number;
  invalidClients: number;
  usersMe: number;
  /** API requests by the bearer they carried. */
  validTokenRequests: number;
  expiredTokenRequests: number;
  /** Sent with an access token whose refresh token was traded since (the pair was replaced). */
  revokedTokenRequests: number;
  unknownTokenRequests: number;
  anonymousRequests: number;
  /** API requests that arrived still carrying X-Meli-Account (the proxy must strip it). */
  accountHeaderRequests: number;
  /** Valid API requests by the user id of their bearer. */
  requestsByUser: Map<number, number>;
}

export interface FakeMeli {
  /** `http://127.0.0.1:PORT` */
  url: string;
  authorizationUrl: string;
  tokenUrl: string;
  /** Base of the API (`/users/me` and every other path). */
  apiUrl: string;
  client: FakeClient;
  user: FakeUser;
  stats: FakeMeliStats;
  /** Lifetime of tokens issued from now on. */
  setExpiresIn(seconds: number): void;
  /** How long the token endpoint takes to answer a refresh from now on (default 0). */
  setRefreshDelay(ms: number): void;
  /** Registers one more redirect URI for the default client (https, matched exactly). */
  registerRedirectUri(uri: string): void;
  /** Issues a token pair without the browser, as a completed login would (for `userId`: default the login user). */
  issueTokens(clientId?: string, userId?: number): TokenResponse;
  /** Every user the server knows, the login user first. */
  users: FakeUser[];
  /** The user the next browser logins authorize. */
  loginAs(userId: number): void;
  /** The user revokes the application: every refresh token of theirs is refused from now on. */
  revokeUser(userId: number): void;
  /** Expires every access token issued so far. */
  expireAccessTokens(): void;
  resetStats(): void;
  close(): Promise<void>;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  user_id: number;
  refresh_token: string;
}

interface PendingAuthorization {
  clientId: string;
  redirectUri: string;
  state: string | null;
  codeChallenge: string;
}

interface IssuedCode {
  clientId: string;
  userId: number;
  redirectUri: string;
  codeChallenge: string;
  expiresAt: number;
  used: boolean;
}

const DEFAULT_CLIENT: FakeClient = { id: '1234567890', secret: TEST_SECRETS.clientSecret };
const DEFAULT_USER: FakeUser = { id: 123456789, nickname: 'TESTUSER_MLA', site_id: 'MLA' };

function emptyStats(): FakeMeliStats {
  return {
    authorizationPages: 0,
    codeExchanges: 0,
    refreshCalls: 0,
    refreshCallsByToken: new Map(),
    invalidGrants: 0,
    invalidClients: 0,
    usersMe: 0,
    validTokenRequests: 0,
    expiredTokenRequests: 0,
    revokedTokenRequests: 0,
    unknownTokenRequests: 0,
    anonymousRequests: 0,
    accountHeaderRequests: 0,
    requestsByUser: new Map(),
  };
}

export async function startFakeMeli(options: FakeMeliOptions = {}): Promise<FakeMeli> {
  const clients = (options.clients ?? [DEFAULT_CLIENT]).map((entry) => ({
    ...entry,
    redirectUris: (entry.redirectUris ?? []).map(registrable),
  }));
  const client = clients[0]!;
  const user = options.user ?? DEFAULT_USER;
  const users = [user, ...(options.users ?? []).filter((other) => other.id !== user.id)];
  let loginUser = user;
  const revokedUsers = new Set<number>();
  const userById = (id: number): FakeUser => {
    const found = users.find((candidate) => candidate.id === id);
    if (!found) throw new Error(`the fake MercadoLibre knows no user ${id}`);
    return found;
  };
  const scope = options.scope ?? 'offline_access read write';
  let expiresIn = options.expiresIn ?? 21_600;
  let refreshDelayMs = 0;
  let stats = emptyStats();
  const pending = new Map<string, PendingAuthorization>();
  const codes = new Map<string, IssuedCode>();
  const accessTokens = new Map<
    string,
    { expiresAt: number; clientId: string; revoked: boolean; userId: number }
  >();
  const refreshTokens = new Map<
    string,
    { clientId: string; used: boolean; accessToken: string; userId: number }
  >();

  const issueTokens = (clientId: string, userId = loginUser.id): TokenResponse => {
    const accessToken = random(`APP_USR-${clientId}-`);
    const refreshToken = random('TG-');
    // Issued tokens are secrets too: the run's final scan looks for them in every captured log.
    registerSecret('fake MercadoLibre access token', accessToken);
    registerSecret('fake MercadoLibre refresh token', refreshToken);
    accessTokens.set(accessToken, {
      expiresAt: Date.now() + expiresIn * 1000,
      clientId,
      revoked: false,
      userId,
    });
    refreshTokens.set(refreshToken, { clientId, used: false, accessToken, userId });
    return {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: expiresIn,
      scope,
      user_id: userId,
      refresh_token: refreshToken,
    };
  };

  /** The user whose access token the request carries, if it is one this server issued. */
  const bearerUser = (req: IncomingMessage): number | undefined => {
    const match = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '');
    return match ? accessTokens.get(match[1]!)?.userId : undefined;
  };

  const bearerState = (req: IncomingMessage): 'none' | 'valid' | 'expired' | 'revoked' | 'unknown' => {
    const header = req.headers.authorization;
    if (!header) return 'none';
    const match = /^Bearer (.+)$/i.exec(header);
    const entry = match ? accessTokens.get(match[1]!) : undefined;
    if (!entry) return 'unknown';
    if (entry.revoked) return 'revoked';
    return entry.expiresAt > Date.now() ? 'valid' : 'expired';
  };

  const authorizationPage = (url: URL, res: ServerResponse): void => {
    stats.authorizationPages++;
    const params = url.searchParams;
    const found = clients.find((candidate) => candidate.id === params.get('client_id'));
    const redirectUri = params.get('redirect_uri') ?? '';
    if (!found) {
      sendHtml(res, 400, '<h1>Invalid client_id</h1>');
      return;
    }
    const allowed =
      found.redirectUris.includes(redirectUri) ||
      (options.loopbackRedirects === true && isLoopbackRedirect(redirectUri));
    if (!allowed) {
      // Never redirect to an unregistered URI: show the error here instead.
      sendHtml(
        res,
        400,
        '<h1>Invalid redirect_uri</h1><p>The redirect_uri does not match the application.</p>',
      );
      return;
    }
    if (params.get('response_type') !== 'code') {
      sendHtml(res, 400, '<h1>Unsupported response_type</h1>');
      return;
    }
    const codeChallenge = params.get('code_challenge');
    if (!codeChallenge || params.get('code_challenge_method') !== 'S256') {
      sendHtml(
        res,
        400,
        '<h1>PKCE required</h1><p>code_challenge with code_challenge_method=S256 is required.</p>',
      );
      return;
    }
    const id = random('req-');
    pending.set(id, { clientId: found.id, redirectUri, state: params.get('state'), codeChallenge });
    sendHtml(
      res,
      200,
      `<!doctype html><html><head><meta charset="utf-8"><title>Autorizar aplicación</title></head><body>
<h1>¿Autorizar la aplicación ${escapeHtml(found.id)}?</h1>
<p>Ingresaste como ${escapeHtml(loginUser.nickname)}.</p>
<form method="post" action="/authorization/decide">
<input type="hidden" name="request" value="${escapeHtml(id)}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form></body></html>`,
    );
  };

  const decide = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const form = new URLSearchParams(await readBody(req));
    const id = form.get('request') ?? '';
    const request = pending.get(id);
    if (!request) {
      sendHtml(res, 400, '<h1>This authorization request expired</h1>');
      return;
    }
    pending.delete(id);
    const target = new URL(request.redirectUri);
    if (form.get('decision') === 'allow') {
      const code = random('TG-code-');
      codes.set(code, {
        clientId: request.clientId,
        userId: loginUser.id,
        redirectUri: request.redirectUri,
        codeChallenge: request.codeChallenge,
        expiresAt: Date.now() + 10 * 60_000,
        used: false,
      });
      target.searchParams.set('code', code);
    } else {
      target.searchParams.set('error', 'access_denied');
      target.searchParams.set('error_description', 'The user denied access');
    }
    if (request.state !== null) target.searchParams.set('state', request.state);
    res.writeHead(302, { location: target.href, 'cache-control': 'no-store' });
    res.end();
  };

  const invalidGrant = (res: ServerResponse): void => {
    stats.invalidGrants++;
    meliError(
      res,
      400,
      'invalid_grant',
      'Error validating grant. Your authorization code or refresh token may be expired or it was already used',
    );
  };

  const token = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      meliError(res, 400, 'invalid_request', 'content-type must be application/x-www-form-urlencoded');
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    const found = clients.find((candidate) => candidate.id === form.get('client_id'));
    if (!found || form.get('client_secret') !== found.secret) {
      stats.invalidClients++;
      meliError(res, 401, 'invalid_client', 'invalid client_id or client_secret');
      return;
    }
    const grantType = form.get('grant_type');
    if (grantType === 'authorization_code') {
      stats.codeExchanges++;
      const code = codes.get(form.get('code') ?? '');
      if (!code || code.used || code.expiresAt < Date.now() || code.clientId !== found.id) {
        if (code) code.used = true;
        invalidGrant(res);
        return;
      }
      code.used = true;
      if (form.get('redirect_uri') !== code.redirectUri) {
        invalidGrant(res);
        return;
      }
      const verifier = form.get('code_verifier');
      if (!verifier || base64urlSha256(verifier) !== code.codeChallenge) {
        invalidGrant(res);
        return;
      }
      sendJson(res, 200, issueTokens(found.id, code.userId));
      return;
    }
    if (grantType === 'refresh_token') {
      stats.refreshCalls++;
      if (refreshDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, refreshDelayMs));
      const presented = form.get('refresh_token') ?? '';
      stats.refreshCallsByToken.set(presented, (stats.refreshCallsByToken.get(presented) ?? 0) + 1);
      const entry = refreshTokens.get(presented);
      if (!entry || entry.used || entry.clientId !== found.id || revokedUsers.has(entry.userId)) {
        invalidGrant(res);
        return;
      }
      entry.used = true;
      // The pair is replaced: the access token issued with the spent refresh token stops working.
      const previous = accessTokens.get(entry.accessToken);
      if (previous) previous.revoked = true;
      sendJson(res, 200, issueTokens(found.id, entry.userId));
      return;
    }
    meliError(res, 400, 'unsupported_grant_type', `grant_type ${grantType ?? '(none)'} is not supported`);
  };

  const api = (req: IncomingMessage, res: ServerResponse, url: URL): void => {
    const state = bearerState(req);
    if (url.pathname === '/users/me') {
      stats.usersMe++;
      if (state !== 'valid') {
        meliError(res, 401, 'unauthorized', 'invalid access token');
        return;
      }
      const holder = userById(bearerUser(req) ?? user.id);
      sendJson(res, 200, { ...holder, first_name: 'Test', last_name: 'User', country_id: 'AR' });
      return;
    }
    if (req.headers['x-meli-account'] !== undefined) stats.accountHeaderRequests++;
    if (state === 'valid') {
      const holder = bearerUser(req)!;
      stats.requestsByUser.set(holder, (stats.requestsByUser.get(holder) ?? 0) + 1);
    }
    if (state === 'valid') stats.validTokenRequests++;
    else if (state === 'expired') stats.expiredTokenRequests++;
    else if (state === 'revoked') stats.revokedTokenRequests++;
    else if (state === 'unknown') stats.unknownTokenRequests++;
    else stats.anonymousRequests++;
    if (state !== 'valid' && state !== 'none') {
      meliError(res, 401, 'unauthorized', 'invalid access token');
      return;
    }
    sendJson(res, 200, {
      path: url.pathname,
      authenticated: state === 'valid',
      ...(state === 'valid' ? { user_id: bearerUser(req) } : {}),
    });
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    const route = `${req.method} ${url.pathname}`;
    const handle = async (): Promise<void> => {
      if (route === 'GET /authorization') authorizationPage(url, res);
      else if (route === 'POST /authorization/decide') await decide(req, res);
      else if (route === 'POST /oauth/token') await token(req, res);
      else api(req, res, url);
    };
    handle().catch((error: unknown) => {
      if (!res.headersSent) meliError(res, 500, 'internal_error', String(error));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    authorizationUrl: `${base}/authorization`,
    tokenUrl: `${base}/oauth/token`,
    apiUrl: base,
    client,
    user,
    get stats() {
      return stats;
    },
    setExpiresIn(seconds: number) {
      expiresIn = seconds;
    },
    setRefreshDelay(ms: number) {
      refreshDelayMs = ms;
    },
    registerRedirectUri(uri: string) {
      client.redirectUris.push(registrable(uri));
    },
    issueTokens: (clientId = client.id, userId?: number) => issueTokens(clientId, userId),
    users,
    loginAs(userId: number) {
      loginUser = userById(userId);
    },
    revokeUser(userId: number) {
      revokedUsers.add(userId);
    },
    expireAccessTokens() {
      for (const entry of accessTokens.values()) entry.expiresAt = Math.min(entry.expiresAt, Date.now() - 1);
    },
    resetStats() {
      stats = emptyStats();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export { clickThrough, openRedirect } from './oauth-http.js';
