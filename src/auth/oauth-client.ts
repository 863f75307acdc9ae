/**
 * MercadoLibre's OAuth 2.0 (authorization code + PKCE S256, single-use refresh tokens) on top of
 * openid-client 6: a static Configuration (MercadoLibre publishes no discovery document) and a few
 * small functions over it. Every failure becomes an OAuthError whose message says what happened and
 * what to do, and never carries a token, a code or the client secret.
 */
import * as oidc from 'openid-client';
import { RuntimeFailure, UsageError } from '../errors.js';
import { isLoopbackHost } from '../net/loopback.js';
import { API_URL, describeSites, findSite, TOKEN_URL } from './sites.js';

export interface OAuthEndpoints {
  authorizationUrl: URL;
  tokenUrl: URL;
  /** Base URL of the API that answers `/users/me`. */
  apiUrl: URL;
}

export interface EndpointChoice {
  site: string;
  authUrl?: string | URL | undefined;
  tokenUrl?: string | URL | undefined;
  apiUrl?: string | URL | undefined;
}

/** The endpoints for a site, with any override (tests, self-hosted mirrors) taking precedence. */
export function resolveEndpoints(choice: EndpointChoice): OAuthEndpoints {
  const site = findSite(choice.site);
  if (!site) {
    throw new UsageError(`Unknown --site "${choice.site}": expected one of ${describeSites()}.`);
  }
  return {
    authorizationUrl: endpointUrl('--auth-url', choice.authUrl ?? site.authorizationUrl),
    tokenUrl: endpointUrl('--token-url', choice.tokenUrl ?? TOKEN_URL),
    apiUrl: endpointUrl('--api-url', choice.apiUrl ?? API_URL),
  };
}

function endpointUrl(flag: string, value: string | URL): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`Invalid ${flag} "${String(value)}": expected an absolute https:// URL.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UsageError(`Invalid ${flag} "${url.href}": expected an https:// URL.`);
  }
  if (url.username || url.password || url.hash) {
    throw new UsageError(`Invalid ${flag}: the URL must not contain credentials or a #fragment.`);
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new UsageError(
      `Invalid ${flag} "${url.href}": plain http:// is allowed only on a loopback address (127.0.0.1, ::1, localhost); use https://.`,
    );
  }
  return url;
}

export interface OAuthClientSettings {
  endpoints: OAuthEndpoints;
  clientId: string;
  clientSecret: string;
  /** Bound on each request to the authorization server, in seconds. Default 15. */
  timeoutSeconds?: number;
}

/**
 * openid-client's Configuration for MercadoLibre: the client secret goes in the form body
 * (client_secret_post), as MercadoLibre expects.
 *
 * openid-client refuses http:// endpoints; `allowInsecureRequests` is switched on only when an
 * endpoint is http:// on a loopback address (endpointUrl refuses any other http:// URL), which is
 * what the test peers and a local mirror use. Real MercadoLibre endpoints are always https.
 */
export function createOAuthConfiguration(settings: OAuthClientSettings): oidc.Configuration {
  const { endpoints } = settings;
  const server: oidc.ServerMetadata = {
    // No discovery document: the authorization endpoint's origin stands for the issuer. openid-client
    // compares it with an `iss` parameter only when the server sends one (RFC 9207).
    issuer: endpoints.authorizationUrl.origin,
    authorization_endpoint: endpoints.authorizationUrl.href,
    token_endpoint: endpoints.tokenUrl.href,
  };
  const config = new oidc.Configuration(
    server,
    settings.clientId,
    undefined,
    oidc.ClientSecretPost(settings.clientSecret),
  );
  config.timeout = settings.timeoutSeconds ?? 15;
  const plainHttp = [endpoints.authorizationUrl, endpoints.tokenUrl, endpoints.apiUrl].some(
    (url) => url.protocol === 'http:',
  );
  if (plainHttp) oidc.allowInsecureRequests(config);
  return config;
}

/** What one login attempt must remember between the browser leg and the code exchange. */
export interface AuthorizationRequest {
  url: URL;
  redirectUri: URL;
  state: string;
  codeVerifier: string;
}

