/**
 * `serve --inject-token` with two MercadoLibre accounts (in this process, real sockets, the fake
 * MercadoLibre as token endpoint and origin): the token that reaches the origin is the one of the
 * account the request names (X-Meli-Account, never forwarded), a rule chooses, or the default; an
 * unknown account is refused and no token goes out; a seller who revoked the application is marked
 * and reported while the other account keeps working.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyTokenAuth } from '../../src/auth/proxy-auth.js';
import type { RunningServer } from '../../src/server/index.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { LogCapture } from '../support/proxy.js';
import { startInjectingProxy } from './helpers/inject.js';
import { fileAccounts, loggedInToken } from './helpers/tokens.js';

const SELLER_B = { id: 222333444, nickname: 'SELLER_B', site_id: 'MLB' };

describe('serve --inject-token with several accounts', () => {
  let meli: FakeMeli;
  let dir: string;
  let server: RunningServer | undefined;
  let auth: ProxyTokenAuth | undefined;
  let logs: LogCapture;
  let a: string;
  const b = String(SELLER_B.id);

  beforeAll(async () => {
    meli = await startFakeMeli({ users: [SELLER_B] });
    a = String(meli.user.id);
  });
  afterAll(async () => {
    await meli?.close();
  });
  afterEach(async () => {
    await server?.shutdown('test over');
    server = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function start(flags: Record<string, unknown>, lifetimeAgoMs = 0): Promise<void> {
    dir = await mkdtemp(path.join(tmpdir(), 'meli-accounts-serve-'));
    const accounts = fileAccounts(dir);
    await accounts.saveLogin(loggedInToken(meli, Date.now() - lifetimeAgoMs));
    await accounts.saveLogin(loggedInToken(meli, Date.now(), SELLER_B.id));
    logs = new LogCapture();
    meli.resetStats();
    ({ server, auth } = await startInjectingProxy(meli, dir, logs, undefined, flags));
  }

  async function whose(target: string, headers: Record<string, string> = {}): Promise<unknown> {
    const response = await fetch(`${server!.proxyUrl}${target}`, { headers });
    const body = (await response.json()) as { user_id?: number };
    return response.status === 200 ? (body.user_id ?? 'anonymous') : { status: response.status, body };
  }

  it('sends the bearer of the account named by header, by rule, or the default', async () => {
    await start({ accountRoutes: 'path:/orders=seller_b,header:x-tenant:acme=SELLER_B,path:/ghost=NOBODY' });
    expect(await whose('/items/MLA1')).toBe(meli.user.id);
    expect(await whose('/items/MLA1', { 'x-meli-account': b })).toBe(SELLER_B.id);
    expect(await whose('/items/MLA1', { 'x-meli-account': 'seller_b' })).toBe(SELLER_B.id);
    expect(await whose('/items/MLA1', { 'x-meli-account': a })).toBe(meli.user.id);
    expect(await whose('/orders/123')).toBe(SELLER_B.id);
    expect(await whose('/ordersX')).toBe(meli.user.id);
    expect(await whose('/items/MLA2', { 'x-tenant': 'acme' })).toBe(SELLER_B.id);
    // The header wins over a rule.
    expect(await whose('/orders/1', { 'x-meli-account': a })).toBe(meli.user.id);
    expect(meli.stats.accountHeaderRequests).toBe(0);
    expect(Object.fromEntries(meli.stats.requestsByUser)).toEqual({ [meli.user.id]: 4, [SELLER_B.id]: 4 });

    // An unknown account, by header or by rule: refused here, nothing sent upstream.
    const before = meli.stats.anonymousRequests + meli.stats.validTokenRequests;
    for (const [target, headers] of [
      ['/items/MLA1', { 'x-meli-account': 'NOBODY' }],
      ['/items/MLA1', { 'x-meli-account': '999' }],
      ['/ghost/1', {}],
    ] as const) {
      const answer = await whose(target, headers);
      expect(answer).toMatchObject({ status: 403, body: { status: 403, error: 'forbidden', cause: [] } });
    }
    expect(meli.stats.anonymousRequests + meli.stats.validTokenRequests).toBe(before);

    const access = logs.withMessage('request');
    expect(access.filter((line) => line.account === b)).toHaveLength(4);
    expect(access.filter((line) => line.account === a)).toHaveLength(4);
    expect(logs.text).not.toContain('APP_USR-');
  });

  it('with --default-account none, a request naming no account gets no token', async () => {
    await start({ defaultAccount: 'none' });
    expect(await whose('/items/MLA1')).toBe('anonymous');
    expect(await whose('/items/MLA1', { 'x-meli-account': 'SELLER_B' })).toBe(SELLER_B.id);
  });

  it('marks a revoked account and reports it, while the other keeps working', async () => {
    meli.revokeUser(SELLER_B.id);
    try {
      dir = await mkdtemp(path.join(tmpdir(), 'meli-accounts-serve-'));
      const accounts = fileAccounts(dir);
      await accounts.saveLogin(loggedInToken(meli));
      // B's token was obtained long ago: its refresh is due at once, and MercadoLibre refuses it.
      await accounts.saveLogin(loggedInToken(meli, Date.now() - 6 * 3600_000, SELLER_B.id));
      logs = new LogCapture();
      meli.resetStats();
      ({ server, auth } = await startInjectingProxy(meli, dir, logs, undefined, {}));
      const deadline = Date.now() + 20_000;
      while (!(await accounts.account(b).load())?.revokedAt && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect((await accounts.account(b).load())?.revokedAt).toBeTypeOf('number');
      expect(auth!.manager.accounts().get(b)?.revoked).toBe(true);
      expect(meli.stats.refreshCalls).toBe(1);

      expect(await whose('/items/MLA1')).toBe(meli.user.id);
      const metrics = await (await fetch(`${server!.proxyUrl}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`^meli_proxy_account_revoked\\{account="${b}"\\} 1$`, 'm'));
      expect(metrics).toMatch(new RegExp(`^meli_proxy_account_revoked\\{account="${a}"\\} 0$`, 'm'));
      expect(metrics).toMatch(/^meli_proxy_accounts\{state="revoked"\} 1$/m);
      expect(metrics).toMatch(/^meli_proxy_accounts\{state="ok"\} 1$/m);
      expect(metrics).toMatch(/^meli_proxy_token_refresh_total\{result="invalid_grant"\} 1$/m);
      expect(metrics).toMatch(
        new RegExp(`^meli_proxy_account_token_expires_in_seconds\\{account="${a}"\\} \\d+`, 'm'),
      );
      const refusals = logs.withMessage(
        'MercadoLibre refused the stored refresh token (invalid_grant): run "meli-proxy auth login" again; the current access token is used until it expires',
      );
      expect(refusals.map((line) => line.account)).toEqual([b]);
    } finally {
      meli.loginAs(meli.user.id);
    }
  });

  it('exports only totals beyond --account-label-limit', async () => {
    await start({ accountLabelLimit: 1 });
    const metrics = await (await fetch(`${server!.proxyUrl}/metrics`)).text();
    expect(metrics).not.toContain('account="');
    expect(metrics).toMatch(/^meli_proxy_accounts\{state="ok"\} 2$/m);
  });
});
