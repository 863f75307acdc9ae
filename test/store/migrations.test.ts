/** Migrations: ordered, idempotent, safe when several processes run them at once. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, migrateStore, openStore, StoreNotMigratedError } from '../../src/store/index.js';
import { migrate, pendingMigrations } from '../../src/store/migrations.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';

describe('store migrations', () => {
  let base: TestDatabase;
  /** URL of a blank schema, selected through search_path, fresh for each test. */
  let url: string;
  let schema: string;
  const pools: pg.Pool[] = [];
  const pool = () => {
    const p = new pg.Pool({ connectionString: url, max: 2 });
    pools.push(p);
    return p;
  };

  beforeAll(async () => {
    base = await testDatabase();
  });
  // A schema per test is much cheaper than a database, and proves the store follows search_path.
  beforeEach(async () => {
    schema = `m_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client(base.url);
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    const u = new URL(base.url);
    u.searchParams.set('options', `-c search_path=${schema}`);
    url = u.toString();
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.end()));
  });
  afterAll(async () => {
    await base?.drop();
  });

  it('are listed with strictly increasing ids', () => {
    const ids = MIGRATIONS.map((m) => m.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    expect(MIGRATIONS.map((m) => m.name)).toEqual([
      'documents',
      'counters',
      'replicas',
      'stats_minute',
      'durable_counters',
      'stats_batches',
      'take_exact',
      'stats_account_dimension',
    ]);
  });

  it('apply once, record themselves, and do nothing the second time', async () => {
    const p = pool();
    expect(await pendingMigrations(p)).toHaveLength(MIGRATIONS.length);
    expect((await migrate(p)).map((m) => m.id)).toEqual(MIGRATIONS.map((m) => m.id));
    expect(await pendingMigrations(p)).toEqual([]);
    expect(await migrate(p)).toEqual([]);
    const { rows } = await p.query('SELECT id, name, applied_at FROM meli_proxy_migrations ORDER BY id');
    expect(rows.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => m.name));
    expect(rows[0].applied_at).toBeInstanceOf(Date);
    const tables = await p.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`,
      [schema],
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual([
      'meli_proxy_counters',
      'meli_proxy_documents',
      'meli_proxy_migrations',
      'meli_proxy_replicas',
      'meli_proxy_stats_batches',
      'meli_proxy_stats_minute',
    ]);
  });

  it('succeed exactly once when 8 clients migrate at the same moment', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => migrate(pool())));
    const applied = results.flat().map((m) => m.id);
    expect(applied.sort((a, b) => a - b)).toEqual(MIGRATIONS.map((m) => m.id));
    expect(results.filter((r) => r.length > 0)).toHaveLength(1);
    const { rows } = await pool().query('SELECT count(*)::int AS n FROM meli_proxy_migrations');
    expect(rows[0].n).toBe(MIGRATIONS.length);
  });

  it('roll a failing migration back and leave it pending', async () => {
    const p = pool();
    const broken = [
      ...MIGRATIONS.slice(0, 1),
      { id: 99, name: 'broken', sql: 'CREATE TABLE x (); SELECT 1/0' },
    ];
    await expect(migrate(p, broken)).rejects.toThrow(/migration 99 \(broken\) failed: division by zero/);
    expect((await pendingMigrations(p, broken)).map((m) => m.id)).toEqual([99]);
    const { rows } = await p.query(`SELECT to_regclass('x') AS x`);
    expect(rows[0].x).toBeNull();
  });

  it('refuse out-of-order lists', async () => {
    const bad = [MIGRATIONS[1]!, MIGRATIONS[0]!];
    await expect(migrate(pool(), bad)).rejects.toThrow(/out of order/);
  });

  it('must run before the store opens, unless it opens with migrate', async () => {
    const error = await openStore(url, { dataDir: '/x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreNotMigratedError);
    const message = (error as Error).message;
    expect(message).toContain('meli-proxy migrate --store postgres://postgres:***@127.0.0.1:');
    expect(message).toContain('--migrate');
    expect(message).not.toContain(new URL(base.url).password);
    expect((error as StoreNotMigratedError).exitCode).toBe(2);

    const store = await openStore(url, { dataDir: '/x', migrate: true });
    await store.documents.set('rules/a', { limit: 1 });
    await store.close();
    const again = await openStore(url, { dataDir: '/x' });
    expect(await again.documents.list('rules/')).toEqual([['rules/a', { limit: 1 }]]);
    await again.close();
    const { rows } = await pool().query(`SELECT key FROM ${schema}.meli_proxy_documents`);
    expect(rows).toEqual([{ key: 'meli:rules/a' }]);
  });

  it('run through migrateStore for the CLI, with a dry run', async () => {
    const dry = await migrateStore(url, { dryRun: true });
    expect(dry.applied).toHaveLength(MIGRATIONS.length);
    expect(dry.displayUrl).not.toContain(new URL(base.url).password);
    expect((await migrateStore(url)).applied).toHaveLength(MIGRATIONS.length);
    expect((await migrateStore(url)).applied).toEqual([]);
    expect(await migrateStore('embedded')).toEqual({ displayUrl: 'embedded', applied: [], hasSchema: false });
  });
});
