/**
 * Several MercadoLibre accounts through `meli-proxy auth …` (in-process, injected I/O) against the
 * fake MercadoLibre knowing two sellers: login adds or re-authorizes by user id, list, default,
 * status/logout by id or nickname, and the automatic move of a store that holds one token.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AuthIO } from '../../src/cli/auth/index.js';
import { runCli } from '../../src/cli/program.js';
import { clickThrough, type FakeMeli, openRedirect, startFakeMeli } from '../peers/oauth-server.js';
import { freePort } from '../support/postgres.js';
import { TEST_SECRETS } from '../support/secrets.js';
import { fileAccounts, fileTokens, loggedInToken } from './helpers/tokens.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface ListedAccount {
  id: string;
  nickname: string | null;
  default: boolean;
  health: string;
  expiresAt: string | null;
  lastRefresh: string | null;
}

const SELLER_B = { id: 222333444, nickname: 'SELLER_B', site_id: 'MLB' };

describe('meli-proxy auth with several accounts', () => {
  let meli: FakeMeli;
  let home: string;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    meli = await startFakeMeli({
      clients: [
        {
          id: '1234567890',
          secret: TEST_SECRETS.clientSecret,
          redirectUris: [`https://localhost:${port}/callback`],
        },
      ],
      users: [SELLER_B],
    });
  });
  afterAll(async () => {
    await meli.close();
  });
  afterEach(async () => {
    meli.loginAs(meli.user.id);
    if (home) await rm(home, { recursive: true, force: true });
  });

  const dataDir = (): string => path.join(home, 'config', 'meli-proxy');

  async function run(args: string[], browser = false): Promise<Run> {
    let stdout = '';
    let stderr = '';
    const io: AuthIO = {
      stdout: { write: (chunk: string) => (stdout += chunk) },
      stderr: { write: (chunk: string) => (stderr += chunk) },
      env: { XDG_CONFIG_HOME: path.join(home, 'config'), HOME: home, MELI_CLIENT_SECRET: meli.client.secret },
      cwd: home,
      openBrowser: async (url) => {
        if (browser) void clickThrough(url, 'allow').then(openRedirect);
        return browser;
      },
    };
    const code = await runCli(args, io);
    return { code, stdout, stderr };
  }

  const login = (): Promise<Run> =>
    run(
      [
        'auth',
        'login',
        '--client-id',
        meli.client.id,
        '--auth-url',
        meli.authorizationUrl,
        '--token-url',
        meli.tokenUrl,
        '--api-url',
        meli.apiUrl,
        '--port',
        String(port),
      ],
      true,
    );

  async function listed(): Promise<{ accounts: ListedAccount[]; default: string | null }> {
    const result = await run(['auth', 'list', '--json']);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as { accounts: ListedAccount[]; default: string | null };
  }

  it('adds an account per seller, re-authorizes by user id, and acts on one by id or nickname', async () => {
    home = await mkdtemp(path.join(tmpdir(), 'meli-accounts-'));
    const a = String(meli.user.id);
    const b = String(SELLER_B.id);

    const first = await login();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`Stored as account ${a} (the default account)`);
    meli.loginAs(SELLER_B.id);
    const second = await login();
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain(`Stored as account ${b} in`);
    // Logging in again as the same seller replaces that account's token, not adds one.
    const again = await login();
    expect(again.code, again.stderr).toBe(0);

    let list = await listed();
    expect(list.accounts.map((entry) => [entry.id, entry.nickname, entry.default, entry.health])).toEqual(
      [
        [b, 'SELLER_B', false, 'ok'],
        [a, meli.user.nickname, true, 'ok'],
      ].sort(),
    );
    for (const entry of list.accounts) {
      expect(Date.parse(entry.expiresAt ?? '')).toBeGreaterThan(Date.now());
      expect(Date.parse(entry.lastRefresh ?? '')).toBeLessThanOrEqual(Date.now());
    }
    const table = await run(['auth', 'list']);
    expect(table.stdout).toMatch(new RegExp(`\\*\\s+${a}\\s+${meli.user.nickname}\\s+MLA`));
    expect(table.stdout).toMatch(new RegExp(`\\n\\s+${b}\\s+SELLER_B\\s+MLB`));
    expect(table.stdout).not.toContain('APP_USR-');

    const byNickname = await run(['auth', 'status', '--account', 'seller_b', '--json']);
    expect(byNickname.code, byNickname.stderr).toBe(0);
    expect(JSON.parse(byNickname.stdout)).toMatchObject({ account: b, default: false });
    const defaultStatus = await run(['auth', 'status']);
    expect(defaultStatus.stdout).toContain(`account ${a} (default)`);

    const unknown = await run(['auth', 'status', '--account', 'NOBODY']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('No account "NOBODY"');

    const refreshed = await run(['auth', 'refresh', '--account', b, '--token-url', meli.tokenUrl, '--json']);
    expect(refreshed.code, refreshed.stderr).toBe(0);
    expect(JSON.parse(refreshed.stdout)).toMatchObject({ result: 'refreshed', account: b });

    expect((await run(['auth', 'default', 'SELLER_B'])).code).toBe(0);
    expect((await listed()).default).toBe(b);

    // Removing the default makes the other account the default.
    const logout = await run(['auth', 'logout', '--account', b]);
    expect(logout.code, logout.stderr).toBe(0);
    expect(logout.stdout).toContain(`The default account is now ${a}.`);
    list = await listed();
    expect(list.accounts.map((entry) => entry.id)).toEqual([a]);
    expect(list.default).toBe(a);

    // A proxy was refused this account's refresh token: list and status say it needs a new login.
    const store = fileAccounts(dataDir()).account(a);
    const held = await store.load();
    expect(await store.markRevoked(held!, Date.now())).toBe(true);
    expect((await listed()).accounts.map((entry) => entry.health)).toEqual(['revoked']);
    expect((await run(['auth', 'status'])).stdout).toContain('REVOKED:');
    const refused = await run(['auth', 'refresh', '--token-url', meli.tokenUrl]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`MercadoLibre refused the refresh token of account ${a}`);
    // Logging in again as that seller clears it.
    meli.loginAs(meli.user.id);
    expect((await login()).code).toBe(0);
    expect((await listed()).accounts.map((entry) => entry.health)).toEqual(['ok']);
  });

  it('moves the single token of an older store into an account, the default', async () => {
    home = await mkdtemp(path.join(tmpdir(), 'meli-accounts-'));
    const legacy = fileTokens(dataDir());
    const token = loggedInToken(meli);
    await legacy.saveLogin(token);
    expect(await readFile(path.join(dataDir(), 'tokens.json'), 'utf8')).toContain('auth/token"');

    const list = await listed();
    expect(list.accounts.map((entry) => [entry.id, entry.default])).toEqual([[String(meli.user.id), true]]);
    const file = await readFile(path.join(dataDir(), 'tokens.json'), 'utf8');
    expect(file).not.toContain('auth/token"');
    expect(file).toContain(`auth/accounts/${meli.user.id}`);
    // The same token (lineage and generation), so a proxy holding it goes on refreshing it.
    const status = JSON.parse((await run(['auth', 'status', '--json'])).stdout) as { generation: number };
    expect(status.generation).toBe(token.generation);
    expect(file).toContain(token.lineage);
  });
});
