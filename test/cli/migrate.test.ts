/**
 * `meli-proxy migrate` against real PostgreSQL: idempotent, safe with several processes at once
 * (the real binary, four at a time), honest about stores without a schema, exit 1 / 2 on an
 * unreachable store / a malformed URL, never printing a password. And `serve` on a database that
 * was never migrated: exit 2 with the hint, or `--migrate` to do it at start-up.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/index.js';
import { cli, expectExit } from '../limits-e2e/helpers.js';
import { closedPort, type Origin, startOrigin } from '../peers/origin.js';
import { createDatabase, type TestDatabase, testDatabase } from '../support/postgres.js';
import { killChildren, runCliProcess, spawnCli } from '../support/proxy.js';

const NAMES = MIGRATIONS.map((m) => m.name);
const dbs: TestDatabase[] = [];

async function freshDatabase(): Promise<TestDatabase> {
  const db = dbs.length === 0 ? await testDatabase() : await createDatabase(dbs[0]!.serverUrl);
  dbs.push(db);
  return db;
}

async function query<R extends pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** The migrations table (its primary key makes a duplicate impossible: a second apply would fail). */
function ledger(url: string) {
  return query<{ id: number; name: string }>(url, 'SELECT id, name FROM meli_proxy_migrations ORDER BY id');
}

afterAll(async () => {
  killChildren();
  for (const db of dbs.reverse()) await db.drop().catch(() => undefined);
});

