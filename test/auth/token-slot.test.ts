/**
 * The token's compare-and-set on each real backend (the embedded file, PostgreSQL, Redis): of many
 * concurrent refreshes of one generation exactly one is written, a late writer never replaces a
 * newer generation or a newer login, and the shared stores hold the token sealed, never in clear.
 * And every account with the default comes back from one batched read.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccountStore } from '../../src/auth/accounts.js';
import type { TokenBackend } from '../../src/auth/token-backend.js';
import { REDIS_TOKEN_KEY } from '../../src/auth/token-slot-redis.js';
import { type StoredToken, type TokenStore, tokenFromLogin } from '../../src/auth/token-store.js';
import { openStore } from '../../src/store/index.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';
import { type RedisServer, skipWithoutRedis, startRedis } from '../support/redis.js';
import { fileAccounts, fileTokens, sharedTokens } from './helpers/tokens.js';

function login(tag: string): StoredToken {
  return tokenFromLogin({
    grant: {
      accessToken: `APP_USR-${tag}-access`,
      refreshToken: `TG-${tag}-refresh`,
      scope: 'read',
      expiresIn: 3600,
      userId: '1',
    },
    sentAt: Date.now(),
    clientId: '1234567890',
  });
}

function refreshed(from: StoredToken, tag: string): StoredToken {
  return {
    ...from,
    accessToken: `APP_USR-${tag}-access`,
    refreshToken: `TG-${tag}-refresh`,
    generation: from.generation + 1,
  };
}

/** The same properties, whatever the backend. */
function compareAndSetSuite(open: () => Promise<TokenStore>, raw?: () => Promise<string>): void {
  it('writes exactly one of many concurrent refreshes of a generation', async () => {
    const tokens = await open();
    const first = login('one');
    await tokens.saveLogin(first);
    const candidates = Array.from({ length: 12 }, (_, i) => refreshed(first, `r${i}`));
    const written = await Promise.all(candidates.map((candidate) => tokens.saveRefreshed(candidate)));
    expect(written.filter(Boolean)).toHaveLength(1);
    const winner = candidates[written.indexOf(true)]!;
    expect(await tokens.load()).toEqual(winner);
  });

  it('never lets a late writer replace a newer generation, a newer login or a logout', async () => {
    const tokens = await open();
    const first = login('two');
    await tokens.saveLogin(first);
    const second = refreshed(first, 'two-2');
    const third = refreshed(second, 'two-3');
    expect(await tokens.saveRefreshed(second)).toBe(true);
    expect(await tokens.saveRefreshed(third)).toBe(true);
    // A replica whose lock ran out comes back with generation 2: refused.
    expect(await tokens.saveRefreshed(refreshed(first, 'late'))).toBe(false);
    expect(await tokens.load()).toEqual(third);
    // A login during a refresh wins over the refresh's save.
    const newLogin = login('three');
    await tokens.saveLogin(newLogin);
    expect(await tokens.saveRefreshed(refreshed(third, 'after-login'))).toBe(false);
    expect(await tokens.load()).toEqual(newLogin);
    // After a logout nothing comes back.
    expect(await tokens.remove()).toBe(true);
    expect(await tokens.saveRefreshed(refreshed(newLogin, 'after-logout'))).toBe(false);
    expect(await tokens.load()).toBeUndefined();
  });

  if (raw) {
    it('holds the token sealed: no APP_USR- or TG- in the raw value', async () => {
      const tokens = await open();
      const token = login('four');
      await tokens.saveLogin(token);
      const value = await raw();
      expect(value).toContain('"format":"sealed"');
      expect(value).not.toContain('APP_USR-');
      expect(value).not.toContain('TG-');
      expect(await tokens.load()).toEqual(token);
      expect(await tokens.sealedWith()).toMatch(/^[0-9a-f]{12}$/);
    });
  }
}

