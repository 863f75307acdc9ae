/**
 * `serve --inject-token` with accounts: one TokenManager per stored account, each refreshing its own
 * token under its own lock name with its own compare-and-set (accounts.ts), so a revoked or failing
 * account never disturbs another. The pool
 * - reads every account's document and the default in one store call per interval (one SELECT,
 *   one file read, one MGET), hands each manager its token, and so finds refreshes by other
 *   replicas, accounts added or removed by `auth login`/`auth logout` and a new default in the same
 *   read: 500 accounts cost one read per second per process, not 500;
 * - bounds how many token calls run at once across all accounts (`maxConcurrentRefreshes`): the
 *   planned refreshes are already spread by each manager's jitter, the bound covers the rest
 *   (many accounts expired together, a burst of 401s);
 * - picks the account per request (forRequest): the X-Meli-Account header, else the first matching
 *   --account-routes rule, else the default (--default-account). A named account that is not held
 *   is refused, never served with another seller's token.
 * As an UpstreamAuth of its own it stands for the default account.
 */
import type { IncomingMessage } from 'node:http';
import type { Registry } from 'prom-client';
import type { AccountChoice, AccountRefusal, UpstreamAuth } from '../server/upstream-auth.js';
import { ACCOUNT_HEADER } from '../server/upstream-auth.js';
import { type AccountRoute, compileAccountRoutes } from './account-routes.js';
import { type AccountStore, accountLockName, documentFingerprint } from './accounts.js';
import type { Lock } from './lock.js';
import type { AuthLogger } from './log-context.js';
import {
  REFRESH_LOCK,
  type Refresher,
  type StoredRead,
  TokenManager,
  type TokenManagerOptions,
} from './token-manager.js';
import { type MeteredAccounts, registerTokenMetrics } from './token-metrics.js';

export interface AccountPoolOptions {
  accounts: AccountStore;
  lock: Lock;
  refresher: Refresher;
  logger: AuthLogger;
  overrideClientToken: boolean;
  /** `auto` (the stored default), `none`, or the user id or nickname of an account. */
  defaultAccount: string;
  routes: readonly AccountRoute[];
  maxConcurrentRefreshes: number;
  labelLimit: number;
  /**
   * How often every account's document (and the default) is read, in one store call: new logins,
   * refreshes by other replicas, logouts and a changed default are seen within one interval.
   * Default: the managers' pollIntervalMs (1000 ms).
   */
  discoverIntervalMs?: number;
  tuning?: Partial<
    Pick<TokenManagerOptions, 'pollIntervalMs' | 'refreshAt' | 'jitter' | 'lockWaitMs' | 'lockTtlMs' | 'now'>
  >;
}

