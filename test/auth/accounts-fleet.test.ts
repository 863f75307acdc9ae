/**
 * Fifty accounts whose tokens have all expired, behind `serve --workers 2` on the embedded store
 * (both workers refresh through the primary's lock), and behind two replicas with the default
 * worker count on PostgreSQL and on Redis (there every worker of every replica takes the store's
 * own lock: the advisory lock, the Redis lock), one lock name per account: every account is
 * refreshed with exactly one call at the token endpoint, no refresh token is presented twice, and
 * then each account's requests reach the origin with that account's own bearer, whichever process
 * serves them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableCores } from '../../src/settings/cores.js';
import { type FakeMeli, type FakeUser, startFakeMeli } from '../peers/oauth-server.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';
import { type CliProcess, childPids, killChildren } from '../support/proxy.js';
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
  /** Serving processes each of them runs: its --workers, or the cores it may use for the default (auto). */
  workersEach: number;
  /** Requests per account, spread over the processes (and so over their workers). */
  requestsPerAccount: number;
}

/** How many processes serve behind `proxy`: its workers, or the process itself. */
function servingProcesses(proxy: CliProcess): number {
  const ready = proxy.logRecords().find((record) => record.msg === 'all workers ready');
  if (ready === undefined) return 1;
  expect(childPids(proxy.pid)).toHaveLength(Number(ready.workers));
  return Number(ready.workers);
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
    // The topology under test is what ran: a primary logs how many workers it started and each
    // worker is its child; one process without --workers > 1 serves alone.
    expect(proxies.map(servingProcesses)).toEqual(proxies.map(() => topology.workersEach));
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
      workersEach: 2,
      serveArgs: ['--workers', '2'],
      requestsPerAccount: 2,
    });
  }, 120_000);
});

describe('50 accounts expiring at once, two replicas on PostgreSQL, default workers', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    [db] = await Promise.all([testDatabase(), ensureBuilt()]);
  }, 120_000);
  afterAll(() => db?.drop());

  it('refreshes each account once, and routes each to its own bearer', async () => {
    await runAccountsFleet({
      // No --workers: each replica runs the default (auto, one worker per core), as users do, so
      // workers of one replica contend for the advisory lock as much as the replicas do.
      store: postgresFleetStore(db.url),
      processes: 2,
      workersEach: availableCores(),
      serveArgs: [],
      requestsPerAccount: 8,
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
        workersEach: availableCores(),
        serveArgs: [],
        requestsPerAccount: 8,
      });
    }, 120_000);
  },
);
