import pg from 'pg';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type TestDatabase, testDatabase } from '../support/postgres.js';
import { type StartRedisOptions, skipWithoutRedis, startRedis } from '../support/redis.js';

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

describe.skipIf(skipWithoutRedis())('redis test harness', () => {
  /** Sets a key, SIGKILLs the server, starts it again on the same port: is the key still there? */
  async function survivesKill(options: StartRedisOptions): Promise<boolean> {
    const server = await startRedis(options);
    try {
      const before = createClient({ url: server.url });
      await before.connect();
      await before.set('kept', 'yes');
      await before.close();
      await server.stop();
      await server.start();
      const after = createClient({ url: server.url });
      await after.connect();
      try {
        return (await after.get('kept')) === 'yes';
      } finally {
        await after.close();
      }
    } finally {
      await server.dispose();
    }
  }

  it('keeps every acknowledged write across a kill and restart with appendOnly', async () => {
    expect(await survivesKill({ appendOnly: true })).toBe(true);
  });

  it('keeps nothing across a restart by default', async () => {
    expect(await survivesKill({})).toBe(false);
  });
});
