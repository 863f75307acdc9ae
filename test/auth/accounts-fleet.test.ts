/**
 * Fifty accounts whose tokens have all expired, behind `serve --workers 2` on the embedded store
 * (both workers refresh through the primary's lock) and behind two replicas on PostgreSQL (the
 * advisory lock), one lock name per account: every account is refreshed with exactly one call at
 * the token endpoint, no refresh token is presented twice, and then each account's requests reach
 * the origin with that account's own bearer, whichever process serves them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccountStore } from '../../src/auth/accounts.js';
import { openStore } from '../../src/store/index.js';
import { type FakeMeli, type FakeUser, startFakeMeli } from '../peers/oauth-server.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';
import { type CliProcess, killChildren, spawnCli } from '../support/proxy.js';
import { ensureBuilt } from './helpers/build.js';
import { fileAccounts, KEY_ENV, loggedInToken, sharedTokens } from './helpers/tokens.js';

const ACCOUNTS = 50;
const LIFETIME_SECONDS = 3600;

const USERS: FakeUser[] = Array.from({ length: ACCOUNTS }, (_, n) => ({
  id: 500_000 + n,
  nickname: `SELLER_${n}`,
  site_id: 'MLA',
}));

interface Topology {
  /** The accounts as the proxies see them, and what to close after. */
  open(dataDir: string): Promise<{ accounts: AccountStore; close(): Promise<void> }>;
  serveArgs: string[];
  /** The token key, for a shared store (where tokens are sealed). */
  env: Record<string, string>;
  processes: number;
}

async function runAccountsFleet(topology: Topology): Promise<void> {
  const meli: FakeMeli = await startFakeMeli({ expiresIn: LIFETIME_SECONDS, users: USERS });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'meli-accounts-fleet-'));
  const proxies: CliProcess[] = [];
  const { accounts, close } = await topology.open(dataDir);
  try {
    for (const user of USERS) {
      await accounts.saveLogin(loggedInToken(meli, Date.now() - LIFETIME_SECONDS * 1000, user.id));
    }
    meli.resetStats();
    proxies.push(
      ...(await Promise.all(
        Array.from({ length: topology.processes }, () =>
          spawnCli(
            [
              'serve',
              '--inject-token',
              ...topology.serveArgs,
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
            { MELI_CLIENT_SECRET: meli.client.secret, ...topology.env },
            { timeoutMs: 30_000 },
          ),
        ),
      )),
    );
    // Only catches a hang: the refreshes run as fast as the machine lets them.
    const deadline = Date.now() + 60_000;
    const refreshed = async (): Promise<number> => {
      let count = 0;
      for (const user of USERS) {
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

    for (const user of USERS) {
      // Each request may land on any worker or replica: all must hold the refreshed token.
      for (let round = 0; round < 2 * topology.processes; round++) {
        const proxy = proxies[round % proxies.length]!;
        const response = await fetch(`${proxy.url}/items/MLA1`, {
          headers: { 'x-meli-account': user.nickname },
        });
        expect(response.status).toBe(200);
        expect(((await response.json()) as { user_id?: number }).user_id).toBe(user.id);
      }
    }
    expect(meli.stats.expiredTokenRequests + meli.stats.revokedTokenRequests).toBe(0);
    expect(meli.stats.refreshCalls).toBe(ACCOUNTS);
    for (const proxy of proxies) {
      expect(proxy.stdout).not.toContain('APP_USR-');
      expect(proxy.stdout).not.toContain('TG-');
    }
    for (const proxy of proxies.splice(0)) expect(await proxy.stop('SIGTERM', 15_000)).toBe(0);
  } finally {
    await Promise.allSettled(proxies.map((proxy) => proxy.stop('SIGKILL', 5000)));
    await close();
    await meli.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

afterAll(() => killChildren());

describe('50 accounts expiring at once, serve --workers 2 on the embedded store', () => {
  beforeAll(() => ensureBuilt(), 120_000);

  it('refreshes each account once, and routes each to its own bearer', async () => {
    await runAccountsFleet({
      processes: 1,
      serveArgs: ['--workers', '2'],
      env: {},
      open: async (dataDir) => ({ accounts: fileAccounts(dataDir), close: async () => undefined }),
    });
  }, 120_000);
});

describe('50 accounts expiring at once, two replicas on PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    [db] = await Promise.all([testDatabase(), ensureBuilt()]);
  }, 120_000);
  afterAll(() => db?.drop());

  it('refreshes each account once, and routes each to its own bearer', async () => {
    await runAccountsFleet({
      processes: 2,
      serveArgs: ['--store', db.url, '--workers', '1'],
      env: KEY_ENV,
      open: async (dataDir) => {
        await (await openStore(db.url, { dataDir, migrate: true })).close();
        const backend = await sharedTokens(db.url, dataDir);
        return { accounts: backend.accounts, close: backend.close };
      },
    });
  }, 120_000);
});
