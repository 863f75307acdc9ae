/**
 * The same client code against an authorization server nobody here wrote (oidc-provider 9):
 * login with PKCE, refresh with rotation, and the old refresh token refused afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createAuthorizationRequest,
  createOAuthConfiguration,
  exchangeCode,
  OAuthError,
  refreshGrant,
  resolveEndpoints,
} from '../../src/auth/oauth-client.js';
import { tokenRefresher } from '../../src/auth/proxy-auth.js';
import { tokenFromLogin } from '../../src/auth/token-store.js';
import { type OidcPeer, startOidcProvider } from '../peers/oauth-oidc-provider.js';

describe('OAuth client against oidc-provider', () => {
  let peer: OidcPeer;
  const redirectUri = new URL('http://127.0.0.1:8765/callback');
  const scope = { scope: 'offline_access read' };

  beforeAll(async () => {
    peer = await startOidcProvider();
  });
  afterAll(async () => {
    await peer?.close();
  });

  const configuration = () =>
    createOAuthConfiguration({
      endpoints: resolveEndpoints({ site: 'MLA', authUrl: peer.authorizationUrl, tokenUrl: peer.tokenUrl }),
      clientId: peer.clientId,
      clientSecret: peer.clientSecret,
    });

  it('logs in with PKCE, refreshes with rotation, and the old refresh token is refused', async () => {
    const config = configuration();
    const request = await createAuthorizationRequest(config, redirectUri, scope);
    const redirect = await peer.authorize(request.url, 'allow');
    expect(redirect.origin + redirect.pathname).toBe(redirectUri.href);
    // oidc-provider names itself in the redirect (RFC 9207); openid-client checks it.
    expect(redirect.searchParams.get('iss')).toBe(peer.issuer);

    const grant = await exchangeCode(config, request, redirect.searchParams);
    expect(grant.accessToken.length).toBeGreaterThan(10);
    expect(grant.refreshToken).toBeDefined();
    expect(grant.expiresIn).toBe(60);

    const first = await refreshGrant(config, grant.refreshToken!);
    expect(first.refreshToken).toBeDefined();
    expect(first.refreshToken).not.toBe(grant.refreshToken);
    expect(first.accessToken).not.toBe(grant.accessToken);

    const reuse = await refreshGrant(config, grant.refreshToken!).catch((error: unknown) => error);
    expect(reuse).toBeInstanceOf(OAuthError);
    expect((reuse as OAuthError).code).toBe('invalid_grant');
    expect((reuse as OAuthError).message).not.toContain(grant.refreshToken!);
  });

  it('refreshes through the proxy refresher (the code serve --inject-token uses)', async () => {
    const config = configuration();
    const request = await createAuthorizationRequest(config, redirectUri, scope);
    const redirect = await peer.authorize(request.url, 'allow');
    const grant = await exchangeCode(config, request, redirect.searchParams);
    const stored = tokenFromLogin({ grant, sentAt: Date.now(), clientId: peer.clientId });
    const refresher = tokenRefresher({ tokenUrl: new URL(peer.tokenUrl), clientSecret: peer.clientSecret });
    const next = await refresher(stored);
    expect(next.refreshToken).toBeDefined();
    expect(next.refreshToken).not.toBe(grant.refreshToken);
    await expect(refresher(stored)).rejects.toMatchObject({ code: 'invalid_grant' });
  });

  it('reports a denied authorization', async () => {
    const config = configuration();
    const request = await createAuthorizationRequest(config, redirectUri, scope);
    const redirect = await peer.authorize(request.url, 'deny');
    expect(redirect.searchParams.get('error')).toBe('access_denied');
    await expect(exchangeCode(config, request, redirect.searchParams)).rejects.toMatchObject({
      code: 'access_denied',
    });
  });
});
