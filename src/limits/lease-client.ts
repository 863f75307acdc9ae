/**
 * Exact limits across the workers of one host: the worker's side (the primary's is
 * lease-arbiter.ts, which explains why the result is exact). It keeps a Limiter in lease mode fed
 * with permits:
 *
 * - Decisions stay synchronous while every matching counter holds a permit or a known refusal.
 *   Otherwise the limiter answers LEASE_PENDING and queues an ask; `wait` parks the request, and
 *   every ask of one event-loop turn goes to the primary in one message (setImmediate). When the
 *   answer is applied, the parked requests are decided again at once, before any other I/O, so
 *   the permits they waited for go to them first. A request still short of a permit (the grant was
 *   smaller than the queue) waits for the next round; every round either grants at least one
 *   permit or returns a refusal, so the queue always drains.
 * - Unused permits go back (batched) every sync interval: those of a window that has ended, and
 *   those held longer than `holdMs` (the key's demand fell); and all of them on stop or when the
 *   rule set is replaced. The same message is sent as a poll (one small IPC round trip per sync
 *   interval) while the worker holds permits or spent some within the longest rule window: its
 *   answer names the keys the primary reclaims (asks elsewhere wait for their permits), whose
 *   permits go back at once with what was spent of them.
 * - An ask the primary answers with "reclaiming" is not a refusal: its requests stay parked and
 *   the ask goes again after the recheck time the answer gave (a timer, not a busy loop).
 * - The primary not answering within `timeoutMs` marks it unreachable (onStateChange once per
 *   transition); parked requests are then decided by onStoreError: 'open' admits them (counted
 *   locally, owed to the primary when it is back), 'deny' refuses counters without permits. Asks
 *   keep going out for the counters in use, and the first answer marks the primary reachable again.
 */
import { LinkHealth } from './health.js';
import type { LeaseTransport } from './lease-arbiter.js';
import { LEASE_PENDING, type LeaseRequest, type Limiter } from './limiter.js';
import type { StoreErrorDecisions } from './store-error-decisions.js';

export interface LeaseClientOptions {
  readonly transport: LeaseTransport;
  /** How often unused permits are handed back; leases are sized for two of these (default 100). */
  readonly syncIntervalMs?: number;
  readonly onStoreError?: 'open' | 'deny';
  /** Where --on-store-error's decisions are counted, by rule. */
  readonly storeErrorDecisions?: StoreErrorDecisions;
  /** Called once per transition, e.g. to log "primary unreachable" once and "recovered" once. */
  readonly onStateChange?: (healthy: boolean, error: Error | undefined) => void;
  readonly clock?: () => number;
}

interface Waiter {
  readonly redo: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

export class LeaseClient {
  private limiter: Limiter;
  private readonly transport: LeaseTransport;
  private readonly intervalMs: number;
  private readonly failClosed: boolean;
  private readonly storeErrorDecisions: StoreErrorDecisions | undefined;
  private readonly clock: () => number;
  private waiters: Waiter[] = [];
  private scheduled = false;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Sends the asks deferred while the primary reclaims, when their recheck time has come. */
  private recheckTimer: NodeJS.Timeout | undefined;
  private readonly health: LinkHealth;
  private releasing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(limiter: Limiter, options: LeaseClientOptions) {
    this.transport = options.transport;
    this.intervalMs = options.syncIntervalMs ?? 100;
    if (!(this.intervalMs > 0))
      throw new RangeError(`syncIntervalMs must be positive, got ${this.intervalMs}`);
    this.failClosed = options.onStoreError === 'deny';
    this.storeErrorDecisions = options.storeErrorDecisions;
    this.clock = options.clock ?? Date.now;
    this.limiter = limiter;
    // Applied to the limiter in use when the state changes (rule reloads replace it).
    this.health = new LinkHealth((healthy) => this.limiter.setLeaseHealthy(healthy), options.onStateChange);
    this.prepare(limiter);
  }

  get healthy(): boolean {
    return this.health.healthy;
  }

  get lastError(): Error | undefined {
    return this.health.lastError;
  }

  /** Requests waiting for permits right now. */
  get waiting(): number {
    return this.waiters.length;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Hands every permit back and waits for that to be sent (never rejects). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    clearTimeout(this.recheckTimer);
    this.recheckTimer = undefined;
    this.stopped = true;
    this.limiter.releaseAll();
    this.sendReturns(this.limiter);
    await this.releasing;
  }

