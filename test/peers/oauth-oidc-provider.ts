/**
 * An authorization server nobody here wrote: panva's oidc-provider 9, on 127.0.0.1, configured the
 * way MercadoLibre behaves where it matters to us: authorization code with PKCE S256 required,
 * client_secret_post, refresh tokens issued on every grant and rotated on every use (reusing an
 * old one is refused, and oidc-provider then revokes the whole grant).
 *
 * Its development interactions (a login form and a consent form) are driven over HTTP with a small
 * cookie jar, as a browser would: `authorize(url, 'allow' | 'deny')` resolves with the URL the
 * browser is finally redirected to.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { TEST_SECRETS } from '../support/secrets.js';

export interface OidcPeer {
  issuer: string;
  authorizationUrl: string;
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Registered redirect URI (a native client: any loopback port is accepted). */
  redirectUri: string;
  authorize(authorizationUrl: URL | string, decision: 'allow' | 'deny'): Promise<URL>;
  close(): Promise<void>;
}

export interface OidcPeerOptions {
  /** Access token lifetime, seconds. Default 60. */
  accessTokenTtl?: number;
}

const CLIENT_ID = 'meli-proxy-test';
const CLIENT_SECRET = TEST_SECRETS.clientSecret;
const REDIRECT_URI = 'http://127.0.0.1/callback';

export async function startOidcProvider(options: OidcPeerOptions = {}): Promise<OidcPeer> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        application_type: 'native',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    pkce: { required: () => true },
    scopes: ['offline_access', 'read', 'write'],
    // MercadoLibre hands out a refresh token with every grant and replaces it on every refresh.
    issueRefreshToken: async () => true,
    rotateRefreshToken: true,
    ttl: {
      AccessToken: options.accessTokenTtl ?? 60,
      AuthorizationCode: 60,
      RefreshToken: 3600,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
    },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['test-cookie-key-not-secret'] },
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => ({ sub }),
    }),
  });
  server.on('request', provider.callback());

  return {
    issuer,
    authorizationUrl: `${issuer}/auth`,
    tokenUrl: `${issuer}/token`,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUri: REDIRECT_URI,
    authorize: (url, decision) => driveInteractions(new URL(url), decision),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Follows redirects and submits the login and consent forms, keeping cookies like a browser. */
async function driveInteractions(start: URL, decision: 'allow' | 'deny'): Promise<URL> {
  const jar = new Map<string, string>();
  const origin = start.origin;
  let next: { url: URL; method: 'GET' | 'POST'; body?: URLSearchParams } = { url: start, method: 'GET' };
  for (let step = 0; step < 20; step++) {
    const response = await fetch(next.url, {
      method: next.method,
      redirect: 'manual',
      headers: {
        cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; '),
        ...(next.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      body: next.body?.toString(),
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const index = pair!.indexOf('=');
      jar.set(pair!.slice(0, index).trim(), pair!.slice(index + 1).trim());
    }
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      const target = new URL(location, next.url);
      // Leaving the provider: this is the redirect back to the client.
      if (target.origin !== origin) return target;
      next = { url: target, method: 'GET' };
      continue;
    }
    const html = await response.text();
    if (response.status !== 200)
      throw new Error(`oidc-provider answered ${response.status}: ${html.slice(0, 500)}`);
    const interaction = /\/interaction\/([^/?#"]+)/.exec(next.url.pathname)?.[1];
    if (!interaction) throw new Error(`unexpected page at ${next.url.href}`);
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
    if (decision === 'deny') {
      next = { url: new URL(`/interaction/${interaction}/abort`, origin), method: 'GET' };
    } else if (prompt === 'login') {
      next = {
        url: new URL(`/interaction/${interaction}`, origin),
        method: 'POST',
        body: new URLSearchParams({ prompt: 'login', login: 'TESTUSER_OIDC', password: 'any' }),
      };
    } else if (prompt === 'consent') {
      next = {
        url: new URL(`/interaction/${interaction}`, origin),
        method: 'POST',
        body: new URLSearchParams({ prompt: 'consent' }),
      };
    } else {
      throw new Error(`unexpected interaction page (prompt ${prompt ?? 'none'})`);
    }
  }
  throw new Error('too many steps before the redirect back to the client');
}
