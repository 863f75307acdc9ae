/**
 * Metrics read from the server's parts at scrape time (nothing on the request path): build
 * information, per-rule matched / allowed counts, the limiter's key table, the upstream connection
 * pool, statistics rows dropped during a store outage, and admissions decided by --on-store-error.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RuleStats } from '../limits/limiter.js';
import type { StoreErrorCounts } from '../limits/store-error-decisions.js';

/** What undici's `Pool#stats` reports. */
export interface PoolStatsView {
  readonly connected: number;
  readonly free: number;
  readonly pending: number;
  readonly running: number;
  readonly size: number;
}

export interface MetricSources {
  readonly version: string;
  /** Per-rule counts since the rule set was last compiled (they start again at 0 on a reload). */
  ruleStats(): readonly RuleStats[];
  limiterKeys(): { keys: number; maxKeys: number };
  droppedStatsRows(): number;
  /** Requests --on-store-error decided, by rule (process lifetime). */
  storeErrorDecisions(): StoreErrorCounts;
  upstreamPool(): PoolStatsView;
}

/** One rule's counts as counters: never decreasing, not reset when the rule set is reloaded. */
export interface RuleTotals {
  matched: number;
  rejected: number;
  shadowExceeded: number;
}

/**
 * Turns the limiter's per-rule counts, which restart at 0 whenever the rules are recompiled, into
 * totals that only grow: each read adds what grew since the previous read; rebase() marks a
 * recompilation (and a count lower than before is taken as one too).
 */
export class RuleCounters {
  private readonly last = new Map<string, RuleTotals>();
  private readonly totals = new Map<string, RuleTotals>();

  constructor(private readonly source: () => readonly RuleStats[]) {}

  /** Current totals of the rules in force (a rule removed from the set is forgotten). */
  read(): ReadonlyMap<string, Readonly<RuleTotals>> {
    const seen = new Set<string>();
    for (const stats of this.source()) {
      seen.add(stats.id);
      const before = this.last.get(stats.id);
      const total = this.totals.get(stats.id) ?? { matched: 0, rejected: 0, shadowExceeded: 0 };
      total.matched += grown(before?.matched, stats.matched);
      total.rejected += grown(before?.rejected, stats.rejected);
      total.shadowExceeded += grown(before?.shadowExceeded, stats.shadowExceeded);
      this.totals.set(stats.id, total);
      this.last.set(stats.id, {
        matched: stats.matched,
        rejected: stats.rejected,
        shadowExceeded: stats.shadowExceeded,
      });
    }
    for (const id of this.totals.keys()) {
      if (!seen.has(id)) {
        this.totals.delete(id);
        this.last.delete(id);
      }
    }
    return this.totals;
  }

  /** Takes in the current counts; the source's next counts are a new start from 0. */
  rebase(): void {
    this.read();
    for (const last of this.last.values()) {
      last.matched = 0;
      last.rejected = 0;
      last.shadowExceeded = 0;
    }
  }
}

function grown(before: number | undefined, now: number): number {
  if (before === undefined || now < before) return now;
  return now - before;
}

/** Registers the scrape-time metrics; returns the rule counters for the admin API to read. */
export function registerSourceMetrics(registry: Registry, sources: MetricSources): RuleCounters {
  const ruleCounters = new RuleCounters(() => sources.ruleStats());

  const buildInfo = new Gauge({
    name: 'meli_proxy_build_info',
    help: 'Always 1; the labels say which build runs (version, commit, Node.js version).',
    labelNames: ['version', 'commit', 'node_version'] as const,
    registers: [registry],
    // Across cluster workers: one build, not one per worker.
    aggregator: 'max',
  });
  buildInfo.set(
    {
      version: sources.version,
      commit: process.env.MELI_PROXY_COMMIT || 'unknown',
      node_version: process.version,
    },
    1,
  );

  // Both families are filled from one read per scrape; the second reads what the first computed.
  let lastRead: ReadonlyMap<string, Readonly<RuleTotals>> = new Map();
  new Counter({
    name: 'meli_proxy_rule_matched_total',
    help: 'Requests each rate-limit rule applied to, enforced or shadow (every rule in force, from 0).',
    labelNames: ['rule'] as const,
    registers: [registry],
    collect() {
      lastRead = ruleCounters.read();
      this.reset();
      for (const [rule, total] of lastRead) this.inc({ rule }, total.matched);
    },
  });
  new Counter({
    name: 'meli_proxy_rule_allowed_total',
    help: 'Requests each rate-limit rule applied to and let through (shadow rules let every request through).',
    labelNames: ['rule'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [rule, total] of lastRead) this.inc({ rule }, Math.max(0, total.matched - total.rejected));
    },
  });

  new Counter({
    name: 'meli_proxy_rule_store_error_decisions_total',
    help: 'Requests a rate-limit rule admitted (fail-open) or refused (fail-closed) by --on-store-error, its store or primary being unreachable.',
    labelNames: ['rule', 'decision'] as const,
    registers: [registry],
    collect() {
      this.reset();
      // Every enforced rule from 0, so the first decision is an increase for rate() and the alert.
      for (const rule of sources.ruleStats()) {
        if (rule.mode !== 'enforce') continue;
        this.inc({ rule: rule.id, decision: 'allowed' }, 0);
        this.inc({ rule: rule.id, decision: 'rejected' }, 0);
      }
      const { allowed, rejected } = sources.storeErrorDecisions();
      for (const [rule, count] of allowed) this.inc({ rule, decision: 'allowed' }, count);
      for (const [rule, count] of rejected) this.inc({ rule, decision: 'rejected' }, count);
    },
  });
  new Gauge({
    name: 'meli_proxy_limiter_keys',
    help: 'Counter keys the rate limiter tracks (one per rule and client, path … it partitions by).',
    registers: [registry],
    collect() {
      this.set(sources.limiterKeys().keys);
    },
  });
  new Gauge({
    name: 'meli_proxy_limiter_max_keys',
    help: 'Most counter keys the rate limiter can track.',
    registers: [registry],
    collect() {
      this.set(sources.limiterKeys().maxKeys);
    },
  });
  new Counter({
    name: 'meli_proxy_stats_rows_dropped_total',
    help: 'Statistics rows dropped because the store stayed unreachable longer than the buffer holds.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.droppedStatsRows());
    },
  });
  new Gauge({
    name: 'meli_proxy_upstream_connections',
    help: 'Connections of the upstream pool, by state: connected, free (idle, connected), size (connected or connecting).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const pool = sources.upstreamPool();
      this.set({ state: 'connected' }, pool.connected);
      this.set({ state: 'free' }, pool.free);
      this.set({ state: 'size' }, pool.size);
    },
  });
  new Gauge({
    name: 'meli_proxy_upstream_requests',
    help: 'Requests in the upstream pool, by state: running (sent, awaiting or reading the answer), pending (waiting for a connection).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const pool = sources.upstreamPool();
      this.set({ state: 'running' }, pool.running);
      this.set({ state: 'pending' }, pool.pending);
    },
  });
  return ruleCounters;
}
