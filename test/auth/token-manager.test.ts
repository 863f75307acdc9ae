import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InProcessLock } from '../../src/auth/lock.js';
import { OAuthError } from '../../src/auth/oauth-client.js';
import { tokenRefresher } from '../../src/auth/proxy-auth.js';
import {
  type AuthLogger,
  bearer,
  TokenManager,
  type TokenManagerOptions,
} from '../../src/auth/token-manager.js';
import { replaceable } from '../../src/auth/token-slot.js';
import { type StoredToken, tokenFromRefresh } from '../../src/auth/token-store.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { loggedInToken } from './helpers/tokens.js';

/** The token document, in memory, shared by the managers of one test (as a database would be). */
class MemoryTokens {
  token: StoredToken | undefined;
  /** Answers for the next loads, before `token`: a replica that reads a stale row. */
  staleReads: StoredToken[] = [];
  saves = 0;
  loads = 0;
  async load(): Promise<StoredToken | undefined> {
    this.loads++;
    return this.staleReads.shift() ?? this.token;
  }
  /** The compare-and-set every real store does (token-slot.ts). */
  async saveRefreshed(token: StoredToken): Promise<boolean> {
    if (!replaceable(this.token, token.lineage, token.generation - 1)) return false;
    this.saves++;
    this.token = token;
    return true;
  }
}

/** Counts the attempts to take the refresh lock: each refresh starts with one. */
class CountingLock extends InProcessLock {
  acquired = 0;
  override acquire(...args: Parameters<InProcessLock['acquire']>): ReturnType<InProcessLock['acquire']> {
    this.acquired++;
    return super.acquire(...args);
  }
}

/** Collects log lines, to check that no secret ever reaches them. */
function recordingLogger(): AuthLogger & { lines: string[] } {
  const lines: string[] = [];
  const record = (obj: object, msg?: string): void => {
    lines.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  };
  return { lines, info: record, warn: record, error: record };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for `check`; the deadline only catches a hang. */
async function until(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(10);
  }
}

