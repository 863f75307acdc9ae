/**
 * --store-timeout: how long a shared rate-limit operation waits for PostgreSQL before
 * --on-store-error decides. Its own PostgreSQL server is stopped with SIGSTOP (a stall, not a refusal)
 * while one exactly counted request is in flight, under the default worker count.
 *
 * With the default (2 s) the request is decided without the store while it is stalled (fail-open:
 * answered, and the log says the store is unreachable). With a timeout longer than the stall the
 * request waits for the store and is counted there once: nothing is decided without it.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { createDatabase, type PostgresServer, startPostgres } from '../support/postgres.js';
import {
  type CliProcess,
  HANG_DEADLINE_MS,
  killChildren,
  replicaServeArgs,
  spawnCli,
} from '../support/proxy.js';
import { Clients, cli, expectExit, sleep, waitFor } from './helpers.js';

let origin: Origin;
let server: PostgresServer;
const clients = new Clients();

beforeAll(async () => {
  [origin, server] = await Promise.all([startOrigin(), startPostgres()]);
});

afterAll(async () => {
  await clients.close();
  killChildren();
  await origin?.close();
  await server?.stop();
});

/** A migrated database with one exactly counted rule on /items/*. */
async function databaseWithExactRule(): Promise<string> {
  const db = await createDatabase(server.url);
  expectExit(await cli(['migrate', '--store', db.url]), 0);
  expectExit(
    await cli([
      'limits',
      'set',
      'timeout-exact',
      '--path',
      '/items/*',
      '--limit',
      '1000/h',
      '--counting',
      'exact',
      '--store',
      db.url,
    ]),
    0,
  );
  return db.url;
}

function serve(storeUrl: string, ...extra: string[]): Promise<CliProcess> {
  return spawnCli(replicaServeArgs(origin.url, storeUrl, ...extra));
}

async function counted(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string | null }>(
      "SELECT sum(n) AS n FROM meli_proxy_counters WHERE key = 'timeout-exact'",
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

const unreachable = (proxy: CliProcess) =>
  proxy.logRecords().filter((record) => /cannot reach the shared store/.test(String(record.msg)));

describe('--store-timeout with a stalled PostgreSQL (default workers)', () => {
  it('default 2 s: a request in flight is decided without the store while it is stalled', async () => {
    const url = await databaseWithExactRule();
    const proxy = await serve(url);
    try {
      expect((await clients.hit(proxy.url, '/items/MLA1')).status).toBe(200);
      await server.pauseServer();
      try {
        // Answered while PostgreSQL still answers nothing: fail-open decided it.
        const hit = await clients.hit(proxy.url, '/items/MLA2');
        expect(hit.status).toBe(200);
        await waitFor(async () => unreachable(proxy).length > 0, HANG_DEADLINE_MS, 'the outage warning');
      } finally {
        await server.resumeServer();
      }
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });

  it('longer than the stall: the request waits for the store and is counted there once', async () => {
    const url = await databaseWithExactRule();
    const proxy = await serve(url, '--store-timeout', '60s');
    try {
      expect((await clients.hit(proxy.url, '/items/MLA1')).status).toBe(200);
      await server.pauseServer();
      let answered = false;
      const pending = clients.hit(proxy.url, '/items/MLA2').finally(() => {
        answered = true;
      });
      try {
        // Three times the default timeout: with the setting ignored, fail-open would answer by now.
        await sleep(6_000);
        expect(answered).toBe(false);
      } finally {
        await server.resumeServer();
      }
      expect((await pending).status).toBe(200);
      expect(unreachable(proxy)).toEqual([]);
      await waitFor(async () => (await counted(url)) === 2, HANG_DEADLINE_MS, 'both requests counted');
      await sleep(500);
      expect(await counted(url)).toBe(2);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });
});
