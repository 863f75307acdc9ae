/**
 * The scaffolding the fleet suites share: where the tokens live (the embedded file, or a shared
 * PostgreSQL or Redis store, sealed with the test key), a fleet of `serve --inject-token` processes
 * in front of the fake MercadoLibre, and the checks every fleet ends with (no token in clear in the
 * store or the logs, a clean SIGTERM exit).
 */
import pg from 'pg';
import { createClient } from 'redis';
import { expect } from 'vitest';
import type { AccountStore } from '../../../src/auth/accounts.js';
import type { TokenStore } from '../../../src/auth/token-store.js';
import { openStore } from '../../../src/store/index.js';
import type { FakeMeli } from '../../peers/oauth-server.js';
import type { CliProcess } from '../../support/proxy.js';
import { spawnInjectingServe } from './serve.js';
import { fileAccounts, fileTokens, KEY_ENV, sharedTokens } from './tokens.js';

/** Where a fleet's tokens live, as the test writes them and as `serve` is told. */
export interface FleetStore {
  /** The token stores the test writes the operator's logins into; close() when done. */
  open(dataDir: string): Promise<{ tokens: TokenStore; accounts: AccountStore; close(): Promise<void> }>;
  /** `serve` arguments naming the store. */
  serveArgs: string[];
  /** The environment `serve` needs for it: the token key, for a shared store (tokens are sealed). */
  env: Record<string, string>;
  /** Every raw value the store holds, as the database has it (undefined for the embedded file). */
  raw?(): Promise<string[]>;
}

export const embeddedFleetStore: FleetStore = {
  serveArgs: [],
  env: {},
  async open(dataDir) {
    return { tokens: fileTokens(dataDir), accounts: fileAccounts(dataDir), close: async () => undefined };
  },
};

export function postgresFleetStore(url: string): FleetStore {
  return {
    serveArgs: ['--store', url],
    env: KEY_ENV,
    async open(dataDir) {
      await (await openStore(url, { dataDir, migrate: true })).close();
      return sharedTokens(url, dataDir);
    },
    async raw() {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query<{ value: string }>('SELECT value FROM meli_proxy_documents');
        expect(rows.length).toBeGreaterThan(0);
        return rows.map((row) => row.value);
      } finally {
        await client.end();
      }
    },
  };
}

export function redisFleetStore(url: string): FleetStore {
  return {
    serveArgs: ['--store', url],
    env: KEY_ENV,
    open: (dataDir) => sharedTokens(url, dataDir),
    async raw() {
      const client = createClient({ url });
      await client.connect();
      try {
        const values: string[] = [];
        for (const key of await client.keys('*')) {
          if ((await client.type(key)) === 'string') values.push((await client.get(key)) ?? '');
        }
        expect(values.some((value) => value.includes('"format":"sealed"'))).toBe(true);
        return values;
      } finally {
        await client.quit();
      }
    },
  };
}

/** Starts `processes` × `serve --inject-token …serveArgs` on `store` in front of `meli`, all at once. */
export function startFleet(
  meli: FakeMeli,
  store: FleetStore,
  options: { processes: number; serveArgs: string[]; dataDir: string },
): Promise<CliProcess[]> {
  return Promise.all(
    Array.from({ length: options.processes }, () =>
      spawnInjectingServe(meli, options.dataDir, {
        args: [...store.serveArgs, ...options.serveArgs],
        env: store.env,
        timeoutMs: 30_000,
      }),
    ),
  );
}

/**
 * The end of every fleet run: nothing in clear in the store or the logs, and each process exits
 * cleanly on SIGTERM (removed from `proxies` as it goes, so the caller's cleanup skips it).
 */
export async function finishFleet(proxies: CliProcess[], store: FleetStore): Promise<void> {
  for (const value of (await store.raw?.()) ?? []) {
    expect(value).not.toContain('APP_USR-');
    expect(value).not.toContain('TG-');
  }
  for (const proxy of proxies) {
    expect(proxy.stdout).not.toContain('APP_USR-');
    expect(proxy.stdout).not.toContain('TG-');
  }
  for (const proxy of proxies.splice(0)) expect(await proxy.stop('SIGTERM', 15_000)).toBe(0);
}

/** Kills what a failed run left running. */
export async function killFleet(proxies: CliProcess[]): Promise<void> {
  await Promise.allSettled(proxies.map((proxy) => proxy.stop('SIGKILL', 5000)));
}
