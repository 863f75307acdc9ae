/**
 * Keeps the proxy's MercadoLibre token fresh and hands it to the hot path (UpstreamAuth).
 *
 * - The current token is held in memory; `currentAuthorization()` only reads it (and the clock).
 * - Each replica plans a refresh at ~80 % of the token's lifetime, with jitter. When the time
 *   comes it takes the fleet-wide lock, re-reads the stored token, and refreshes only if the stored
 *   one is still the one it planned to refresh; otherwise another replica did it, and it adopts
 *   that. MercadoLibre's refresh tokens are single use, so this is what keeps `invalid_grant` away.
 * - Saves are compare-and-set (TokenSource.saveRefreshed): a refresh whose lock ran out, or that
 *   raced a new login or a logout, writes nothing and adopts what is stored instead.
 * - Every `pollIntervalMs` it re-reads the stored token, to pick up other replicas' refreshes and
 *   new logins (or a logout) early; or, with many accounts, the pool reads them all at once and
 *   `offer()`s each manager its document.
 * - An upstream 401 to a request sent with the injected token asks for one refresh, through the
 *   same lock, unless a newer token is already at hand.
 * - Past the token's usable time with a refresh in flight, `authorizationSoon()` lets a request
 *   wait for it (bounded) instead of going out without a token.
 */
import { hostname } from 'node:os';
import type { Registry } from 'prom-client';
import type { UpstreamAuth } from '../server/upstream-auth.js';
import type { Lock } from './lock.js';
import { type AuthLogger, withLogContext } from './log-context.js';
import { OAuthError, type TokenGrant } from './oauth-client.js';
import { type RefreshResult, registerTokenMetrics } from './token-metrics.js';
import { isNewer, type StoredToken, tokenFromRefresh } from './token-store.js';

export type { AuthLogger } from './log-context.js';

/** The part of TokenStore the manager uses. */
export interface TokenSource {
  load(): Promise<StoredToken | undefined>;
  /** Compare-and-set: false when a newer login, a newer refresh or a logout is stored. */
  saveRefreshed(token: StoredToken): Promise<boolean>;
  /** Records that the token's refresh token was refused, unless the stored token changed. */
  markRevoked?(token: StoredToken, at: number): Promise<boolean>;
}

/** How a manager gets the stored token: its own load, or a document its owner read in a batch. */
export type StoredRead = () => StoredToken | undefined | Promise<StoredToken | undefined>;

/** Spends a refresh token at the authorization server. Throws OAuthError. */
export type Refresher = (token: StoredToken) => Promise<TokenGrant>;

export const REFRESH_LOCK = 'token-refresh';

/** Tries to save a refreshed token before it is kept in memory only. */
const SAVE_ATTEMPTS = 3;

/** Longest a request waits for a refresh in flight when no usable token is held. */
export const TOKEN_WAIT_MS = 2000;

export interface TokenManagerOptions {
  tokens: TokenSource;
  lock: Lock;
  refresher: Refresher;
  logger: AuthLogger;
  overrideClientToken?: boolean;
  /** Epoch ms. */
  now?: () => number;
  /** In [0, 1). */
  random?: () => number;
  /** How often the stored token is re-read. Default 1000 ms. */
  pollIntervalMs?: number;
  /**
   * False when the owner reads the stored token for the manager and hands it over with `offer()`
   * (an AccountPool reads every account in one store call per interval): no timer of its own.
   * Default true.
   */
  selfPolling?: boolean;
  /** Share of the lifetime after which a refresh is planned. Default 0.8. */
  refreshAt?: number;
  /** Spread of the planned time, as a share of the lifetime either side. Default 0.05. */
  jitter?: number;
  /** How long to wait for the lock. Default 10 s. */
  lockWaitMs?: number;
  /**
   * How long a hung holder keeps the lock. Default 60 s: longer than the work under it can take
   * (token call 15 s, re-read and saves bounded by the store's 5 s each, SAVE_ATTEMPTS of them), so
   * the lock normally fences. Correctness does not rest on it: every save is a compare-and-set.
   */
  lockTtlMs?: number;
  /** Who refreshes, written into the token document. Default host:pid. */
  holder?: string;
  /** The lock taken around a refresh. Default REFRESH_LOCK; one per account (accounts.ts). */
  lockName?: string;
  /** Log fields added to every line (the account). */
  logContext?: object;
}

export type { RefreshResult } from './token-metrics.js';

