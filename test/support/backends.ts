/** Every store backend, opened fresh for a suite: the contracts are tested on all of them alike. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openStore, type Store } from '../../src/store/index.js';
import { type TestDatabase, testDatabase } from './postgres.js';
import { type RedisServer, skipWithoutRedis, startRedis } from './redis.js';

export interface Backend {
  name: string;
  open(): Promise<Store>;
  cleanup(): Promise<void>;
}

export function embeddedBackend(url: 'embedded' | 'memory'): Backend {
  let dir: string | undefined;
  return {
    name: url,
    async open() {
      dir ??= await mkdtemp(path.join(tmpdir(), 'meli-store-'));
      return openStore(url, { dataDir: dir });
    },
    async cleanup() {
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

export function postgresBackend(): Backend {
  let db: TestDatabase | undefined;
  return {
    name: 'postgres',
    async open() {
      db ??= await testDatabase();
      return openStore(db.url, { dataDir: '/nonexistent', migrate: true });
    },
    async cleanup() {
      await db?.drop();
    },
  };
}

export function redisBackend(): Backend {
  let server: RedisServer | undefined;
  return {
    name: 'redis',
    async open() {
      server ??= await startRedis();
      return openStore(server.url, { dataDir: '/nonexistent' });
    },
    async cleanup() {
      await server?.dispose();
    },
  };
}

/** Embedded, memory, PostgreSQL and Redis; without redis-server (outside CI) a loud notice replaces the Redis round. */
export function allBackends(): Backend[] {
  return [
    embeddedBackend('embedded'),
    embeddedBackend('memory'),
    postgresBackend(),
    ...(skipWithoutRedis() ? [] : [redisBackend()]),
  ];
}