describe('TokenManager', () => {
  let meli: FakeMeli;
  const managers: TokenManager[] = [];

  beforeAll(async () => {
    meli = await startFakeMeli({ expiresIn: 1 });
  });
  afterAll(async () => {
    await meli.close();
  });
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((manager) => manager.stop()));
    meli.setExpiresIn(1);
    meli.resetStats();
  });

  function login(lifetimeSeconds = 1): StoredToken {
    meli.setExpiresIn(lifetimeSeconds);
    return loggedInToken(meli);
  }

  function manager(
    tokens: MemoryTokens,
    lock: InProcessLock,
    extra: Partial<TokenManagerOptions> = {},
  ): TokenManager {
    const created = new TokenManager({
      tokens,
      lock,
      logger: recordingLogger(),
      refresher: tokenRefresher({ tokenUrl: new URL(meli.tokenUrl), clientSecret: meli.client.secret }),
      pollIntervalMs: 100,
      ...extra,
    });
    managers.push(created);
    return created;
  }

  it('hands out the stored token and stops before it expires', async () => {
    const tokens = new MemoryTokens();
    tokens.token = login(3600);
    let now = tokens.token.obtainedAt;
    const subject = manager(tokens, new InProcessLock(), { now: () => now });
    await subject.start();
    expect(subject.currentAuthorization()).toBe(bearer(tokens.token));
    // The last 5 % of the lifetime (at most 30 s) is not used: no token may expire on its way.
    now = tokens.token.expiresAt - 31_000;
    expect(subject.currentAuthorization()).toBe(bearer(tokens.token));
    now = tokens.token.expiresAt - 29_000;
    expect(subject.currentAuthorization()).toBeUndefined();
  });

  // The refresh is planned at 80 % of the lifetime ± 5 % jitter (random() 0 → 75 %, 1 → 85 %). The
  // manager's clock is set at a share of a one-hour lifetime: past the planned share the refresh
  // timer fires at once; before it, it is half an hour or more away and the test sees no attempt.
  it.each([
    { random: 0.5, elapsed: 0.799, refreshes: false },
    { random: 0.5, elapsed: 0.801, refreshes: true },
    { random: 0, elapsed: 0.751, refreshes: true },
    { random: 1, elapsed: 0.849, refreshes: false },
  ])(
    'refreshes at 80 % of the lifetime ± the jitter: random $random, $elapsed of it gone → refreshes $refreshes',
    async ({ random, elapsed, refreshes }) => {
      const tokens = new MemoryTokens();
      const first = login(3600);
      tokens.token = first;
      const now = first.obtainedAt + (first.expiresAt - first.obtainedAt) * elapsed;
      const lock = new CountingLock();
      const subject = manager(tokens, lock, { now: () => now, random: () => random });
      await subject.start();
      if (refreshes) {
        await until(() => tokens.token?.generation === 2);
        expect(tokens.token!.refreshToken).not.toBe(first.refreshToken);
        expect(tokens.token!.nickname).toBe(meli.user.nickname);
        expect(subject.currentAuthorization()).toBe(bearer(tokens.token!));
        expect(meli.stats.refreshCalls).toBe(1);
      } else {
        // A due refresh timer (delay 0, set while start() adopted the token) fires before the
        // first 100 ms poll, and its first step is to take the lock.
        const loads = tokens.loads;
        await until(() => tokens.loads >= loads + 2);
        expect(lock.acquired).toBe(0);
        expect(tokens.token).toBe(first);
        expect(subject.currentAuthorization()).toBe(bearer(first));
      }
    },
  );

  it('past the usable time with a refresh in flight, a request waits for the new token (bounded)', async () => {
    const tokens = new MemoryTokens();
    const first = login(2);
    tokens.token = first;
    // The refresh starts at ~80 % (1.6 s) and takes 1 s: from 1.9 s (the last 5 % is not used) to
    // ~2.6 s no token is usable while the refresh is in flight.
    meli.setRefreshDelay(1000);
    try {
      const subject = manager(tokens, new InProcessLock(), { random: () => 0.5 });
      await subject.start();
      expect(subject.authorizationSoon()).toBeUndefined();
      await until(() => subject.currentAuthorization() === undefined);
      expect(meli.stats.refreshCalls).toBe(1);
      const soon = subject.authorizationSoon();
      expect(soon).toBeDefined();
      const fresh = await soon;
      expect(fresh).toBeDefined();
      expect(fresh).not.toBe(bearer(first));
      expect(fresh).toBe(bearer(tokens.token!));
      // With a usable token there is nothing to wait for.
      expect(subject.authorizationSoon()).toBeUndefined();
    } finally {
      meli.setRefreshDelay(0);
    }
  });

  it('gives up waiting after the bound when the refresh does not come back in time', async () => {
    const tokens = new MemoryTokens();
    tokens.token = login(2);
    meli.setRefreshDelay(3000);
    try {
      const subject = manager(tokens, new InProcessLock(), { random: () => 0.5 });
      await subject.start();
      await until(() => subject.currentAuthorization() === undefined);
      const asked = Date.now();
      expect(await subject.authorizationSoon(300)).toBeUndefined();
      // Timers never fire early; and it gave up on the bound, not when the refresh came back.
      expect(Date.now() - asked).toBeGreaterThanOrEqual(290);
      expect(tokens.token!.generation).toBe(1);
    } finally {
      meli.setRefreshDelay(0);
    }
  });

  it('lets exactly one of several replicas refresh each rotation; the others adopt', async () => {
    const tokens = new MemoryTokens();
    tokens.token = login(1);
    const lock = new InProcessLock();
    const fleet = [manager(tokens, lock), manager(tokens, lock), manager(tokens, lock)];
    await Promise.all(fleet.map((member) => member.start()));
    await until(() => (tokens.token?.generation ?? 0) >= 4);
    expect(meli.stats.invalidGrants).toBe(0);
    expect([...meli.stats.refreshCallsByToken.values()].every((calls) => calls === 1)).toBe(true);
    expect(meli.stats.refreshCalls).toBe(tokens.token!.generation - 1);
    // Every replica holds a usable token, the newest or the one before it (polled every 100 ms).
    for (const member of fleet) expect(member.currentAuthorization()).toBeDefined();
  });

  it('after a 401, returns a newer stored token without refreshing', async () => {
    const tokens = new MemoryTokens();
    const old = login(3600);
    tokens.token = old;
    const subject = manager(tokens, new InProcessLock(), { pollIntervalMs: 60_000 });
    await subject.start();
    const newer = { ...login(3600), lineage: old.lineage, generation: 2 };
    tokens.token = newer;
    expect(await subject.refreshAfterUnauthorized(bearer(old))).toBe(bearer(newer));
    expect(meli.stats.refreshCalls).toBe(0);
  });

  it('after a 401 to the current token, refreshes once (even when many requests ask at once)', async () => {
    const tokens = new MemoryTokens();
    const old = login(3600);
    old.obtainedAt -= 3600_000 * 0.5; // half-way through its life
    tokens.token = old;
    const subject = manager(tokens, new InProcessLock(), { pollIntervalMs: 60_000 });
    await subject.start();
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => subject.refreshAfterUnauthorized(bearer(old))),
    );
    expect(new Set(answers).size).toBe(1);
    expect(answers[0]).toBe(bearer(tokens.token!));
    expect(answers[0]).not.toBe(bearer(old));
    expect(meli.stats.refreshCalls).toBe(1);
  });

  it('does not burn a rotation on a 401 to a token issued moments ago', async () => {
    const tokens = new MemoryTokens();
    tokens.token = login(3600);
    const subject = manager(tokens, new InProcessLock(), { pollIntervalMs: 60_000 });
    await subject.start();
    expect(await subject.refreshAfterUnauthorized(bearer(tokens.token))).toBeUndefined();
    expect(meli.stats.refreshCalls).toBe(0);
  });

  it('on invalid_grant keeps the token until it expires, says to log in, and picks up a new login', async () => {
    const tokens = new MemoryTokens();
    const spent = login(1);
    tokens.token = spent;
    const logger = recordingLogger();
    const registry = new Registry();
    const subject = manager(tokens, new InProcessLock(), {
      logger,
      refresher: async () => {
        throw new OAuthError('invalid_grant', 'refused');
      },
    });
    subject.registerMetrics(registry);
    await subject.start();
    await until(() => logger.lines.some((line) => line.includes('invalid_grant')));
    expect(subject.currentAuthorization()).toBe(bearer(spent));
    expect(await registry.metrics()).toContain('meli_proxy_token_refresh_total{result="invalid_grant"} 1');

    const fresh = login(3600);
    tokens.token = fresh;
    await until(() => subject.currentAuthorization() === bearer(fresh));
    for (const line of logger.lines) {
      expect(line).not.toContain(spent.accessToken);
      expect(line).not.toContain(spent.refreshToken!);
    }
  });

  it('a refresh token spent by another process (outside the lock) is adopted, not reported', async () => {
    const tokens = new MemoryTokens();
    const first = login(3600);
    tokens.token = first;
    const refresher = tokenRefresher({ tokenUrl: new URL(meli.tokenUrl), clientSecret: meli.client.secret });
    const subject = manager(tokens, new InProcessLock(), { pollIntervalMs: 60_000, refresher });
    await subject.start();
    // `auth refresh` in another process spends the refresh token; its save lands just after our
    // re-read under the lock, so our own refresh meets invalid_grant.
    const second = tokenFromRefresh(first, await refresher(first), Date.now());
    tokens.token = second;
    tokens.staleReads = [first, first];
    const answer = await subject.refreshNow();
    expect(answer.result).toBe('adopted');
    expect(meli.stats.invalidGrants).toBe(1);
    expect(subject.currentAuthorization()).toBe(bearer(second));
  });

  it('saves a refreshed token whose first saves failed, instead of refreshing again with the spent one', async () => {
    const tokens = new MemoryTokens();
    const first = login(3600);
    tokens.token = first;
    let failures = 3;
    const save = tokens.saveRefreshed.bind(tokens);
    tokens.saveRefreshed = async (token) => {
      if (failures-- > 0) throw new Error('disk full');
      return save(token);
    };
    const subject = manager(tokens, new InProcessLock(), { pollIntervalMs: 60_000 });
    await subject.start();
    // The refresh spends generation 1's refresh token; every save of generation 2 fails.
    expect((await subject.refreshNow()).result).toBe('error');
    expect(tokens.token).toBe(first);
    const refreshed = subject.currentAuthorization();
    expect(refreshed).not.toBe(bearer(first));
    // The next attempt saves what it holds: no second refresh, no invalid_grant, no new login.
    expect((await subject.refreshNow()).result).toBe('saved');
    expect(tokens.token?.generation).toBe(2);
    expect(subject.currentAuthorization()).toBe(refreshed);
    expect(meli.stats.refreshCalls).toBe(1);
    expect(meli.stats.invalidGrants).toBe(0);
  }, 15_000);

  it('keeps no token refreshed while a logout happened elsewhere', async () => {
    const tokens = new MemoryTokens();
    tokens.token = login(3600);
    const subject = manager(tokens, new InProcessLock(), { pollIntervalMs: 60_000 });
    await subject.start();
    meli.setRefreshDelay(300);
    try {
      const refreshing = subject.refreshNow();
      await until(() => meli.stats.refreshCalls === 1);
      // `auth logout` in another process, while the token endpoint is answering.
      tokens.token = undefined;
      expect((await refreshing).result).toBe('superseded');
    } finally {
      meli.setRefreshDelay(0);
    }
    expect(tokens.token).toBeUndefined();
    expect(subject.currentAuthorization()).toBeUndefined();
  });

  it('keeps a login that happened during a refresh, even when the refresh had lost its lock', async () => {
    const tokens = new MemoryTokens();
    const old = login(3600);
    tokens.token = old;
    // A lock that runs out long before the token endpoint answers: only the compare-and-set fences.
    const subject = manager(tokens, new InProcessLock(), { pollIntervalMs: 60_000, lockTtlMs: 50 });
    await subject.start();
    meli.setRefreshDelay(400);
    let newLogin: StoredToken;
    try {
      const refreshing = subject.refreshNow();
      await until(() => meli.stats.refreshCalls === 1);
      // `auth login` in another process, while the token endpoint is answering.
      newLogin = login(3600);
      tokens.token = newLogin;
      expect((await refreshing).result).toBe('superseded');
    } finally {
      meli.setRefreshDelay(0);
    }
    expect(tokens.token).toBe(newLogin);
    expect(subject.currentAuthorization()).toBe(bearer(newLogin));
    expect(meli.stats.invalidGrants).toBe(0);
  });

  it('stops injecting after a logout', async () => {
    const tokens = new MemoryTokens();
    tokens.token = login(3600);
    const subject = manager(tokens, new InProcessLock());
    await subject.start();
    expect(subject.currentAuthorization()).toBeDefined();
    tokens.token = undefined;
    await until(() => subject.currentAuthorization() === undefined);
  });

  it('exports the refresh counter and the remaining lifetime', async () => {
    const tokens = new MemoryTokens();
    tokens.token = login(1);
    const registry = new Registry();
    const subject = manager(tokens, new InProcessLock());
    subject.registerMetrics(registry);
    await subject.start();
    await until(() => tokens.token?.generation === 2);
    const text = await registry.metrics();
    expect(text).toContain('meli_proxy_token_refresh_total{result="success"} 1');
    const remaining = Number(/^meli_proxy_token_expires_in_seconds (\S+)$/m.exec(text)?.[1]);
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThanOrEqual(1);
    expect(text).not.toContain(tokens.token!.accessToken);
  });
});

describe('InProcessLock', () => {
  it('excludes, times out, and frees a lock whose holder overstays its ttl', async () => {
    const lock = new InProcessLock();
    const first = await lock.acquire('x', { waitMs: 0, ttlMs: 200 });
    expect(first).toBeDefined();
    expect(await lock.acquire('x', { waitMs: 50, ttlMs: 200 })).toBeUndefined();
    expect(await lock.acquire('y', { waitMs: 0, ttlMs: 200 })).toBeDefined();
    const waiter = lock.acquire('x', { waitMs: 1000, ttlMs: 200 });
    const started = Date.now();
    const second = await waiter;
    expect(second).toBeDefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    await first!.release(); // too late: no effect on the new holder
    expect(await lock.acquire('x', { waitMs: 0, ttlMs: 200 })).toBeUndefined();
    await second!.release();
    expect(await lock.acquire('x', { waitMs: 0, ttlMs: 200 })).toBeDefined();
  });
});