export class TokenManager implements UpstreamAuth {
  readonly overrideClientToken: boolean;
  private current: StoredToken | undefined;
  private authorization: string | undefined;
  /** Until when `authorization` may be sent: a little before the real expiry. */
  private usableUntil = 0;
  /** The token (lineage#generation) whose refresh token was refused: no refresh is planned for it. */
  private deadToken: string | undefined;
  /** Why the last rotation failed, for `auth refresh`. */
  private lastFailure: OAuthError | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private rotating: Promise<RefreshResult> | undefined;
  private pollRun: Promise<void> | undefined;
  private stopped = false;
  private lastPollWarning = 0;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly refreshCounter = new Map<RefreshResult, number>();
  private readonly options: Required<
    Pick<
      TokenManagerOptions,
      'pollIntervalMs' | 'refreshAt' | 'jitter' | 'lockWaitMs' | 'lockTtlMs' | 'holder' | 'lockName'
    >
  >;

  constructor(private readonly deps: TokenManagerOptions) {
    this.overrideClientToken = deps.overrideClientToken ?? false;
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.options = {
      pollIntervalMs: deps.pollIntervalMs ?? 1000,
      refreshAt: deps.refreshAt ?? 0.8,
      jitter: deps.jitter ?? 0.05,
      lockWaitMs: deps.lockWaitMs ?? 10_000,
      lockTtlMs: deps.lockTtlMs ?? 60_000,
      holder: deps.holder ?? `${hostname()}:${process.pid}`,
      lockName: deps.lockName ?? REFRESH_LOCK,
    };
    this.log = deps.logContext ? withLogContext(deps.logger, deps.logContext) : deps.logger;
  }

  private readonly log: AuthLogger;

  /** Whether the held token's refresh token was refused (revoked): the account needs a new login. */
  get revoked(): boolean {
    const token = this.current;
    return token !== undefined && (token.revokedAt !== undefined || this.deadToken === tokenId(token));
  }

  /** How many refresh attempts ended with each result since the last call, which resets them. */
  takeRefreshCounts(): Map<RefreshResult, number> {
    const counts = new Map(this.refreshCounter);
    this.refreshCounter.clear();
    return counts;
  }

  /**
   * Loads the stored token (or takes the one `first` reads) and starts the refresh plan and the
   * polling.
   */
  async start(first?: StoredRead): Promise<StoredToken | undefined> {
    await this.poll(first);
    if (this.deps.selfPolling ?? true) {
      this.pollTimer = setInterval(() => void this.poll(), this.options.pollIntervalMs);
      this.pollTimer.unref();
    }
    return this.current;
  }

  /**
   * The stored token as the owner's batched read found it (`read` decodes it, and may throw like
   * a load): adopted when newer, dropped when gone, as the manager's own poll would. Skipped, and
   * false, while a read of the manager's own is under way (a refresh's re-read).
   */
  offer(read: StoredRead): Promise<boolean> {
    if (this.pollRun) return this.pollRun.then(() => false);
    return this.poll(read).then(() => true);
  }

  /** Stops the timers and waits for a refresh in progress (which holds the lock) to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.refreshTimer);
    await Promise.allSettled([this.rotating, this.pollRun]);
  }

  /** The token currently held (for status output and tests). */
  get token(): StoredToken | undefined {
    return this.current;
  }

  currentAuthorization(): string | undefined {
    // Never send a token past (or about to pass) its expiry: the request goes without one instead.
    if (this.authorization === undefined || this.now() >= this.usableUntil) return undefined;
    return this.authorization;
  }

