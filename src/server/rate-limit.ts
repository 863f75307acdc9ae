/**
 * The rate-limit step of the proxy route: one synchronous decision per request from the limiter in
 * memory, while rules are reloaded and shared counters synchronised in the background.
 *
 * Workers of `serve --workers N` on the embedded store hold leases instead (limits/lease-client.ts):
 * the decision is still synchronous while every matching counter has a permit or a known refusal;
 * otherwise `decide` returns a promise of the decision, settled after one batched round trip to
 * the primary (or by --on-store-error when the primary does not answer in time). The caller then
 * handles the request again and `decide` hands back that settled decision for it, once.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { hostname } from 'node:os';
import {
  bearerTokenHash,
  CounterSync,
  type Decision,
  LEASE_PENDING,
  LeaseClient,
  type LeaseTransport,
  Limiter,
  type LimiterStats,
  type LimitRequest,
  normalizePath,
  parseRules,
  type Rule,
  type RuleStats,
  type RuleUsage,
  rateLimitHeaderList,
  rulesFromEnv,
  STORE_PENDING,
  serializeRule,
} from '../limits/index.js';
import { listStoredRules } from '../limits/rule-store.js';
import { StoreErrorDecisions } from '../limits/store-error-decisions.js';
import type { Logger } from '../logger.js';
import type { Store } from '../store/types.js';

/** What the proxy route needs: a decision now, and the headers that describe it. */
export interface RateLimitGate {
  /**
   * The decision for a request, or undefined when no rule applies. Never waits on the store; in
   * lease mode, when a counter has no permit yet, a promise of the decision, made once the
   * primary has answered (or --on-store-error has decided for it).
   */
  decide(
    req: IncomingMessage,
    clientIp: string,
    method: string,
    normalizedPath: string,
  ): Decision | undefined | Promise<Decision | undefined>;
  /** Response headers (flat name/value list) describing a decision. */
  headers(decision: Decision): string[];
}

/** The request as the limiter sees it; one instance is reused, decisions being synchronous. */
class RequestView implements LimitRequest {
  ip = '';
  method = '';
  path = '';
  req: IncomingMessage | undefined;

  header(name: string): string | undefined {
    const value = this.req?.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  tokenHash(): string | undefined {
    return bearerTokenHash(this.req?.headers.authorization);
  }
}

export interface RateLimiterOptions {
  store: Store;
  logger: Logger;
  /** Rules from the config file (unvalidated) and where they came from, for error messages. */
  fileRules: unknown[];
  fileName: string;
  env: NodeJS.ProcessEnv;
  legacyHeaders: boolean;
  syncIntervalMs: number;
  /** How long a push or an exact take may wait for PostgreSQL/Redis before --on-store-error decides. */
  storeTimeoutMs?: number;
  onStoreError: 'open' | 'deny';
  /**
   * Rules are counted exactly across replicas (one atomic store operation per request) when
   * limit + burst < exactPerReplica × live replicas; 0 leaves it to rules that say `counting: exact`.
   */
  exactPerReplica?: number;
  /** How often rules are re-read from the store (default 1 s). */
  reloadIntervalMs?: number;
  /** Called just before a new rule set replaces the current one (whose per-rule counts end). */
  beforeRulesSwap?: () => void;
  onStoreHealth?: (healthy: boolean) => void;
  /**
   * Workers of `serve --workers N`. With `leases` (embedded store, owned by the primary) limits are
   * exact and no counters are synchronised; without (the workers of a PostgreSQL or Redis store, or
   * an embedded store served some other way) counters are shared like replicas', and this is the
   * replica count assumed until the first sync says otherwise.
   */
  workers?: number;
  /**
   * Exact limits across the workers of one host: permits granted by the primary, which owns the
   * embedded store (counters are then not synchronised through the store).
   */
  leases?: LeaseTransport | undefined;
}

/** A decision the route needs to know about: undefined when no rule applied and nothing to report. */
function visible(decision: Decision): Decision | undefined {
  return decision.rule === undefined && decision.allowed && decision.shadowExceeded.length === 0
    ? undefined
    : decision;
}

export class RateLimiter implements RateLimitGate {
  private limiter: Limiter;
  private sync: CounterSync | undefined;
  private leaseClient: LeaseClient | undefined;
  private readonly view = new RequestView();
  private readonly staticRules: Rule[];
  private fingerprint = '';
  private reloadTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  /** The pass that follows the running one, when a reload was asked for while it ran. */
  private reloadAgain: Promise<void> | undefined;
  private lastInvalid = '';
  private readonly shared: boolean;
  /** Requests --on-store-error decided, by rule, for the life of the process (metrics read them). */
  readonly storeErrorDecisions = new StoreErrorDecisions();
  /**
   * One identity in the store for the life of the process. Each rule change starts a new
   * CounterSync; with a fresh id each time, the store would count this process twice (the old id
   * stays live for the replica horizon) and shrink every replica's share for a few seconds.
   */
  private readonly replicaId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;