describe('meli-proxy migrate', () => {
  it('applies every migration once, then says it is up to date; --dry-run changes nothing', async () => {
    const db = await freshDatabase();
    const password = new URL(db.url).password;
    const masked = db.url.replace(password, '***');

    const dry = await cli(['migrate', '--store', db.url, '--dry-run'], {});
    expectExit(dry, 0);
    expect(dry.stdout).toBe(
      `Would apply ${NAMES.length} migrations to ${masked} (dry run: nothing changed):\n` +
        NAMES.map((name, i) => `  ${String(i + 1).padStart(3)}  ${name}`).join('\n') +
        '\n',
    );
    expect(await query(db.url, "SELECT to_regclass('meli_proxy_migrations') AS t")).toEqual([{ t: null }]);

    const first = await cli(['migrate', '--store', db.url], {});
    expectExit(first, 0);
    expect(first.stdout).toBe(
      `Applied ${NAMES.length} migrations to ${masked}:\n` +
        NAMES.map((name, i) => `  ${String(i + 1).padStart(3)}  ${name}`).join('\n') +
        '\n',
    );
    expect(first.stderr).toBe('');

    // From the environment this time, as in a container.
    const second = await cli(['migrate'], { MELI_PROXY_STORE: db.url });
    expectExit(second, 0);
    expect(second.stdout).toBe(`The PostgreSQL store ${masked} is up to date: nothing to apply.\n`);
    const json = await cli(['migrate', '--json', '--store', db.url], {});
    expect(JSON.parse(json.stdout)).toEqual({
      store: masked,
      kind: 'postgres',
      hasSchema: true,
      dryRun: false,
      applied: [],
      upToDate: true,
    });
    const rows = await ledger(db.url);
    expect(rows.map((r) => [r.id, r.name])).toEqual(NAMES.map((name, i) => [i + 1, name]));
    for (const result of [dry, first, second, json])
      expect(result.stdout + result.stderr).not.toContain(password);
  });

  it('--json lists what it applied', async () => {
    const db = await freshDatabase();
    const result = await cli(['migrate', '--store', db.url, '--json'], {});
    expectExit(result, 0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      kind: 'postgres',
      hasSchema: true,
      dryRun: false,
      upToDate: false,
      applied: MIGRATIONS.map((m) => ({ id: m.id, name: m.name })),
    });
  });

  it('has nothing to do for embedded, memory and Redis stores (exit 0, nothing contacted)', async () => {
    const port = await closedPort();
    const cases: Array<[string[], Record<string, string>, string]> = [
      [[], {}, 'The embedded store has no schema: nothing to migrate.\n'],
      [['--store', 'memory'], {}, 'The memory store has no schema: nothing to migrate.\n'],
      [
        [],
        { MELI_PROXY_STORE: `redis://:pw-secret@127.0.0.1:${port}/2` },
        `The Redis store redis://:***@127.0.0.1:${port}/2 has no schema: nothing to migrate.\n`,
      ],
    ];
    for (const [args, env, text] of cases) {
      const result = await cli(['migrate', ...args], env);
      expectExit(result, 0);
      expect(result.stdout).toBe(text);
    }
    const json = await cli(['migrate', '--json'], {});
    expect(JSON.parse(json.stdout)).toEqual({
      store: 'embedded',
      kind: 'embedded',
      hasSchema: false,
      dryRun: false,
      applied: [],
      upToDate: false,
    });
  });

  it('exits 1 for an unreachable store and 2 for a malformed URL, never printing the password', async () => {
    const port = await closedPort();
    const down = await cli(['migrate', '--store', `postgres://meli:hunter2-pw@127.0.0.1:${port}/meli`], {});
    expectExit(down, 1);
    expect(down.stderr).toBe(
      `meli-proxy: error: Cannot migrate the PostgreSQL store postgres://meli:***@127.0.0.1:${port}/meli: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    );
    for (const url of ['postgres:meli:hunter2-pw@db/meli', 'mysql://meli:hunter2-pw@db/meli']) {
      const bad = await cli(['migrate', '--store', url], {});
      expectExit(bad, 2);
      expect(bad.stderr).toMatch(/^meli-proxy: error: --store "/);
      expect(bad.stderr).not.toContain('hunter2-pw');
    }
    const wrongPassword = new URL(dbs[0]!.url);
    wrongPassword.password = 'not-the-password';
    const refused = await cli(['migrate', '--store', wrongPassword.toString()], {});
    expectExit(refused, 1);
    expect(refused.stderr).toContain('password authentication failed');
    expect(refused.stderr).not.toContain('not-the-password');
  });

  it('4 processes migrating the same database at once all exit 0, and each migration is applied once', async () => {
    const db = await freshDatabase();
    const runs = await Promise.all(
      Array.from({ length: 4 }, () =>
        runCliProcess(['migrate', '--store', db.url], {}, { timeoutMs: 30_000 }),
      ),
    );
    for (const run of runs) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^(Applied \d migrations? to|The PostgreSQL store .* is up to date)/);
      expect(run.stdout + run.stderr).not.toContain(new URL(db.url).password);
    }
    const appliedCounts = runs.map((run) => Number(/^Applied (\d)/.exec(run.stdout)?.[1] ?? 0));
    expect(appliedCounts.reduce((a, b) => a + b, 0)).toBe(MIGRATIONS.length);
    const rows = await ledger(db.url);
    expect(rows.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
  });
});

describe('serve and the schema', () => {
  let origin: Origin;
  beforeAll(async () => {
    origin = await startOrigin();
  });
  afterAll(() => origin?.close());

  it('refuses an unmigrated database with exit 2, telling to run migrate or pass --migrate', async () => {
    const db = await freshDatabase();
    const password = new URL(db.url).password;
    const result = await runCliProcess(
      ['serve', '--store', db.url, '--port', '0', '--admin-port', '0', '--upstream', origin.url],
      {},
      { timeoutMs: 20_000 },
    );
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stderr).toContain(
      'needs 5 migration(s) (1 documents, 2 counters, 3 replicas, 4 stats_minute, 5 take_exact)',
    );
    expect(result.stderr).toContain(`Run "meli-proxy migrate --store ${db.url.replace(password, '***')}"`);
    expect(result.stderr).toContain('or pass --migrate');
    expect(result.stdout + result.stderr).not.toContain(password);
    expect(await query(db.url, "SELECT to_regclass('meli_proxy_migrations') AS t")).toEqual([{ t: null }]);
  });

  it('serve --migrate applies the migrations and serves', async () => {
    const db = await freshDatabase();
    const proxy = await spawnCli(
      ['serve', '--migrate', '--store', db.url, '--port', '0', '--admin-port', '0', '--upstream', origin.url],
      {},
      { timeoutMs: 30_000 },
    );
    try {
      const applied = proxy.logRecords().filter((r) => r.msg === 'applied store migration');
      expect(applied.map((r) => r.name)).toEqual(NAMES);
      const ready = await fetch(`${proxy.url}/ready`);
      expect(ready.status).toBe(200);
      const item = await fetch(`${proxy.url}/items/MLA1`);
      expect(item.status).toBe(200);
      await item.arrayBuffer();
      expect((await ledger(db.url)).map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });
});
