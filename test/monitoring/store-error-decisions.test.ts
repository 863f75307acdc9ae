/**
 * meli_proxy_rule_store_error_decisions_total through a real store outage: `serve` with the default
 * workers on a real redis-server or PostgreSQL, an exactly counted rule (each request is one atomic
 * store operation), and the server stopped with SIGSTOP (it keeps its connections and answers nothing).
 * Every request sent meanwhile is decided by --on-store-error, and the counter, summed over the
 * workers, says so per rule: `allowed` under `open`, `rejected` under `deny`, each equal to the
 * requests sent; a rule the requests do not match stays at 0, as does everything before the outage.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { httpRequest } from '../support/net.js';
import { createDatabase, startPostgres } from '../support/postgres.js';
import { serveArgs, spawnCli, useOriginAndDataDir } from '../support/proxy.js';
import { skipWithoutRedis, startRedis } from '../support/redis.js';

const METRIC = 'meli_proxy_rule_store_error_decisions_total';

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function decisions(text: string, rule: string): { allowed?: number; rejected?: number } {
  return {
    allowed: sample(text, `${METRIC}{rule="${rule}",decision="allowed"}`),
    rejected: sample(text, `${METRIC}{rule="${rule}",decision="rejected"}`),
  };
}

/** A store server of its own for one test: its URL, SIGSTOP / SIGCONT, and disposal. */
interface StoreServer {
  url: string;
  pause(): Promise<void>;
  resume(): Promise<void>;
  dispose(): Promise<void>;
}

async function redisServer(): Promise<StoreServer> {
  const redis = await startRedis();
  return {
    url: redis.url,
    pause: async () => redis.pause(),
    resume: async () => redis.resume(),
    dispose: () => redis.dispose(),
  };
}

async function postgresServer(): Promise<StoreServer> {
  const server = await startPostgres();
  const db = await createDatabase(server.url);
  return {
    url: db.url,
    pause: () => server.pauseServer(),
    resume: () => server.resumeServer(),
    dispose: () => server.stop(),
  };
}

const STORES = [
  { name: 'PostgreSQL', start: postgresServer, skip: false },
  { name: 'Redis', start: redisServer, skip: skipWithoutRedis() },
];

describe.each(STORES)(
  'admissions decided by --on-store-error, default workers on $name',
  ({ start, skip }) => {
    const fixture = useOriginAndDataDir();

    it.skipIf(skip).each([
      ['open', 'allowed', 200],
      ['deny', 'rejected', 429],
    ] as const)(
      '--on-store-error %s: every request of the outage is counted as %s for its rule',
      async (onStoreError, decision, status) => {
        let store: StoreServer | undefined;
        try {
          store = await start();
          const config = path.join(fixture.dir, `store-error-${onStoreError}.yaml`);
          writeFileSync(
            config,
            [
              'limits:',
              '  - { id: items-exact, match: { path: "/items/*" }, by: [ip], limit: 1000/m, counting: exact }',
              '  - { id: users-exact, match: { path: "/users/*" }, by: [ip], limit: 1000/m, counting: exact }',
              '',
            ].join('\n'),
          );
          const args = serveArgs(fixture.origin.url, fixture.dir, '--access-log', 'off', '--config', config);
          args[args.indexOf('memory')] = store.url;
          const cli = await spawnCli([...args, '--migrate', '--on-store-error', onStoreError]);
          const scrape = async () => (await httpRequest(cli.url, '/metrics')).body.toString();

          // Healthy store: decided by the store, nothing by --on-store-error.
          for (let i = 0; i < 4; i++) expect((await httpRequest(cli.url, `/items/MLA${i}`)).status).toBe(200);
          let text = await scrape();
          expect(decisions(text, 'items-exact')).toEqual({ allowed: 0, rejected: 0 });
          expect(decisions(text, 'users-exact')).toEqual({ allowed: 0, rejected: 0 });

          await store.pause();
          const sent = 6;
          // Fresh connections, so both workers take some; the first of each waits out the store timeout.
          for (let i = 0; i < sent; i++) {
            expect((await httpRequest(cli.url, `/items/MLA${i}`, { timeoutMs: 30_000 })).status).toBe(status);
          }
          text = await scrape();
          const expected =
            decision === 'allowed' ? { allowed: sent, rejected: 0 } : { allowed: 0, rejected: sent };
          expect(decisions(text, 'items-exact')).toEqual(expected);
          expect(decisions(text, 'users-exact')).toEqual({ allowed: 0, rejected: 0 });
          await store.resume();
          await cli.stop();
        } finally {
          await store?.resume().catch(() => undefined);
          await store?.dispose();
        }
      },
      120_000,
    );
  },
);
