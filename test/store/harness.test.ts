import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type TestDatabase, testDatabase } from '../support/postgres.js';

describe('postgres test harness', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await testDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('gives each file its own database', async () => {
    const client = new pg.Client(db.url);
    await client.connect();
    const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
    await client.end();
    expect(rows[0]?.db).toBe(db.name);
  });

  it('stops and restarts a private server on the same port', async () => {
    const server = await startPostgres();
    try {
      const port = server.port;
      await server.stopServer();
      const down = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 1000 });
      await expect(down.connect()).rejects.toThrow();
      await server.startServer();
      expect(server.port).toBe(port);
      const up = new pg.Client(server.url);
      await up.connect();
      await up.end();
    } finally {
      await server.stop();
    }
  });
});
