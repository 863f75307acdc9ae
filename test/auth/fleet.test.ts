/**
 * One refresh per fleet, whatever the topology, over real processes: `serve --workers 2` on the
 * embedded store (the workers refresh through the primary's lock), and four replicas on PostgreSQL
 * and on Redis (the store's lock; every save a compare-and-set). The stored token has expired when
 * they start and the token endpoint is slow, so every process wants to refresh at once; then 16
 * clients keep calling through the next expiry. MercadoLibre's refresh tokens are single use and
 * a refresh revokes the previous access token, so the fake server must see exactly one refresh call
 * per rotation, never a refresh token presented twice, and the clients never a 401.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
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

// Tokens live 12 s: the expired one is refreshed at start-up, the next one at ~9.6 s (±0.6 s), within
// the traffic below; 2.4 s of slack before a token is unusable leaves a loaded machine its time.
const LIFETIME_SECONDS = 12;
const TRAFFIC_MS = 12_000;
// Every process gets a request every few milliseconds through both refreshes: enough to meet any
// moment a stale token could be sent, without the suite's CPU going to a flood of requests.
const CLIENTS = 16;
const PAUSE_MS = 20;

interface Topology {
  store: FleetStore;
  serveArgs: string[];
  processes: number;
}

async function runFleet(topology: Topology): Promise<void> {
  const meli: FakeMeli = await startFakeMeli({ expiresIn: LIFETIME_SECONDS });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'meli-fleet-'));
  const proxies: CliProcess[] = [];
  try {
    // The operator's login, already expired.
    const stores = await topology.store.open(dataDir);
    await stores.tokens.saveLogin(loggedInToken(meli, Date.now() - LIFETIME_SECONDS * 1000));
    await stores.close();
    meli.expireAccessTokens();
    // Slow enough that processes starting together all find the token expired and want it.
    meli.setRefreshDelay(400);
    proxies.push(
      ...(await startFleet(meli, topology.store, {
        processes: topology.processes,
        serveArgs: topology.serveArgs,
        dataDir,
      })),
    );
    meli.setRefreshDelay(0);

    const statuses = new Map<number, number>();
    let sent = 0;
    const until = Date.now() + TRAFFIC_MS;
    const client = async (index: number): Promise<void> => {
      for (let n = index; Date.now() < until; n += CLIENTS) {
        const proxy = proxies[n % proxies.length]!;
        const response = await fetch(`${proxy.url}/items/MLA${n}`);
        await response.arrayBuffer();
        sent++;
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        await sleep(PAUSE_MS);
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, index) => client(index)));

    const stats = meli.stats;
    // The start-up refresh and at least one planned one.
    expect(stats.refreshCalls).toBeGreaterThanOrEqual(2);
    expect([...stats.refreshCallsByToken.values()].filter((calls) => calls !== 1)).toEqual([]);
    expect(stats.invalidGrants).toBe(0);
    expect(Object.fromEntries(statuses)).toEqual({ 200: sent });
    expect(stats.anonymousRequests).toBe(0);
    expect(stats.expiredTokenRequests).toBe(0);
    expect(sent).toBeGreaterThan(300);

    for (const proxy of proxies) expect(proxy.stdout).not.toContain('run "meli-proxy auth login" again');
    await finishFleet(proxies, topology.store);
  } finally {
    await killFleet(proxies);
    await meli.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

afterAll(() => killChildren());

describe('one refresh per fleet: serve --workers 2 on the embedded store', () => {
  beforeAll(() => ensureBuilt(), 120_000);

  it("refreshes once per expiry through the primary's lock", async () => {
    await runFleet({ store: embeddedFleetStore, processes: 1, serveArgs: ['--workers', '2'] });
  }, 120_000);
});

describe('one refresh per fleet: four replicas on PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    [db] = await Promise.all([testDatabase(), ensureBuilt()]);
  }, 120_000);
  afterAll(() => db?.drop());

  it('refreshes once per expiry; the row holds no token in clear', async () => {
    await runFleet({ store: postgresFleetStore(db.url), processes: 4, serveArgs: ['--workers', '1'] });
  }, 120_000);
});

describe.skipIf(skipWithoutRedis())('one refresh per fleet: four replicas on Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    [redis] = await Promise.all([startRedis(), ensureBuilt()]);
  }, 120_000);
  afterAll(() => redis?.dispose());

  it('refreshes once per expiry; the key holds no token in clear', async () => {
    await runFleet({ store: redisFleetStore(redis.url), processes: 4, serveArgs: ['--workers', '1'] });
  }, 120_000);
});
