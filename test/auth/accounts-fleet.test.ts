/**
 * Fifty accounts whose tokens have all expired, behind `serve --workers 2` on the embedded store
 * (both workers refresh through the primary's lock), behind two replicas on PostgreSQL (the
 * advisory lock) and behind two replicas with the default worker count on Redis (the Redis lock),
 * one lock name per account: every account is refreshed with exactly one call at the token
 * endpoint, no refresh token is presented twice, and then each account's requests reach the
 * origin with that account's own bearer, whichever process serves them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeMeli, type FakeUser, startFakeMeli } from '../peers/oauth-server.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';
import { type CliProcess, killChildren } from '../support/proxy.js';
import { type RedisServer, skipWithoutRedis, startRedis } from '../support/redis.js';
import { ensureBuilt } from './helpers/build.js';
import {
  embeddedFleetStore,
  type FleetStore,
  finishFleet,
  killFleet,
  postgresFleetStore,
  redisFleetStore,
  startFleet,
} from './helpers/fleet.js';
import { loggedInToken } from './helpers/tokens.js';

const ACCOUNTS = 50;
const LIFETIME_SECONDS = 3600;

const USERS: FakeUser[] = Array.from({ length: ACCOUNTS }, (_, n) => ({
  id: 500_000 + n,
  nickname: `SELLER_${n}`,
  site_id: 'MLA',
}));

interface Topology {
  store: FleetStore;
  serveArgs: string[];
  /** Processes started; each may run several workers. */
  processes: number;
  /** Requests per account, spread over the processes (and so over their workers). */
  requestsPerAccount: number;
}

async function runAccountsFleet(topology: Topology): Promise<void> {
  const meli: FakeMeli = await startFakeMeli({ expiresIn: LIFETIME_SECONDS, users: USERS });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'meli-accounts-fleet-'));
  const proxies: CliProcess[] = [];
  const { accounts, close } = await topology.store.open(dataDir);
  try {
    for (const user of USERS) {
      await accounts.saveLogin(loggedInToken(meli, Date.now() - LIFETIME_SECONDS * 1000, user.id));
    }
    meli.resetStats();
    proxies.push(
      ...(await startFleet(meli, topology.store, {
        processes: topology.processes,
        serveArgs: topology.serveArgs,
        dataDir,
      })),
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
      for (let round = 0; round < topology.requestsPerAccount; round++) {
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
    await finishFleet(proxies, topology.store);
  } finally {
    await killFleet(proxies);
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
      store: embeddedFleetStore,
      processes: 1,
      serveArgs: ['--workers', '2'],
      requestsPerAccount: 2,
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
      store: postgresFleetStore(db.url),
      processes: 2,
      serveArgs: ['--workers', '1'],
      requestsPerAccount: 4,
    });
  }, 120_000);
});

describe.skipIf(skipWithoutRedis())(
  '50 accounts expiring at once, two replicas on Redis, default workers',
  () => {
    let redis: RedisServer;
    beforeAll(async () => {
      [redis] = await Promise.all([startRedis(), ensureBuilt()]);
    }, 120_000);
    afterAll(() => redis?.dispose());

    it('refreshes each account once, and routes each to its own bearer', async () => {
      // No --workers: each replica runs the default (auto, one worker per core), as users do.
      await runAccountsFleet({
        store: redisFleetStore(redis.url),
        processes: 2,
        serveArgs: [],
        requestsPerAccount: 8,
      });
    }, 120_000);
  },
);