  /** Puts a new limiter in lease mode; call before its adoptCounts(). */
  prepare(limiter: Limiter): void {
    limiter.enableLeases({
      targetMs: 2 * this.intervalMs,
      holdMs: 4 * this.intervalMs,
      failClosed: this.failClosed,
      storeErrorDecisions: this.storeErrorDecisions,
      onAsk: () => this.schedule(),
    });
    limiter.setLeaseHealthy(this.health.healthy);
  }

  /** Makes `next` (prepared, counts adopted) the limiter in use; `previous`'s permits go back. */
  replace(previous: Limiter, next: Limiter): void {
    this.limiter = next;
    previous.releaseAll();
    this.sendReturns(previous);
    // Parked requests are decided by the new rules.
    if (this.waiters.length > 0) this.schedule();
  }

  /**
   * Parks a request whose decision was LEASE_PENDING: `redo` decides it again (with the limiter in
   * use then) after each answer from the primary, until it returns something else. Rejects only
   * if `redo` throws.
   */
  wait<T>(redo: () => T | typeof LEASE_PENDING): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiters.push({ redo, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Sends the asks queued in this turn, once the turn is over. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.run);
  }

  private readonly run = (): void => {
    this.scheduled = false;
    const limiter = this.limiter;
    const requests = limiter.collectAsks(this.clock());
    if (requests.length > 0) {
      this.send(limiter, requests);
      return;
    }
    // Nothing to ask: the waiters' asks are in flight (their answer redoes them), deferred (the
    // recheck timer redoes them), or the rules changed under them (redo now, with the new limiter).
    if (this.inFlight === 0 && !limiter.hasDeferredAsks) this.redoWaiters();
  };

  /**
   * Sends the deferred asks after `ms` (0: none deferred). One timer for all: a later recheck
   * time of another key only makes that one ask a little early, which is harmless.
   */
  private recheckIn(ms: number): void {
    if (ms === 0 || this.stopped || this.recheckTimer) return;
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = undefined;
      this.limiter.requeueDeferred();
      this.schedule();
    }, ms);
  }

  private send(limiter: Limiter, requests: LeaseRequest[]): void {
    this.inFlight++;
    this.transport.lease(requests.map((request) => request.ask)).then(
      (grants) => {
        this.inFlight--;
        // Grants go to the limiter in use now (which may have replaced the one that asked).
        this.limiter.applyGrants(requests, grants, this.clock());
        if (this.limiter !== limiter) limiter.dropAsks(requests);
        this.health.report(true, undefined);
        this.recheckIn(this.limiter.takeRecheckMs());
        this.redoWaiters();
        // Permits that arrive after stop() would never be used or handed back by the timer.
        if (this.stopped) this.limiter.releaseAll();
        this.sendReturns(this.limiter);
      },
      (error: unknown) => {
        this.inFlight--;
        this.limiter.dropAsks(requests);
        if (this.limiter !== limiter) limiter.dropAsks(requests);
        this.health.report(false, error instanceof Error ? error : new Error(String(error)));
        this.redoWaiters();
      },
    );
  }

  /** Decides the parked requests again, in arrival order; those still pending stay parked. */
  private redoWaiters(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) {
      let result: unknown;
      try {
        result = waiter.redo();
      } catch (error) {
        // A decision does not throw in practice; if one did, its request must not hang.
        waiter.reject(error);
        continue;
      }
      if (result === LEASE_PENDING) this.waiters.push(waiter);
      else waiter.resolve(result);
    }
    if (this.waiters.length > 0) this.schedule();
  }

  private tick(): void {
    const now = this.clock();
    this.limiter.scanLeases(now);
    this.sendReturns(this.limiter, this.limiter.shouldPollLeases(now));
  }

  /** Sends what goes back to the primary (or, with `poll`, an empty message); applies its reclaims. */
  private sendReturns(limiter: Limiter, poll = false): void {
    const returns = limiter.takeReturns();
    if (returns.length === 0 && !poll) return;
    this.releasing = this.transport.release(returns).then(
      (reclaims) => {
        if (!reclaims || reclaims.length === 0) return;
        // To the limiter in use now; what it holds of those keys goes back at once.
        this.limiter.reclaim(reclaims);
        this.sendReturns(this.limiter);
      },
      () => {
        // Lost: those permits stay counted as admitted until their window ends or the primary
        // stops waiting for them (reclaimMs): under-admission, never over-admission.
      },
    );
  }
}