/** Builds the authorization URL with a fresh `state` and a PKCE S256 challenge. */
export async function createAuthorizationRequest(
  config: oidc.Configuration,
  redirectUri: URL,
  extraParameters: Record<string, string> = {},
): Promise<AuthorizationRequest> {
  const state = oidc.randomState();
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const codeChallenge = await oidc.calculatePKCECodeChallenge(codeVerifier);
  const url = oidc.buildAuthorizationUrl(config, {
    ...extraParameters,
    redirect_uri: redirectUri.href,
    state,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
  });
  return { url, redirectUri, state, codeVerifier };
}

/** What a token endpoint granted; `expiresIn` in seconds, as sent. */
export interface TokenGrant {
  accessToken: string;
  refreshToken: string | undefined;
  scope: string | undefined;
  expiresIn: number | undefined;
  /** MercadoLibre adds the user id to its token responses. */
  userId: string | undefined;
}

export type OAuthErrorCode =
  | 'access_denied'
  | 'authorization_error'
  | 'state_mismatch'
  | 'invalid_grant'
  | 'invalid_client'
  | 'token_error'
  | 'unauthorized'
  | 'unreachable'
  | 'timeout'
  | 'invalid_response';

/** A failed OAuth step. The message is safe to print and log; there is deliberately no `cause`. */
export class OAuthError extends RuntimeFailure {
  override name = 'OAuthError';
  constructor(
    readonly code: OAuthErrorCode,
    message: string,
    /** The HTTP status of the answer that failed, when there was one. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * Checks the browser's redirect and exchanges its code (with the PKCE verifier) for tokens.
 * `params` are the query parameters of the redirect, however they reached us (listener or paste).
 */
export async function exchangeCode(
  config: oidc.Configuration,
  request: AuthorizationRequest,
  params: URLSearchParams,
): Promise<TokenGrant> {
  // Checked here before openid-client does it again, to give each case its own message.
  if (params.get('state') !== request.state) {
    throw new OAuthError(
      'state_mismatch',
      'The redirect carried a different "state" than this login sent: it comes from another (older) login attempt or was forged. Nothing was exchanged. Run "meli-proxy auth login" again and use only the newest URL.',
    );
  }
  const error = params.get('error');
  if (error !== null) {
    const description = params.get('error_description');
    if (error === 'access_denied') {
      throw new OAuthError(
        'access_denied',
        'Access was denied on the authorization page (error=access_denied). Run "meli-proxy auth login" again and choose Allow, with the MercadoLibre account the proxy should act as.',
      );
    }
    throw new OAuthError(
      'authorization_error',
      `The authorization server refused the request: error=${safeText(error)}${description ? ` (${safeText(description)})` : ''}. Check --client-id and that the redirect URI is registered for the application.`,
    );
  }
  if (!params.get('code')) {
    throw new OAuthError(
      'invalid_response',
      'The redirect carried neither a code nor an error. Paste or open the complete URL the browser was sent to.',
    );
  }
  const currentUrl = new URL(request.redirectUri);
  currentUrl.search = params.toString();
  try {
    const response = await oidc.authorizationCodeGrant(config, currentUrl, {
      pkceCodeVerifier: request.codeVerifier,
      expectedState: request.state,
    });
    return toGrant(response);
  } catch (failure) {
    throw toOAuthError(failure, 'exchanging the authorization code');
  }
}

/** Trades a refresh token for new tokens. MercadoLibre's refresh tokens are single use. */
export async function refreshGrant(config: oidc.Configuration, refreshToken: string): Promise<TokenGrant> {
  try {
    return toGrant(await oidc.refreshTokenGrant(config, refreshToken));
  } catch (failure) {
    throw toOAuthError(failure, 'refreshing the token');
  }
}

/** Who a token belongs to, from MercadoLibre's `/users/me`. */
export interface MeliUser {
  id: string;
  nickname: string | undefined;
  siteId: string | undefined;
}

export async function fetchCurrentUser(
  config: oidc.Configuration,
  apiUrl: URL,
  accessToken: string,
): Promise<MeliUser> {
  const url = new URL('users/me', apiUrl.href.endsWith('/') ? apiUrl : `${apiUrl.href}/`);
  let response: Response;
  try {
    response = await oidc.fetchProtectedResource(config, accessToken, url, 'GET');
  } catch (failure) {
    throw toOAuthError(failure, 'asking /users/me who logged in');
  }
  if (response.status === 401 || response.status === 403) {
    throw new OAuthError(
      'unauthorized',
      `${url.origin}/users/me refused the new token (HTTP ${response.status}). Check that --api-url belongs to the same MercadoLibre as --token-url.`,
      response.status,
    );
  }
  if (!response.ok) {
    throw new OAuthError(
      'invalid_response',
      `${url.origin}/users/me answered HTTP ${response.status}.`,
      response.status,
    );
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new OAuthError('invalid_response', `${url.origin}/users/me did not answer JSON.`);
  }
  const record = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const id = record.id ?? record.sub;
  if (typeof id !== 'string' && typeof id !== 'number') {
    throw new OAuthError('invalid_response', `${url.origin}/users/me answered without a user id.`);
  }
  return {
    id: String(id),
    nickname: typeof record.nickname === 'string' ? record.nickname : undefined,
    siteId: typeof record.site_id === 'string' ? record.site_id : undefined,
  };
}

function toGrant(response: oidc.TokenEndpointResponse): TokenGrant {
  const userId = response.user_id;
  return {
    accessToken: response.access_token,
    refreshToken: response.refresh_token,
    scope: response.scope,
    expiresIn: typeof response.expires_in === 'number' ? response.expires_in : undefined,
    userId: typeof userId === 'string' || typeof userId === 'number' ? String(userId) : undefined,
  };
}

/**
 * Maps openid-client's errors (which may carry response bodies holding tokens in `cause`) to an
 * OAuthError with only the OAuth error code, the status and a short description.
 */
export function toOAuthError(failure: unknown, step: string): OAuthError {
  if (failure instanceof OAuthError) return failure;
  if (failure instanceof oidc.ResponseBodyError) {
    const body = failure.cause;
    // MercadoLibre's error bodies say it in `message`; standard ones in `error_description`.
    const detail = failure.error_description ?? (typeof body.message === 'string' ? body.message : undefined);
    const described = `${safeText(failure.error)}${detail ? `: ${safeText(detail)}` : ''}`;
    if (failure.error === 'invalid_grant') {
      return new OAuthError(
        'invalid_grant',
        `The authorization server rejected the grant while ${step} (HTTP ${failure.status} ${described}). The code or refresh token was already used, has expired or was revoked: run "meli-proxy auth login" again.`,
        failure.status,
      );
    }
    if (failure.error === 'invalid_client' || failure.error === 'unauthorized_client') {
      return new OAuthError(
        'invalid_client',
        `The authorization server rejected the client while ${step} (HTTP ${failure.status} ${described}). Check --client-id and the client secret (MELI_CLIENT_SECRET).`,
        failure.status,
      );
    }
    return new OAuthError(
      'token_error',
      `The authorization server refused while ${step} (HTTP ${failure.status} ${described}).`,
      failure.status,
    );
  }
  if (failure instanceof oidc.AuthorizationResponseError) {
    return new OAuthError(
      'authorization_error',
      `The authorization response was an error: ${safeText(failure.error)}.`,
    );
  }
  if (failure instanceof oidc.WWWAuthenticateChallengeError) {
    return new OAuthError(
      'unauthorized',
      `The server refused the token while ${step} (HTTP ${failure.status}).`,
      failure.status,
    );
  }
  if (failure instanceof Error && (failure.name === 'TimeoutError' || failure.name === 'AbortError')) {
    return new OAuthError('timeout', `The server did not answer in time while ${step}. Try again.`);
  }
  if (failure instanceof TypeError && failure.message === 'fetch failed') {
    const reason = networkReason(failure.cause);
    return new OAuthError(
      'unreachable',
      `Could not reach the server while ${step}${reason ? ` (${reason})` : ''}. Check the network and the endpoint URLs.`,
    );
  }
  if (failure instanceof oidc.ClientError) {
    // openid-client's own messages name the problem ("unexpected HTTP response status code", …).
    return new OAuthError(
      'invalid_response',
      `Unexpected answer while ${step}: ${failure.message} (${failure.code}).`,
    );
  }
  const message = failure instanceof Error ? failure.message : String(failure);
  return new OAuthError('invalid_response', `Unexpected failure while ${step}: ${safeText(message)}.`);
}

function networkReason(cause: unknown): string | undefined {
  if (cause instanceof AggregateError) return networkReason(cause.errors[0]);
  if (cause instanceof Error) return (cause as NodeJS.ErrnoException).code ?? cause.message;
  return undefined;
}

/** Text from a server, trimmed and without control characters, so it cannot mess up a terminal. */
export function safeText(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters on purpose
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}