  /**
   * A request about to go without a token because the held one is past its usable time, while a
   * refresh (or a re-read of the stored token) is under way, waits for that instead, up to
   * `maxWaitMs`: a moment's delay rather than a call the upstream answers as anonymous.
   */
  authorizationSoon(maxWaitMs = TOKEN_WAIT_MS): Promise<string | undefined> | undefined {
    if (this.currentAuthorization() !== undefined) return undefined;
    const pending = this.rotating ?? this.pollRun;
    if (!pending) return undefined;
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve(this.currentAuthorization());
      };
      const timer = setTimeout(done, maxWaitMs);
      pending.then(done, done);
    });
  }

  async refreshAfterUnauthorized(used: string): Promise<string | undefined> {
    const fresh = this.currentAuthorization();
    if (fresh !== undefined && fresh !== used) return fresh;
    await this.poll();
    const reloaded = this.currentAuthorization();
    if (reloaded !== undefined && reloaded !== used) return reloaded;
    const token = this.current;
    if (!token || bearer(token) !== used) return reloaded;
    // A token refused right after it was issued would be refused again: do not burn a rotation on it.
    const age = this.now() - token.obtainedAt;
    if (age < Math.min(60_000, (token.expiresAt - token.obtainedAt) * 0.1)) return undefined;
    await this.rotate(token, 'upstream answered 401');
    const after = this.currentAuthorization();
    return after !== used ? after : undefined;
  }

  /**
   * Refreshes now (the `auth refresh` command), through the same lock. Resolves with the outcome;
   * `failure` holds the reason when it is invalid_grant or error.
   */
  async refreshNow(): Promise<{
    result: RefreshResult;
    token: StoredToken | undefined;
    failure?: OAuthError;
  }> {
    const stored = await this.deps.tokens.load();
    if (!stored) return { result: 'no_token', token: undefined };
    // A token held here that is newer than the stored one is a refresh whose save failed: the
    // stored refresh token is spent, so go on from ours (rotateLocked saves it).
    const held = this.current;
    const base =
      held && held.lineage === stored.lineage && held.generation > stored.generation ? held : stored;
    this.adopt(base, false);
    const result = await this.rotate(base, 'requested');
    return { result, token: this.current, failure: this.lastFailure };
  }

  /** Registers the token metrics (token-metrics.ts) of this one token. */
  registerMetrics(registry: Registry): void {
    registerTokenMetrics(registry, {
      accounts: () => new Map([['default', this]]),
      defaultAccount: () => this,
      labelLimit: 0,
      now: this.now,
    });
  }

  /** Re-reads the stored token and adopts it when it is newer (or drops ours after a logout). */
  private poll(read: StoredRead = () => this.deps.tokens.load()): Promise<void> {
    this.pollRun ??= this.pollOnce(read).finally(() => {
      this.pollRun = undefined;
    });
    return this.pollRun;
  }

  private async pollOnce(read: StoredRead): Promise<void> {
    try {
      const stored = await read();
      if (this.stopped) return;
      if (stored === undefined) {
        if (this.current)
          this.log.warn({}, 'the stored MercadoLibre token was removed: no longer injecting one');
        this.drop();
      } else if (isNewer(stored, this.current) || revokedSince(stored, this.current)) {
        this.adopt(stored);
      }
    } catch (error) {
      const now = this.now();
      if (now - this.lastPollWarning > 60_000) {
        this.lastPollWarning = now;
        this.log.warn(
          { detail: describe(error) },
          'cannot read the stored MercadoLibre token; keeping the one held',
        );
      }
    }
  }

  private adopt(token: StoredToken, plan = true): void {
    this.current = token;
    this.authorization = bearer(token);
    const lifetime = Math.max(0, token.expiresAt - token.obtainedAt);
    // Stop sending a token shortly before it expires, so none expires on its way.
    this.usableUntil = token.expiresAt - Math.min(30_000, lifetime * 0.05);
    if (plan) this.planRefresh(token);
  }

  private drop(): void {
    this.current = undefined;
    this.authorization = undefined;
    this.usableUntil = 0;
    clearTimeout(this.refreshTimer);
  }

  private planRefresh(token: StoredToken, delayOverride?: number): void {
    clearTimeout(this.refreshTimer);
    if (
      this.stopped ||
      !token.refreshToken ||
      this.deadToken === tokenId(token) ||
      token.revokedAt !== undefined
    )
      return;
    const lifetime = Math.max(0, token.expiresAt - token.obtainedAt);
    const share = this.options.refreshAt + (this.random() * 2 - 1) * this.options.jitter;
    const due = token.obtainedAt + lifetime * share;
    const delay = delayOverride ?? Math.max(0, due - this.now());
    this.refreshTimer = setTimeout(() => {
      if (this.current === token) void this.rotate(token, 'planned');
    }, delay);
    this.refreshTimer.unref();
  }

  /** Refreshes `expected` unless someone already has; one attempt at a time per process. */
  private rotate(expected: StoredToken, reason: string): Promise<RefreshResult> {
    this.rotating ??= this.rotateOnce(expected, reason).finally(() => {
      this.rotating = undefined;
    });
    return this.rotating;
  }

  private async rotateOnce(expected: StoredToken, reason: string): Promise<RefreshResult> {
    this.lastFailure = undefined;
    let result: RefreshResult;
    try {
      result = await this.rotateLocked(expected, reason);
    } catch (error) {
      this.log.error({ detail: describe(error) }, 'token refresh failed');
      this.lastFailure = error instanceof OAuthError ? error : undefined;
      result = 'error';
    }
    this.count(result);
    if (result === 'error' || result === 'lock_timeout') this.retryLater();
    return result;
  }

  private async rotateLocked(expected: StoredToken, reason: string): Promise<RefreshResult> {
    const handle = await this.deps.lock.acquire(this.options.lockName, {
      waitMs: this.options.lockWaitMs,
      ttlMs: this.options.lockTtlMs,
    });
    if (!handle) {
      this.log.warn({ waitedMs: this.options.lockWaitMs }, 'token refresh lock is busy; will retry');
      await this.poll();
      return 'lock_timeout';
    }
    try {
      // Under the lock, the stored token is the truth: another replica may have refreshed already.
      const stored = await this.deps.tokens.load();
      if (!stored) {
        this.drop();
        return 'no_token';
      }
      if (stored.lineage === expected.lineage && stored.generation < expected.generation) {
        // Ours came from a refresh whose save failed: the stored refresh token is spent, so saving
        // ours is the way on (refreshing with the stored one would end in invalid_grant).
        if (!(await this.saveWithRetries(expected))) return this.superseded();
        this.adopt(expected);
        this.log.info({ generation: expected.generation }, 'saved the refreshed MercadoLibre token');
        return 'saved';
      }
      if (stored.lineage !== expected.lineage || stored.generation !== expected.generation) {
        this.adopt(stored);
        return 'adopted';
      }
      if (stored.revokedAt !== undefined) {
        // Another replica was refused this refresh token already: spending it again cannot work.
        this.adopt(stored);
        return 'skipped';
      }
      if (!stored.refreshToken) {
        this.log.warn(
          {},
          'the stored token has no refresh token: run "meli-proxy auth login" before it expires',
        );
        return 'skipped';
      }
      const sentAt = this.now();
      let grant: TokenGrant;
      try {
        grant = await this.deps.refresher(stored);
      } catch (error) {
        if (error instanceof OAuthError && error.code === 'invalid_grant')
          return this.afterInvalidGrant(stored, error);
        throw error;
      }
      const next = tokenFromRefresh(stored, grant, sentAt, this.options.holder);
      // A login or logout while the token endpoint answered (`auth` commands take the lock only
      // to write) wins: the compare-and-set refuses to write over it.
      if (!(await this.saveWithRetries(next))) return this.superseded();
      this.adopt(next);
      this.log.info(
        { reason, generation: next.generation, expiresAt: new Date(next.expiresAt).toISOString() },
        'refreshed the MercadoLibre token',
      );
      return 'success';
    } finally {
      await handle.release();
    }
  }

  /** The refresh token was refused: maybe another process (outside our lock) spent it first. */
  private async afterInvalidGrant(spent: StoredToken, error: OAuthError): Promise<RefreshResult> {
    const stored = await this.deps.tokens.load().catch(() => undefined);
    if (stored && isNewer(stored, spent)) {
      this.adopt(stored);
      return 'adopted';
    }
    this.lastFailure = error;
    this.deadToken = tokenId(spent);
    // Recorded in the store so `auth list` and every replica see the account needs a new login.
    const marked = await this.deps.tokens.markRevoked?.(spent, this.now()).catch(() => false);
    if (marked && this.current && tokenId(this.current) === tokenId(spent)) {
      this.current = { ...this.current, revokedAt: this.now() };
    }
    this.log.error(
      { generation: spent.generation },
      'MercadoLibre refused the stored refresh token (invalid_grant): run "meli-proxy auth login" again; the current access token is used until it expires',
    );
    return 'invalid_grant';
  }

  /** A newer login (or a logout) was stored while we refreshed: that is what counts now. */
  private async superseded(): Promise<RefreshResult> {
    const stored = await this.deps.tokens.load().catch(() => undefined);
    if (stored) this.adopt(stored);
    else this.drop();
    this.log.info(
      { stored: stored ? 'another login or refresh' : 'none (logged out)' },
      'the stored token changed during the refresh: keeping the stored one',
    );
    return 'superseded';
  }

  /**
   * The new refresh token exists only in memory until saved, and the old one is spent: losing it
   * means a new login. So try again (still under the lock) before giving up. False when the
   * compare-and-set found a newer token (or none): then ours must not be written at all.
   */
  private async saveWithRetries(token: StoredToken): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.deps.tokens.saveRefreshed(token);
      } catch (error) {
        if (attempt >= SAVE_ATTEMPTS) {
          // Keep using it here; other replicas will need a new login once theirs expires.
          this.adopt(token);
          throw new Error(`could not save the refreshed token: ${describe(error)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }

  /** After a failed attempt: try again soon, but not in a tight loop. */
  private retryLater(): void {
    const token = this.current;
    if (!token || this.stopped) return;
    const remaining = token.expiresAt - this.now();
    this.planRefresh(token, Math.max(1000, Math.min(30_000, remaining / 10)));
  }

  private count(result: RefreshResult): void {
    this.refreshCounter.set(result, (this.refreshCounter.get(result) ?? 0) + 1);
  }
}

export function bearer(token: StoredToken): string {
  return `Bearer ${token.accessToken}`;
}

/** The same token as `held`, now marked revoked by another process. */
function revokedSince(stored: StoredToken, held: StoredToken | undefined): boolean {
  return (
    held !== undefined &&
    stored.revokedAt !== undefined &&
    held.revokedAt === undefined &&
    tokenId(stored) === tokenId(held)
  );
}

function tokenId(token: StoredToken): string {
  return `${token.lineage}#${token.generation}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
