/**
 * A proxy with many accounts reads them all in one store call per interval, not one per account:
 * on real PostgreSQL, with a counting wrapper around the real token slots, 50 accounts cost one
 * read per poll, and that one read brings a refresh made elsewhere, a new login, a logout and a
 * changed default. Then the same end to end: a running `serve` (default workers) picks up a new
 * login made as the default, within a deadline that only catches a hang.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountPool } from '../../src/auth/account-pool.js';
import { AccountStore } from '../../src/auth/accounts.js';
import { InProcessLock } from '../../src/auth/lock.js';
import type { TokenSlot, TokenSlots } from '../../src/auth/token-slot.js';
import { PostgresTokenSlots } from '../../src/auth/token-slot-postgres.js';
import { type StoredToken, tokenFromLogin, tokenFromRefresh } from '../../src/auth/token-store.js';
import { openStore } from '../../src/store/index.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';
import { type CliProcess, killChildren } from '../support/proxy.js';
import { ensureBuilt } from './helpers/build.js';
import { spawnInjectingServe } from './helpers/serve.js';
import { fileAccounts, loggedInToken } from './helpers/tokens.js';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const ACCOUNTS = 50;

/** The real slots, counting every call that reads the store. */
class CountingSlots implements TokenSlots {
  reads = 0;
  constructor(private readonly inner: TokenSlots) {}
  slot(key: string): TokenSlot {
    const slot = this.inner.slot(key);
    return {
      read: () => {
        this.reads++;
        return slot.read();
      },
      put: (document) => slot.put(document),
      replaceIf: (lineage, generation, document) => slot.replaceIf(lineage, generation, document),
      remove: () => slot.remove(),
      close: () => slot.close(),
    };
  }
  keys(prefix: string): Promise<string[]> {
    this.reads++;
    return this.inner.keys(prefix);
  }
  readAll(prefix: string): Promise<Map<string, unknown>> {
    this.reads++;
    return this.inner.readAll(prefix);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function grantOf(accessToken: string) {
  return { accessToken, refreshToken: undefined, scope: undefined, expiresIn: 6 * 3600, userId: undefined };
}

/** The real account store, counting the documents it opens. */
class CountingAccounts extends AccountStore {
  decoded = 0;
  override decode(id: string, document: unknown): StoredToken | undefined {
    this.decoded++;
    return super.decode(id, document);
  }
}

/** A login of user `id`, valid for hours: no refresh comes due during the test. */
function login(id: number): StoredToken {
  return tokenFromLogin({
    grant: {
      accessToken: `APP_USR-test-${id}`,
      refreshToken: `TG-test-${id}`,
      scope: undefined,
      expiresIn: 6 * 3600,
      userId: String(id),
    },
    sentAt: Date.now(),
    clientId: 'test-client',
    user: { id: String(id), nickname: `SELLER_${id}`, siteId: 'MLA' },
  });
}

describe('50 accounts on PostgreSQL: one store read per poll', () => {
  let db: TestDatabase;
  let counted: CountingSlots;
  let writer: AccountStore;
  let writerSlots: PostgresTokenSlots;
  let pool: AccountPool;
  let reader: CountingAccounts;

  beforeAll(async () => {
    db = await testDatabase();
    await (await openStore(db.url, { dataDir: '/nonexistent', migrate: true })).close();
    writerSlots = new PostgresTokenSlots(db.url);
    writer = new AccountStore(writerSlots, 'test database', { keys: undefined });
    for (let id = 1; id <= ACCOUNTS; id++) await writer.saveLogin(login(id));
    counted = new CountingSlots(new PostgresTokenSlots(db.url));
    reader = new CountingAccounts(counted, 'test database', { keys: undefined });
    pool = new AccountPool({
      accounts: reader,
      lock: new InProcessLock(),
      refresher: async () => {
        throw new Error('no refresh is due in this test');
      },
      logger: silent,
      overrideClientToken: false,
      defaultAccount: 'auto',
      routes: [],
      maxConcurrentRefreshes: 4,
      labelLimit: 50,
      // The test polls by hand: sync() is what the interval runs.
      discoverIntervalMs: 3_600_000,
    });
  }, 120_000);

  afterAll(async () => {
    await pool?.stop();
    await counted?.close();
    await writerSlots?.close();
    await db?.drop();
  });

  it('starts all 50 from one read, and each poll is one read', async () => {
    await pool.start();
    expect(pool.accounts().size).toBe(ACCOUNTS);
    expect(pool.defaultId()).toBe('1');
    const afterStart = counted.reads;
    // The legacy-token migration reads its own document once; the accounts themselves, one read.
    expect(afterStart).toBeLessThanOrEqual(2);
    expect(reader.decoded).toBe(ACCOUNTS);
    for (let round = 1; round <= 3; round++) {
      await pool.sync();
      expect(counted.reads - afterStart).toBe(round);
    }
    // Unchanged documents are not opened again.
    expect(reader.decoded).toBe(ACCOUNTS);
    // No manager polls the store on its own: a while with no sync reads nothing.
    const before = counted.reads;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(counted.reads).toBe(before);
  });

  it('one read brings a refresh made elsewhere, a new login, a logout and a changed default', async () => {
    const seven = (await writer.account('7').load())!;
    expect(
      await writer
        .account('7')
        .saveRefreshed(tokenFromRefresh(seven, { ...grantOf('APP_USR-new-7') }, Date.now())),
    ).toBe(true);
    await writer.saveLogin(login(51));
    await writer.setDefault('51');
    await writer.remove('3');
    const before = counted.reads;
    const decodedBefore = reader.decoded;
    await pool.sync();
    expect(counted.reads - before).toBe(1);
    // Only the two documents that changed (7 refreshed, 51 new) are opened.
    expect(reader.decoded - decodedBefore).toBe(2);
    expect(pool.accounts().get('7')?.token?.generation).toBe(2);
    expect(pool.accounts().get('7')?.currentAuthorization()).toBe('Bearer APP_USR-new-7');
    expect(pool.accounts().get('51')?.token?.nickname).toBe('SELLER_51');
    expect(pool.accounts().has('3')).toBe(false);
    expect(pool.defaultId()).toBe('51');
    expect(pool.accounts().size).toBe(ACCOUNTS);
  });
});

describe('a running serve (default workers) picks up a new login made the default', () => {
  const SELLER_B = { id: 222333444, nickname: 'SELLER_B', site_id: 'MLB' };
  let meli: FakeMeli;
  let dir: string;
  let proxy: CliProcess | undefined;

  beforeAll(async () => {
    [meli] = await Promise.all([startFakeMeli({ users: [SELLER_B] }), ensureBuilt()]);
    dir = await mkdtemp(path.join(tmpdir(), 'meli-accounts-discovery-'));
  }, 120_000);
  afterAll(async () => {
    await proxy?.stop().catch(() => undefined);
    killChildren();
    await meli?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the new default to requests naming no account, and the new account by name', async () => {
    const accounts = fileAccounts(dir);
    await accounts.saveLogin(loggedInToken(meli));
    proxy = await spawnInjectingServe(meli, dir);
    const whose = async (headers: Record<string, string> = {}): Promise<unknown> => {
      const response = await fetch(`${proxy!.url}/items/MLA1`, { headers });
      const body = (await response.json()) as { user_id?: number };
      return response.status === 200 ? (body.user_id ?? 'anonymous') : response.status;
    };
    expect(await whose()).toBe(meli.user.id);
    expect(await whose({ 'x-meli-account': 'SELLER_B' })).toBe(403);

    await accounts.saveLogin(loggedInToken(meli, Date.now(), SELLER_B.id));
    await accounts.setDefault(String(SELLER_B.id));
    // Only a hang guard: the workers see it at their next read (about a second).
    const deadline = Date.now() + 30_000;
    let streak = 0;
    // Requests spread over both workers: several in a row must all see the change.
    while (streak < 6) {
      streak = (await whose()) === SELLER_B.id ? streak + 1 : 0;
      if (Date.now() > deadline) throw new Error('the new default was never served');
      if (streak === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (let n = 0; n < 4; n++) {
      expect(await whose({ 'x-meli-account': 'SELLER_B' })).toBe(SELLER_B.id);
      expect(await whose({ 'x-meli-account': String(meli.user.id) })).toBe(meli.user.id);
    }
    expect(await proxy.stop('SIGTERM', 15_000)).toBe(0);
    proxy = undefined;
  }, 90_000);
});