/** Every account and the default in one read (what a running proxy polls), whatever the backend. */
function snapshotSuite(open: () => Promise<AccountStore>): void {
  it('reads every account document and the default at once, and decodes each as a load would', async () => {
    const accounts = await open();
    const logins = ['11', '12', '13'].map((id) => ({ ...login(`account-${id}`), userId: id }));
    for (const token of logins) await accounts.saveLogin(token);
    await accounts.setDefault('12');
    const snapshot = await accounts.snapshot();
    expect([...snapshot.documents.keys()].sort()).toEqual(['11', '12', '13']);
    expect(snapshot.defaultId).toBe('12');
    for (const token of logins) {
      expect(accounts.decode(token.userId!, snapshot.documents.get(token.userId!))).toEqual(token);
    }
    await accounts.remove('12');
    const after = await accounts.snapshot();
    expect([...after.documents.keys()].sort()).toEqual(['11', '13']);
    expect(after.defaultId).toBe('11');
  });
}

describe('token compare-and-set: embedded file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'meli-slot-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  compareAndSetSuite(async () => fileTokens(dir));
  snapshotSuite(async () => fileAccounts(dir));

  it('leaves no lock file behind', async () => {
    await fileTokens(dir).saveLogin(login('five'));
    await expect(readFile(path.join(dir, 'tokens.json.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('token compare-and-set: PostgreSQL', () => {
  let db: TestDatabase;
  const opened: TokenBackend[] = [];
  beforeAll(async () => {
    db = await testDatabase();
    await (await openStore(db.url, { dataDir: '/nonexistent', migrate: true })).close();
  }, 120_000);
  afterAll(async () => {
    await Promise.allSettled(opened.map((backend) => backend.close()));
    await db?.drop();
  });
  compareAndSetSuite(
    async () => {
      const backend = await sharedTokens(db.url, '/nonexistent');
      opened.push(backend);
      return backend.tokens;
    },
    async () => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ value: string }>(
          "SELECT value FROM meli_proxy_documents WHERE key = 'meli:auth/token'",
        );
        return rows[0]!.value;
      } finally {
        await client.end();
      }
    },
  );

  snapshotSuite(async () => {
    const backend = await sharedTokens(db.url, '/nonexistent');
    opened.push(backend);
    return backend.accounts;
  });

  it('is the document the store itself reads', async () => {
    const backend = await sharedTokens(db.url, '/nonexistent');
    opened.push(backend);
    const token = login('six');
    await backend.tokens.saveLogin(token);
    const store = await openStore(db.url, { dataDir: '/nonexistent' });
    try {
      expect(await store.documents.get('auth/token')).toMatchObject({
        format: 'sealed',
        lineage: token.lineage,
      });
    } finally {
      await store.close();
    }
  });
});

describe.skipIf(skipWithoutRedis())('token compare-and-set: Redis', () => {
  let redis: RedisServer;
  const opened: TokenBackend[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await Promise.allSettled(opened.map((backend) => backend.close()));
    await redis?.dispose();
  });
  compareAndSetSuite(
    async () => {
      const backend = await sharedTokens(redis.url, '/nonexistent');
      opened.push(backend);
      return backend.tokens;
    },
    async () => {
      const client = createClient({ url: redis.url });
      await client.connect();
      try {
        return (await client.get(REDIS_TOKEN_KEY)) ?? '';
      } finally {
        await client.quit();
      }
    },
  );

  snapshotSuite(async () => {
    const backend = await sharedTokens(redis.url, '/nonexistent');
    opened.push(backend);
    return backend.accounts;
  });

  it('is the document the store itself reads', async () => {
    const backend = await sharedTokens(redis.url, '/nonexistent');
    opened.push(backend);
    const token = login('seven');
    await backend.tokens.saveLogin(token);
    const store = await openStore(redis.url, { dataDir: '/nonexistent' });
    try {
      expect(await store.documents.get('auth/token')).toMatchObject({
        format: 'sealed',
        lineage: token.lineage,
      });
    } finally {
      await store.close();
    }
  });
});
