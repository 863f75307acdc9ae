/**
 * One refresh per fleet, whatever the topology, over real processes: `serve --workers 2` on the
 * embedded store (the workers refresh through the primary's lock), and four replicas on PostgreSQL
 * and on Redis (the store's lock; every save a compare-and-set). The stored token has expired when
 * they start and the token endpoint is slow, so every process wants to refresh at once; then 64
 * clients keep calling through the next expiry. MercadoLibre's refresh tokens are single use and
 * a refresh revokes the previous access token, so the fake server must see exactly one refresh call
 * per rotation, never a refresh token presented twice, and the clients never a 401.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';
import { type CliProcess, killChildren, spawnCli } from '../support/proxy.js';
import { type RedisServer, skipWithoutRedis, startRedis } from '../support/redis.js';
import { ensureBuilt } from './helpers/build.js';
import { fileTokens, KEY_ENV, loggedInToken, sharedTokens } from './helpers/tokens.js';

// Tokens live 12 s: the expired one is refreshed at start-up, the next one at ~9.6 s (±0.6 s), within
// the traffic below; 2.4 s of slack before a token is unusable leaves a loaded machine its time.
const LIFETIME_SECONDS = 12;
const TRAFFIC_MS = 12_000;
const CLIENTS = 64;

interface Topology {
  name: string;
  /** Stores the operator's login (already expired) and returns the `serve` arguments. */
  prepare(meli: FakeMeli, dataDir: string): Promise<string[]>;
  processes: number;
  /** Every raw value the store holds for the token, as the database has it. */
  raw?(): Promise<string[]>;
}

async function runFleet(topology: Topology): Promise<void> {
  const meli = await startFakeMeli({ expiresIn: LIFETIME_SECONDS });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'meli-fleet-'));
  const proxies: CliProcess[] = [];
  try {
    const serveArgs = await topology.prepare(meli, dataDir);
    meli.expireAccessTokens();
    // Slow enough that processes starting together all find the token expired and want it.
    meli.setRefreshDelay(400);
    proxies.push(
      ...(await Promise.all(
        Array.from({ length: topology.processes }, () =>
          spawnCli(
            [
              'serve',
              '--inject-token',
              ...serveArgs,
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
            { MELI_CLIENT_SECRET: meli.client.secret, ...KEY_ENV },
            { timeoutMs: 30_000 },
          ),
        ),
      )),
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

    const stored = await topology.raw?.();
    for (const value of stored ?? []) {
      expect(value).not.toContain('APP_USR-');
      expect(value).not.toContain('TG-');
    }
    for (const proxy of proxies) {
      expect(proxy.stdout).not.toContain('APP_USR-');
      expect(proxy.stdout).not.toContain('TG-');
      expect(proxy.stdout).not.toContain('run "meli-proxy auth login" again');
    }
    for (const proxy of proxies.splice(0)) expect(await proxy.stop('SIGTERM', 15_000)).toBe(0);
  } finally {
    await Promise.allSettled(proxies.map((proxy) => proxy.stop('SIGKILL', 5000)));
    await meli.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

afterAll(() => killChildren());

describe('one refresh per fleet: serve --workers 2 on the embedded store', () => {
  beforeAll(() => ensureBuilt(), 120_000);

  it("refreshes once per expiry through the primary's lock", async () => {
    await runFleet({
      name: 'workers',
      processes: 1,
      async prepare(meli, dataDir) {
        await fileTokens(dataDir).saveLogin(loggedInToken(meli, Date.now() - LIFETIME_SECONDS * 1000));
        return ['--workers', '2'];
      },
    });
  }, 120_000);
});

describe('one refresh per fleet: four replicas on PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    [db] = await Promise.all([testDatabase(), ensureBuilt()]);
  }, 120_000);
  afterAll(() => db?.drop());

  it('refreshes once per expiry; the row holds no token in clear', async () => {
    await runFleet({
      name: 'postgres',
      processes: 4,
      async prepare(meli, dataDir) {
        await (await openStore(db.url, { dataDir, migrate: true })).close();
        const backend = await sharedTokens(db.url, dataDir);
        await backend.tokens.saveLogin(loggedInToken(meli, Date.now() - LIFETIME_SECONDS * 1000));
        await backend.close();
        return ['--store', db.url, '--workers', '1'];
      },
      async raw() {
        const client = new pg.Client({ connectionString: db.url });
        await client.connect();
        try {
          const { rows } = await client.query<{ value: string }>('SELECT value FROM meli_proxy_documents');
          expect(rows.length).toBeGreaterThan(0);
          return rows.map((row) => row.value);
        } finally {
          await client.end();
        }
      },
    });
  }, 120_000);
});

describe.skipIf(skipWithoutRedis())('one refresh per fleet: four replicas on Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    [redis] = await Promise.all([startRedis(), ensureBuilt()]);
  }, 120_000);
  afterAll(() => redis?.dispose());

  it('refreshes once per expiry; the key holds no token in clear', async () => {
    await runFleet({
      name: 'redis',
      processes: 4,
      async prepare(meli, dataDir) {
        const backend = await sharedTokens(redis.url, dataDir);
        await backend.tokens.saveLogin(loggedInToken(meli, Date.now() - LIFETIME_SECONDS * 1000));
        await backend.close();
        return ['--store', redis.url, '--workers', '1'];
      },
      async raw() {
        const client = createClient({ url: redis.url });
        await client.connect();
        try {
          const keys = await client.keys('*');
          const values: string[] = [];
          for (const key of keys) {
            if ((await client.type(key)) === 'string') values.push((await client.get(key)) ?? '');
          }
          expect(values.some((value) => value.includes('"format":"sealed"'))).toBe(true);
          return values;
        } finally {
          await client.quit();
        }
      },
    });
  }, 120_000);
});