  private constructor(private readonly options: RateLimiterOptions) {
    // Config-file and environment rules are validated before anything listens: a typo exits 2.
    const envRules = rulesFromEnv(options.env);
    this.envIds = new Set(envRules.map((rule) => rule.id));
    this.staticRules = [...parseRules(options.fileRules, `${options.fileName} limits`), ...envRules];
    this.limiter = new Limiter([]);
    this.shared = !options.leases && (options.store.kind !== 'embedded' || (options.workers ?? 1) > 1);
    if (options.leases) {
      this.leaseClient = new LeaseClient(this.limiter, {
        transport: options.leases,
        syncIntervalMs: options.syncIntervalMs,
        onStoreError: options.onStoreError,
        storeErrorDecisions: this.storeErrorDecisions,
        onStateChange: (healthy, error) => {
          if (healthy) this.options.logger.info('rate-limit leases from the primary process work again');
          else
            this.options.logger.warn(
              { err: error, onStoreError: this.options.onStoreError },
              `cannot get rate-limit leases from the primary process: ${this.options.onStoreError === 'open' ? 'admitting requests whose counters hold no permit (fail-open)' : 'refusing requests whose counters hold no permit (fail-closed)'}`,
            );
          this.options.onStoreHealth?.(healthy);
        },
      });
      this.leaseClient.start();
    }
  }

  static async start(options: RateLimiterOptions): Promise<RateLimiter> {
    const gate = new RateLimiter(options);
    await gate.reload();
    gate.reloadTimer = setInterval(() => void gate.reload(), options.reloadIntervalMs ?? 1000);
    gate.reloadTimer.unref();
    gate.sweepTimer = setInterval(() => gate.limiter.sweep(), 1000);
    gate.sweepTimer.unref();
    return gate;
  }

  decide(
    req: IncomingMessage,
    clientIp: string,
    method: string,
    normalizedPath: string,
  ): Decision | undefined | Promise<Decision | undefined> {
    const decision = this.decideNow(req, clientIp, method, normalizedPath);
    if (decision === STORE_PENDING) {
      // A rule counted exactly: the store decides, in one atomic operation.
      const take = this.limiter.takeStorePending();
      return this.sync!.decideByStore(take).then(visible);
    }
    if (decision !== LEASE_PENDING) return decision;
    // Rare: a counter holds no permit yet. Park the request until the primary has answered; one
    // whose client has gone meanwhile takes no permit (it is not forwarded either).
    return this.leaseClient!.wait(() =>
      req.destroyed ? undefined : this.decideNow(req, clientIp, method, normalizedPath),
    );
  }

  private decideNow(
    req: IncomingMessage,
    clientIp: string,
    method: string,
    normalizedPath: string,
  ): Decision | undefined {
    const view = this.view;
    view.req = req;
    view.ip = clientIp;
    view.method = method;
    view.path = normalizedPath;
    const decision = this.limiter.decide(view);
    view.req = undefined;
    if (decision === LEASE_PENDING || decision === STORE_PENDING) return decision;
    return visible(decision);
  }

  headers(decision: Decision): string[] {
    return rateLimitHeaderList(decision, { legacy: this.options.legacyHeaders });
  }

  /** The rules in force, in the order they are evaluated. */
  get rules(): readonly Rule[] {
    return this.currentRules;
  }

  get storeHealthy(): boolean {
    return this.sync?.healthy ?? this.leaseClient?.healthy ?? true;
  }

  ruleStats(): RuleStats[] {
    return this.limiter.ruleStats();
  }

  /** The limiter's key table: keys tracked and the most it can hold. */
  limiterStats(): LimiterStats {
    return this.limiter.stats();
  }

  /** Where a rule in force comes from: the store wins over the config file and the environment. */
  sourceOf(id: string): 'store' | 'config' | 'env' {
    if (this.storedIds.has(id)) return 'store';
    return this.envIds.has(id) ? 'env' : 'config';
  }

