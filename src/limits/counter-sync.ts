/**
 * Replica side of shared counters: pushes this process's admissions to a CounterBackend in the
 * background and feeds the returned global totals back into the limiter. The hot path never waits
 * for it (except a rule counted exactly: `decideByStore`); the bound on what replicas can
 * over-admit meanwhile is derived in docs/rate-limiting.md.
 *
 * Delivery. One push in flight at a time, every `syncIntervalMs` (a tick that finds a push still
 * in flight is skipped). Deltas are consumed only when a push is acknowledged, so a failed push
 * leaves them in place and the next one carries them again: nothing admitted is lost (deltas of
 * windows no decision reads any more are dropped, like the store would expire them). Because at
 * most one push is in flight, a delta is never in two pushes at once and the replica never counts
 * an acknowledged delta twice. The contract is still at-least-once: when a backend applies a push
 * and then fails to answer (connection cut after COMMIT), the retry adds those deltas again. That
 * over-counts, i.e. errs towards rejecting, by at most one batch per such failure; exactly-once would
 * need an idempotency key (replica id + push sequence) in CounterBackend, which it does not have.
 *
 * Health. The first failure (or a push slower than `timeoutMs`) marks the store unhealthy and
 * calls onStateChange(false, error) once; the next acknowledged push marks it healthy and calls
 * onStateChange(true, undefined) once. What the limiter does meanwhile is `onStoreError`: 'open'
 * keeps limiting locally with the last-known totals, 'deny' keeps each replica within its share.
 * Pending deltas are re-sent after recovery, so totals resynchronise by themselves.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { CounterBackend, ExactCounterStore, ExactTakeResult } from '../store/types.js';
import type { Decision } from './decision.js';
import type { ExactTake } from './exact-policy.js';
import { LinkHealth } from './health.js';
import type { Limiter } from './limiter.js';
import type { PendingDelta } from './shared-policy.js';
import type { StoreErrorDecisions } from './store-error-decisions.js';

export interface CounterSyncOptions {
  readonly backend: CounterBackend;
  /** Identity of this replica in the store (default: host-pid-random). */
  readonly replicaId?: string;
  /** Push period in ms (default 100). */
  readonly syncIntervalMs?: number;
  /** While the store is unreachable: 'open' (default) limits locally, 'deny' stays within the share. */
  readonly onStoreError?: 'open' | 'deny';
  /** Where --on-store-error's decisions for exact counters are counted, by rule. */
  readonly storeErrorDecisions?: StoreErrorDecisions;
  /** A push slower than this marks the store unhealthy (default 2000 ms); it stays the one in flight. */
  readonly timeoutMs?: number;
  /** c in the allowance formula (default 0.25); see docs/rate-limiting.md for the bound it buys. */
  readonly shareFactor?: number;
  /** Replicas to assume until the store first answers (default 1). */
  readonly initialReplicas?: number;
  /** The store's exact counting; rules are counted exactly only when it is given. */
  readonly exact?: ExactCounterStore | undefined;
  /** Count a rule exactly when limit + burst < this × live replicas (default 0: only `counting: exact`). */
  readonly exactPerReplica?: number;
  /** Called once per health transition, e.g. to log "store unreachable" once and "recovered" once. */
  readonly onStateChange?: (healthy: boolean, error: Error | undefined) => void;
  readonly clock?: () => number;
}

export class CounterSync {
  readonly replicaId: string;
  private readonly limiter: Limiter;
  private readonly backend: CounterBackend;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private readonly health: LinkHealth;
  private lastOk: number | undefined;
  private replicaCount: number;
  private readonly exact: ExactCounterStore | undefined;

  constructor(limiter: Limiter, options: CounterSyncOptions) {
    this.limiter = limiter;
    this.backend = options.backend;
    this.replicaId = options.replicaId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.intervalMs = options.syncIntervalMs ?? 100;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.clock = options.clock ?? Date.now;
    this.health = new LinkHealth((healthy) => limiter.setStoreHealthy(healthy), options.onStateChange);
    this.replicaCount = Math.max(1, options.initialReplicas ?? 1);
    if (!(this.intervalMs > 0))
      throw new RangeError(`syncIntervalMs must be positive, got ${this.intervalMs}`);
    this.exact = options.exact;
    limiter.enableSharing({
      failClosed: options.onStoreError === 'deny',
      storeErrorDecisions: options.storeErrorDecisions,
      syncIntervalMs: this.intervalMs,
      exact: this.exact !== undefined,
      exactPerReplica: options.exactPerReplica ?? 0,
      ...(options.shareFactor === undefined ? {} : { shareFactor: options.shareFactor }),
      initialReplicas: this.replicaCount,
    });
  }

  /** Starts periodic pushes (the first one right away, to learn the replica count). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    this.tick();
  }

  /** Stops the timer and makes a last push of what is pending (never rejects). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Pushes now, after the push in flight if any; resolves when done (never rejects). */
  async flush(): Promise<void> {
    if (this.inFlight) await this.inFlight;
    await this.push();
  }

  get healthy(): boolean {
    return this.health.healthy;
  }

  get lastError(): Error | undefined {
    return this.health.lastError;
  }

  /** When the last acknowledged push completed (epoch ms). */
  get lastSyncAt(): number | undefined {
    return this.lastOk;
  }

  /** Live replicas as last reported by the store. */
  get replicas(): number {
    return this.replicaCount;
  }

  /**
   * Decides a request the limiter left to the store (STORE_PENDING): one atomic operation, bounded
   * by `timeoutMs`. A failure marks the store unhealthy (the next acknowledged push marks it healthy
   * again), and --on-store-error decides this request and the exact ones after it meanwhile.
   */
  async decideByStore(take: ExactTake): Promise<Decision> {
    let result: ExactTakeResult | undefined;
    if (this.exact && this.health.healthy) {
      let timer: NodeJS.Timeout | undefined;
      try {
        result = await Promise.race([
          this.exact.take(take.counters),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`shared counter store did not decide within ${this.timeoutMs} ms`)),
              this.timeoutMs,
            );
          }),
        ]);
      } catch (error) {
        this.health.report(false, error instanceof Error ? error : new Error(String(error)));
      } finally {
        clearTimeout(timer);
      }
    }
    return take.settle(result);
  }

  private tick(): void {
    if (!this.inFlight) void this.push();
  }

  private push(): Promise<void> {
    const pending: PendingDelta[] = this.limiter.collectDeltas(this.clock());
    const deltas = pending.map((p) => p.delta);
    const watchdog = setTimeout(() => {
      this.health.report(false, new Error(`shared counter store did not answer within ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    watchdog.unref();
    const run = (async () => {
      try {
        const result = await this.backend.sync(this.replicaId, deltas);
        this.limiter.settleDeltas(pending, result, this.clock());
        this.replicaCount = Math.max(1, result.replicas);
        this.lastOk = this.clock();
        this.health.report(true, undefined);
      } catch (error) {
        this.health.report(false, error instanceof Error ? error : new Error(String(error)));
      } finally {
        clearTimeout(watchdog);
        this.inFlight = undefined;
      }
    })();
    this.inFlight = run;
    return run;
  }
}
