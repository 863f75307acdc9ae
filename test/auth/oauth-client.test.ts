import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createAuthorizationRequest,
  createOAuthConfiguration,
  exchangeCode,
  fetchCurrentUser,
  OAuthError,
  refreshGrant,
  resolveEndpoints,
} from '../../src/auth/oauth-client.js';
import { findSite, SITES } from '../../src/auth/sites.js';
import { UsageError } from '../../src/errors.js';
import { clickThrough, type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { TEST_SECRETS } from '../support/secrets.js';

describe('sites and endpoints', () => {
  it('has one authorization endpoint per site, on the site domain', () => {
    expect(findSite('mla')?.authorizationUrl).toBe('https://auth.mercadolibre.com.ar/authorization');
    expect(findSite('MLB')?.authorizationUrl).toBe('https://auth.mercadolivre.com.br/authorization');
    expect(findSite('MLM')?.authorizationUrl).toBe('https://auth.mercadolibre.com.mx/authorization');
    expect(new Set(SITES.map((site) => site.id)).size).toBe(SITES.length);
    const endpoints = resolveEndpoints({ site: 'MLB' });
    expect(endpoints.tokenUrl.href).toBe('https://api.mercadolibre.com/oauth/token');
    expect(endpoints.apiUrl.href).toBe('https://api.mercadolibre.com/');
  });

  it('refuses an unknown site and plain http off loopback', () => {
    expect(() => resolveEndpoints({ site: 'XYZ' })).toThrow(/Unknown --site "XYZ".*MLA \(Argentina\)/);
    expect(() =>
      resolveEndpoints({ site: 'MLA', tokenUrl: 'http://mirror.example.com/oauth/token' }),
    ).toThrow(UsageError);
    expect(() =>
      resolveEndpoints({ site: 'MLA', authUrl: 'http://127.0.0.1:9/authorization' }),
    ).not.toThrow();
    expect(() => resolveEndpoints({ site: 'MLA', apiUrl: 'http://[::1]:9' })).not.toThrow();
  });
});

describe('OAuth client against the fake MercadoLibre', () => {
  let meli: FakeMeli;
  const redirectUri = new URL('https://localhost:8765/callback');

  beforeAll(async () => {
    meli = await startFakeMeli({
      clients: [{ id: '1234567890', secret: TEST_SECRETS.clientSecret, redirectUris: [redirectUri.href] }],
    });
  });
  afterAll(async () => {
    await meli.close();
  });

  const configurationFor = (peer: FakeMeli) =>
    createOAuthConfiguration({
      endpoints: resolveEndpoints({ site: 'MLA', authUrl: peer.authorizationUrl, tokenUrl: peer.tokenUrl }),
      clientId: peer.client.id,
      clientSecret: peer.client.secret,
    });

  const configuration = (secret = meli.client.secret) =>
    createOAuthConfiguration({
      endpoints: resolveEndpoints({
        site: 'MLA',
        authUrl: meli.authorizationUrl,
        tokenUrl: meli.tokenUrl,
        apiUrl: meli.apiUrl,
      }),
      clientId: meli.client.id,
      clientSecret: secret,
    });

  it('builds the authorization URL with state and a PKCE S256 challenge', async () => {
    const request = await createAuthorizationRequest(configuration(), redirectUri);
    const params = request.url.searchParams;
    expect(request.url.origin + request.url.pathname).toBe(meli.authorizationUrl);
    expect(params.get('response_type')).toBe('code');
    expect(params.get('client_id')).toBe(meli.client.id);
    expect(params.get('redirect_uri')).toBe(redirectUri.href);
    expect(params.get('state')).toBe(request.state);
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.has('client_secret')).toBe(false);
  });

  it('logs in, reads /users/me, refreshes once per refresh token', async () => {
    const config = configuration();
    const request = await createAuthorizationRequest(config, redirectUri);
    const redirect = await clickThrough(request.url, 'allow');
    const grant = await exchangeCode(config, request, redirect.searchParams);
    expect(grant.accessToken).toMatch(/^APP_USR-/);
    expect(grant.refreshToken).toMatch(/^TG-/);
    expect(grant.expiresIn).toBe(21_600);
    expect(grant.userId).toBe(String(meli.user.id));
    expect(grant.scope).toBe('offline_access read write');

    const me = await fetchCurrentUser(config, new URL(meli.apiUrl), grant.accessToken);
    expect(me).toEqual({ id: String(meli.user.id), nickname: meli.user.nickname, siteId: 'MLA' });

    const refreshed = await refreshGrant(config, grant.refreshToken!);
    expect(refreshed.refreshToken).not.toBe(grant.refreshToken);
    // As at MercadoLibre, the access token of the spent pair stops working; the new one works.
    await expect(fetchCurrentUser(config, new URL(meli.apiUrl), grant.accessToken)).rejects.toMatchObject({
      code: 'unauthorized',
    });
    expect((await fetchCurrentUser(config, new URL(meli.apiUrl), refreshed.accessToken)).id).toBe(
      String(meli.user.id),
    );
    const reuse = await refreshGrant(config, grant.refreshToken!).catch((error: unknown) => error);
    expect(reuse).toBeInstanceOf(OAuthError);
    expect((reuse as OAuthError).code).toBe('invalid_grant');
    expect((reuse as OAuthError).status).toBe(400);
    expect((reuse as OAuthError).message).toMatch(/already used.*auth login/);
    expect((reuse as OAuthError).message).not.toContain(grant.refreshToken!);
  });

  it('accepts only the registered redirect URI, exactly, and only https', async () => {
    const config = configuration();
    for (const other of [
      'https://localhost:8766/callback',
      'https://localhost:8765/callback/',
      'http://localhost:8765/callback',
      'http://127.0.0.1:8765/callback',
    ]) {
      const request = await createAuthorizationRequest(config, new URL(other));
      await expect(clickThrough(request.url, 'allow'), other).rejects.toThrow(/answered 400.*redirect_uri/);
    }
    expect(() => meli.registerRedirectUri('http://127.0.0.1:9/cb')).toThrow(/must be https/);
    const loose = await startFakeMeli({ loopbackRedirects: true });
    try {
      const request = await createAuthorizationRequest(
        configurationFor(loose),
        new URL('http://127.0.0.1:9/callback'),
      );
      expect((await clickThrough(request.url, 'allow')).searchParams.has('code')).toBe(true);
    } finally {
      await loose.close();
    }
  });

  it('uses a code only once', async () => {
    const config = configuration();
    const request = await createAuthorizationRequest(config, redirectUri);
    const redirect = await clickThrough(request.url, 'allow');
    await exchangeCode(config, request, redirect.searchParams);
    const again = await exchangeCode(config, request, redirect.searchParams).catch((error: unknown) => error);
    expect((again as OAuthError).code).toBe('invalid_grant');
    expect((again as Error).message).not.toContain(redirect.searchParams.get('code')!);
  });

  it('reports a denial, a wrong state and a bad client secret, each in its own words', async () => {
    const config = configuration();
    const request = await createAuthorizationRequest(config, redirectUri);
    const denied = await clickThrough(request.url, 'deny');
    await expect(exchangeCode(config, request, denied.searchParams)).rejects.toMatchObject({
      code: 'access_denied',
      message: expect.stringMatching(/denied.*choose Allow/),
    });

    const other = await createAuthorizationRequest(config, redirectUri);
    const allowed = await clickThrough(other.url, 'allow');
    await expect(exchangeCode(config, request, allowed.searchParams)).rejects.toMatchObject({
      code: 'state_mismatch',
    });

    const wrongSecret = configuration('not-the-secret');
    const third = await createAuthorizationRequest(wrongSecret, redirectUri);
    const redirect = await clickThrough(third.url, 'allow');
    const failure = await exchangeCode(wrongSecret, third, redirect.searchParams).catch(
      (error: unknown) => error,
    );
    expect((failure as OAuthError).code).toBe('invalid_client');
    expect((failure as Error).message).toMatch(/MELI_CLIENT_SECRET/);
    expect((failure as Error).message).not.toContain('not-the-secret');
  });

  it('checks the PKCE verifier', async () => {
    const config = configuration();
    const request = await createAuthorizationRequest(config, redirectUri);
    const redirect = await clickThrough(request.url, 'allow');
    const tampered = { ...request, codeVerifier: `${request.codeVerifier.slice(0, -1)}x` };
    await expect(exchangeCode(config, tampered, redirect.searchParams)).rejects.toMatchObject({
      code: 'invalid_grant',
    });
  });

  it('says when the token endpoint cannot be reached', async () => {
    const closed = await closedPort();
    const config = createOAuthConfiguration({
      endpoints: resolveEndpoints({ site: 'MLA', tokenUrl: `http://127.0.0.1:${closed}/oauth/token` }),
      clientId: 'x',
      clientSecret: 'y',
    });
    await expect(refreshGrant(config, 'TG-whatever')).rejects.toMatchObject({
      code: 'unreachable',
      message: expect.stringMatching(/ECONNREFUSED/),
    });
  });
});

/** A port nothing listens on (just freed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