  /** What `limits test` asks: the rules a request would match and their counts, counting nothing. */
  inspect(
    ip: string,
    method: string,
    path: string,
    headers: Record<string, string>,
    authorization?: string,
    tokenHash?: string,
  ): RuleUsage[] {
    return this.limiter.inspect({
      ip,
      method,
      path: normalizePath(path),
      header: (name) => headers[name],
      tokenHash: () => tokenHash ?? bearerTokenHash(authorization),
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.reloadTimer);
    clearInterval(this.sweepTimer);
    await this.reloadAgain?.catch(() => undefined);
    await this.reloading;
    await this.sync?.stop();
    await this.leaseClient?.stop();
  }

  private currentRules: Rule[] = [];
  private storedIds = new Set<string>();
  private readonly envIds: Set<string>;

  private reloadHost: (() => Promise<void>) | undefined;

  /** Makes reloadEverywhere() reach every process of this host (the workers of `serve --workers`). */
  reloadAcross(reloadAll: () => Promise<void>): void {
    this.reloadHost = reloadAll;
  }

  /**
   * After a rule change: re-reads the rules in every process serving this host and resolves once
   * each has them in force, so the change holds for the next request whichever worker takes it.
   */
  reloadEverywhere(): Promise<void> {
    return this.reloadHost ? this.reloadHost() : this.reload();
  }

  private newSync(next: Limiter): CounterSync {
    return new CounterSync(next, {
      backend: this.options.store.counters,
      exact: this.options.store.exact,
      exactPerReplica: this.options.exactPerReplica ?? 0,
      replicaId: this.replicaId,
      syncIntervalMs: this.options.syncIntervalMs,
      timeoutMs: this.options.storeTimeoutMs,
      onStoreError: this.options.onStoreError,
      storeErrorDecisions: this.storeErrorDecisions,
      initialReplicas: this.options.workers ?? 1,
      onStateChange: (healthy, error) => {
        if (healthy) this.options.logger.info('shared counters are in sync again');
        else
          this.options.logger.warn(
            { err: error, onStoreError: this.options.onStoreError },
            `cannot reach the shared store: limiting locally (${this.options.onStoreError === 'open' ? 'fail-open' : 'fail-closed'})`,
          );
        this.options.onStoreHealth?.(healthy);
      },
    });
  }

  /**
   * Re-reads the store's rules; swaps the limiter when the effective rule set changed. Resolves once
   * a pass that started after this call has finished: a pass already running may have read the store
   * before the change that asks for this reload, so one more pass follows it, shared by every call
   * made meanwhile.
   */
  reload(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain ??= this.reloading
        .catch(() => undefined)
        .then(() => {
          this.reloadAgain = undefined;
          return this.reload();
        });
      return this.reloadAgain;
    }
    this.reloading = this.reloadOnce().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async reloadOnce(): Promise<void> {
    let stored: Rule[];
    try {
      const { rules, invalid } = await listStoredRules(this.options.store.documents);
      stored = rules;
      const report = invalid.join('; ');
      if (report && report !== this.lastInvalid)
        this.options.logger.error({ invalid }, 'ignoring invalid rules in the store');
      this.lastInvalid = report;
    } catch (error) {
      // The store is down: keep the rules we have; the counter sync reports the outage.
      if (this.fingerprint === '')
        this.options.logger.warn({ err: error }, 'cannot read rules from the store yet');
      if (this.fingerprint !== '') return;
      stored = [];
    }
    // A rule set in the store replaces a config or environment rule with the same id.
    const ids = new Set(stored.map((rule) => rule.id));
    this.storedIds = ids;
    const rules = [...this.staticRules.filter((rule) => !ids.has(rule.id)), ...stored];
    const fingerprint = JSON.stringify(rules.map(serializeRule));
    if (fingerprint === this.fingerprint) return;
    await this.swap(rules);
    this.fingerprint = fingerprint;
  }

  private async swap(rules: Rule[]): Promise<void> {
    const next = new Limiter(rules);
    // The old limiter's last deltas reach the store before its counts move over, so nothing is
    // pushed twice or lost; requests keep using the old limiter until the swap below.
    await this.sync?.stop();
    // Leases: permits move with their counters (or go back to the primary), and answers to asks
    // still in flight land in the new limiter.
    this.leaseClient?.prepare(next);
    // Sharing is switched on before the counts move over, so that their sync state moves too.
    const sync = this.shared ? this.newSync(next) : undefined;
    const carried = next.adoptCounts(this.limiter);
    this.leaseClient?.replace(this.limiter, next);
    this.sync = sync;
    sync?.start();
    this.options.beforeRulesSwap?.();
    this.limiter = next;
    this.currentRules = rules;
    this.options.logger.info({ rules: rules.map((rule) => rule.id), carried }, 'rate-limit rules loaded');
  }
}
