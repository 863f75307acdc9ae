/**
 * The rate-limit step of the proxy route: one synchronous decision per request from the limiter in
 * memory, while rules are reloaded and shared counters synchronised in the background.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { hostname } from 'node:os';
import {
  bearerTokenHash,
  CounterSync,
  type Decision,
  Limiter,
  type LimitRequest,
  normalizePath,
  parseRules,
  type Rule,
  type RuleStats,
  type RuleUsage,
  rateLimitHeaderList,
  rulesFromEnv,
  serializeRule,
} from '../limits/index.js';
import { listStoredRules } from '../limits/rule-store.js';
import type { Logger } from '../logger.js';
import type { Store } from '../store/types.js';

/** What the proxy route needs: a decision now, and the headers that describe it. */
export interface RateLimitGate {
  /** The decision for a request, or undefined when no rule applies. Never waits on the store. */
  decide(
    req: IncomingMessage,
    clientIp: string,
    method: string,
    normalizedPath: string,
  ): Decision | undefined;
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
  onStoreError: 'open' | 'deny';
  /** How often rules are re-read from the store (default 1 s). */
  reloadIntervalMs?: number;
  onStoreHealth?: (healthy: boolean) => void;
  /**
   * Cluster workers on an embedded store (served by the primary): counters are shared like
   * replicas' on PostgreSQL or Redis; the number of workers until the first sync says otherwise.
   */
  workers?: number;
}

export class RateLimiter implements RateLimitGate {
  private limiter: Limiter;
  private sync: CounterSync | undefined;
  private readonly view = new RequestView();
  private readonly staticRules: Rule[];
  private fingerprint = '';
  private reloadTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private lastInvalid = '';
  private readonly shared: boolean;
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
    this.shared = options.store.kind !== 'embedded' || (options.workers ?? 1) > 1;
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
  ): Decision | undefined {
    const view = this.view;
    view.req = req;
    view.ip = clientIp;
    view.method = method;
    view.path = normalizedPath;
    const decision = this.limiter.decide(view);
    view.req = undefined;
    return decision.rule === undefined && decision.allowed && decision.shadowExceeded.length === 0
      ? undefined
      : decision;
  }

  headers(decision: Decision): string[] {
    return rateLimitHeaderList(decision, { legacy: this.options.legacyHeaders });
  }

  /** The rules in force, in the order they are evaluated. */
  get rules(): readonly Rule[] {
    return this.currentRules;
  }

  get storeHealthy(): boolean {
    return this.sync?.healthy ?? true;
  }

  ruleStats(): RuleStats[] {
    return this.limiter.ruleStats();
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
    await this.reloading;
    await this.sync?.stop();
  }

  private currentRules: Rule[] = [];
  private storedIds = new Set<string>();
  private readonly envIds: Set<string>;

  /** Re-reads the store's rules; swaps the limiter when the effective rule set changed. */
  reload(): Promise<void> {
    this.reloading ??= this.reloadOnce().finally(() => {
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
    const carried = next.adoptCounts(this.limiter);
    if (this.shared) {
      this.sync = new CounterSync(next, {
        backend: this.options.store.counters,
        replicaId: this.replicaId,
        syncIntervalMs: this.options.syncIntervalMs,
        onStoreError: this.options.onStoreError,
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
      this.sync.start();
    }
    this.limiter = next;
    this.currentRules = rules;
    this.options.logger.info({ rules: rules.map((rule) => rule.id), carried }, 'rate-limit rules loaded');
  }
}
