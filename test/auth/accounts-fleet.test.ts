/**
 * Fifty accounts whose tokens have all expired, behind `serve --workers 2` on the embedded store
 * (both workers refresh through the primary's lock, one lock name per account): every account is
 * refreshed with exactly one call at the token endpoint, no refresh token is presented twice, and
 * then each account's requests reach the origin with that account's own bearer.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeMeli, type FakeUser, startFakeMeli } from '../peers/oauth-server.js';
import { type CliProcess, killChildren, spawnCli } from '../support/proxy.js';
import { ensureBuilt } from './helpers/build.js';
import { fileAccounts, loggedInToken } from './helpers/tokens.js';

const ACCOUNTS = 50;
const LIFETIME_SECONDS = 3600;

afterAll(() => killChildren());

describe('50 accounts expiring at once, serve --workers 2', () => {
  let meli: FakeMeli;
  let dataDir: string;
  let proxy: CliProcess | undefined;
  const users: FakeUser[] = Array.from({ length: ACCOUNTS }, (_, n) => ({
    id: 500_000 + n,
    nickname: `SELLER_${n}`,
    site_id: 'MLA',
  }));

  beforeAll(async () => {
    [meli] = await Promise.all([startFakeMeli({ expiresIn: LIFETIME_SECONDS, users }), ensureBuilt()]);
    dataDir = await mkdtemp(path.join(tmpdir(), 'meli-accounts-fleet-'));
  }, 120_000);
  afterAll(async () => {
    await proxy?.stop('SIGKILL', 5000).catch(() => undefined);
    await meli?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('refreshes each account once, and routes each to its own bearer', async () => {
    const accounts = fileAccounts(dataDir);
    for (const user of users) {
      await accounts.saveLogin(loggedInToken(meli, Date.now() - LIFETIME_SECONDS * 1000, user.id));
    }
    meli.resetStats();
    proxy = await spawnCli(
      [
        'serve',
        '--inject-token',
        '--workers',
        '2',
        '--upstream',
        meli.url,
        '--token-url',
        meli.tokenUrl,
        '--port',
        '0',
        '--admin-port',
        '0',
        '--data-dir',
        dataDir,
        '--access-log',
        'off',
      ],
      { MELI_CLIENT_SECRET: meli.client.secret },
      { timeoutMs: 30_000 },
    );
    // Only catches a hang: the refreshes run as fast as the machine lets them.
    const deadline = Date.now() + 60_000;
    const refreshed = async (): Promise<number> => {
      let count = 0;
      for (const user of users) {
        if (((await accounts.account(String(user.id)).load())?.generation ?? 0) >= 2) count++;
      }
      return count;
    };
    while ((await refreshed()) < ACCOUNTS && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(await refreshed()).toBe(ACCOUNTS);
    const stats = meli.stats;
    expect(stats.refreshCalls).toBe(ACCOUNTS);
    expect(stats.refreshCallsByToken.size).toBe(ACCOUNTS);
    expect([...stats.refreshCallsByToken.values()].filter((calls) => calls !== 1)).toEqual([]);
    expect(stats.invalidGrants).toBe(0);

    for (const user of users) {
      // Each request may land on either worker: both must hold the refreshed token.
      for (let round = 0; round < 2; round++) {
        const response = await fetch(`${proxy.url}/items/MLA1`, {
          headers: { 'x-meli-account': user.nickname },
        });
        expect(response.status).toBe(200);
        expect(((await response.json()) as { user_id?: number }).user_id).toBe(user.id);
      }
    }
    expect(meli.stats.expiredTokenRequests + meli.stats.revokedTokenRequests).toBe(0);
    expect(meli.stats.refreshCalls).toBe(ACCOUNTS);
    expect(proxy.stdout).not.toContain('APP_USR-');
    expect(proxy.stdout).not.toContain('TG-');
    expect(await proxy.stop('SIGTERM', 15_000)).toBe(0);
    proxy = undefined;
  }, 120_000);
});