export class AccountPool implements UpstreamAuth, MeteredAccounts {
  readonly overrideClientToken: boolean;
  readonly labelLimit: number;
  readonly now: () => number;
  private readonly managers = new Map<string, TokenManager>();
  /** Per account, the fingerprint of the document its manager last took from a batched read. */
  private readonly offered = new Map<string, string>();
  private storedDefault: string | undefined;
  private readonly route: (request: {
    clientIp: string;
    path: string;
    headers: IncomingMessage['headers'];
  }) => string | undefined;
  private readonly refresher: Refresher;
  private timer: NodeJS.Timeout | undefined;
  private syncRun: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: AccountPoolOptions) {
    this.overrideClientToken = options.overrideClientToken;
    this.labelLimit = options.labelLimit;
    this.now = options.tuning?.now ?? Date.now;
    this.route = compileAccountRoutes(options.routes);
    this.refresher = boundConcurrency(options.refresher, options.maxConcurrentRefreshes);
  }

  /** Moves a single token of an older store into an account, loads every account, starts discovery. */
  async start(): Promise<void> {
    const handle = await this.options.lock.acquire(REFRESH_LOCK, { waitMs: 20_000, ttlMs: 30_000 });
    try {
      const migrated = await this.options.accounts.migrate();
      if (migrated !== undefined) {
        this.options.logger.info({ account: migrated }, 'moved the stored MercadoLibre token to its account');
      }
    } finally {
      await handle?.release();
    }
    await this.sync();
    const interval = this.options.discoverIntervalMs ?? this.options.tuning?.pollIntervalMs ?? 1000;
    this.timer = setInterval(() => void this.sync(), interval);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.syncRun?.catch(() => undefined);
    await Promise.allSettled([...this.managers.values()].map((manager) => manager.stop()));
  }

  accounts(): ReadonlyMap<string, TokenManager> {
    return this.managers;
  }

  /** The account requests naming none get, if any. */
  defaultAccount(): TokenManager | undefined {
    const id = this.defaultId();
    return id === undefined ? undefined : this.managers.get(id);
  }

  defaultId(): string | undefined {
    const setting = this.options.defaultAccount;
    if (setting === 'none') return undefined;
    if (setting === 'auto')
      return this.storedDefault ?? (this.managers.size === 1 ? [...this.managers.keys()][0] : undefined);
    return this.resolve(setting);
  }

  /** The id of the account `ref` names (a user id, else a nickname, case-insensitive). */
  resolve(ref: string): string | undefined {
    if (this.managers.has(ref)) return ref;
    const wanted = ref.toLowerCase();
    for (const [id, manager] of this.managers) {
      if (manager.token?.nickname?.toLowerCase() === wanted) return id;
    }
    return undefined;
  }

  forRequest(req: IncomingMessage, clientIp: string, path: string): AccountChoice | AccountRefusal {
    const named = req.headers[ACCOUNT_HEADER];
    let ref: string | undefined;
    let why: string;
    if (named !== undefined) {
      ref = Array.isArray(named) ? named.join(',') : named.trim();
      why = `The account "${ref}" named in X-Meli-Account`;
    } else {
      ref = this.route({ clientIp, path, headers: req.headers });
      why = `The account "${ref}" that --account-routes chose for this request`;
    }
    if (ref === undefined) {
      const id = this.defaultId();
      return { auth: id === undefined ? undefined : this.managers.get(id), account: id };
    }
    const id = this.resolve(ref);
    if (id === undefined) {
      return { status: 403, error: 'forbidden', message: `${why} is not an account of this proxy.` };
    }
    return { auth: this.managers.get(id), account: id };
  }

  accountName(id: string): string | undefined {
    return this.managers.get(id)?.token?.nickname;
  }

  currentAuthorization(): string | undefined {
    return this.defaultAccount()?.currentAuthorization();
  }

  authorizationSoon(): Promise<unknown> | undefined {
    return this.defaultAccount()?.authorizationSoon();
  }

  async refreshAfterUnauthorized(used: string): Promise<string | undefined> {
    return this.defaultAccount()?.refreshAfterUnauthorized(used);
  }

  registerMetrics(registry: Registry): void {
    registerTokenMetrics(registry, this);
  }

  /**
   * Reads every stored account in one store call: hands each manager its document, starts
   * managers for new accounts, stops those removed, and takes the stored default.
   */
  sync(): Promise<void> {
    this.syncRun ??= this.syncOnce()
      .catch((error: unknown) => {
        this.options.logger.warn(
          { detail: error instanceof Error ? error.message : String(error) },
          'cannot list the stored MercadoLibre accounts; keeping those held',
        );
      })
      .finally(() => {
        this.syncRun = undefined;
      });
    return this.syncRun;
  }

  private async syncOnce(): Promise<void> {
    const { accounts } = this.options;
    const { documents, defaultId } = await accounts.snapshot();
    this.storedDefault = defaultId;
    if (this.stopped) return;
    const read = (id: string) => () => accounts.decode(id, documents.get(id));
    const added: string[] = [];
    const offered: Array<Promise<unknown>> = [];
    for (const [id, document] of documents) {
      const manager = this.managers.get(id);
      if (!manager) {
        added.push(id);
        continue;
      }
      // An unchanged document is not opened again: the manager already holds what it says.
      const fingerprint = documentFingerprint(document);
      if (this.offered.get(id) === fingerprint) continue;
      offered.push(
        manager.offer(read(id)).then((taken) => {
          if (taken) this.offered.set(id, fingerprint);
        }),
      );
    }
    await Promise.all([
      ...offered,
      ...added.map(async (id) => {
        await this.startAccount(id, read(id));
        this.offered.set(id, documentFingerprint(documents.get(id)));
      }),
    ]);
    for (const [id, manager] of this.managers) {
      if (documents.has(id)) continue;
      this.managers.delete(id);
      this.offered.delete(id);
      this.options.logger.warn(
        { account: id },
        'the MercadoLibre account was removed: no longer injecting its token',
      );
      await manager.stop();
    }
  }

  private async startAccount(id: string, first: StoredRead): Promise<void> {
    const manager = new TokenManager({
      ...this.options.tuning,
      selfPolling: false,
      tokens: this.options.accounts.account(id),
      lock: this.options.lock,
      lockName: accountLockName(id),
      refresher: this.refresher,
      logger: this.options.logger,
      logContext: { account: id },
      overrideClientToken: this.options.overrideClientToken,
    });
    const token = await manager.start(first);
    if (this.stopped) {
      await manager.stop();
      return;
    }
    this.managers.set(id, manager);
    this.options.logger.info(
      {
        account: id,
        user: token?.nickname,
        site: token?.siteId,
        expiresAt: token ? new Date(token.expiresAt).toISOString() : undefined,
      },
      'injecting the MercadoLibre token of this account into the requests routed to it',
    );
  }
}

/** At most `limit` calls of `refresher` at once; the others wait their turn, in order. */
export function boundConcurrency(refresher: Refresher, limit: number): Refresher {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (token) => {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await refresher(token);
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
