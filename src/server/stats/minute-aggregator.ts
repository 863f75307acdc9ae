/**
 * Per-minute usage counted in memory since the last flush: by route, status class, rule, the
 * heaviest client IPs and accounts, and in total. `drain()` hands the counts over as store rows and starts again
 * from zero, so each flush writes deltas that the store adds up.
 */
import type { StatRow } from '../../store/types.js';
import { type HeavyHitter, HeavyHitters } from './heavy-hitters.js';

const MINUTE_MS = 60_000;
/** Status rows: 429 apart from the other 4xx, so rate limiting shows on its own. */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '429', '5xx'] as const;
/** Client IPs kept per minute and flush (Space-Saving counters), and how many are written. */
const IP_SKETCH_CAPACITY = 1000;
const IP_ROWS_PER_FLUSH = 100;
/**
 * Accounts likewise, but kept wider: a proxy may hold thousands of sellers, and counts stay exact
 * while no more than ACCOUNT_SKETCH_CAPACITY accounts are used between two flushes of one process.
 * Past that the sketch keeps the busiest ones (over-estimates bounded as for IPs), and at most
 * ACCOUNT_ROWS_PER_FLUSH rows per minute leave a flush, so the store's rows stay bounded.
 */
const ACCOUNT_SKETCH_CAPACITY = 2000;
const ACCOUNT_ROWS_PER_FLUSH = 1000;

function statusClass(status: number): number {
  if (status === 429) return 4;
  if (status >= 500 || status < 100) return 5;
  if (status >= 400) return 3;
  return Math.floor(status / 100) - 1;
}

/** Three measures per entry: requests, bytes, latency sum (ms). */
const MEASURES = 3;

class MinuteCounts {
  readonly total = new Float64Array(MEASURES);
  readonly routes: Float64Array;
  readonly statuses = new Float64Array(STATUS_CLASSES.length * MEASURES);
  readonly rules = new Map<string, number>();
  readonly ips = new HeavyHitters(IP_SKETCH_CAPACITY);
  /** Created on the first request with an injected token: most proxies never inject one. */
  accounts: HeavyHitters | undefined;
  touched = false;

  constructor(routeCapacity: number) {
    this.routes = new Float64Array(routeCapacity * MEASURES);
  }
}

export class MinuteAggregator {
  /** Counts per minute start; normally one or two minutes (the current and the one just ended). */
  private readonly minutes = new Map<number, MinuteCounts>();

  constructor(private readonly routeCapacity: number) {}

  /** `account`: the account whose token was injected into the request, if one was. */
  record(
    nowMs: number,
    routeId: number,
    status: number,
    bytes: number,
    latencyMs: number,
    ip: string,
    account?: string,
  ): void {
    const counts = this.countsFor(nowMs);
    counts.touched = true;
    add(counts.total, 0, bytes, latencyMs);
    if (routeId < this.routeCapacity) add(counts.routes, routeId * MEASURES, bytes, latencyMs);
    add(counts.statuses, statusClass(status) * MEASURES, bytes, latencyMs);
    counts.ips.add(ip, bytes, latencyMs);
    if (account !== undefined) {
      counts.accounts ??= new HeavyHitters(ACCOUNT_SKETCH_CAPACITY);
      counts.accounts.add(account, bytes, latencyMs);
    }
  }

  /** A request rejected, or over a shadow limit, by `ruleId`. */
  recordRule(nowMs: number, ruleId: string): void {
    const counts = this.countsFor(nowMs);
    counts.touched = true;
    counts.rules.set(ruleId, (counts.rules.get(ruleId) ?? 0) + 1);
  }

  /** Everything counted since the last drain, as rows; the aggregator starts again from zero. */
  drain(routeLabel: (id: number) => string): StatRow[] {
    const rows: StatRow[] = [];
    for (const [minute, counts] of this.minutes) {
      if (!counts.touched) continue;
      rows.push(row(minute, 'total', '', counts.total, 0));
      for (let id = 0; id < this.routeCapacity; id++) {
        if (counts.routes[id * MEASURES]! > 0)
          rows.push(row(minute, 'route', routeLabel(id), counts.routes, id * MEASURES));
      }
      STATUS_CLASSES.forEach((name, index) => {
        if (counts.statuses[index * MEASURES]! > 0)
          rows.push(row(minute, 'status', name, counts.statuses, index * MEASURES));
      });
      for (const [rule, requests] of counts.rules) {
        rows.push({ minute, dimension: 'rule', value: rule, requests, bytes: 0, latencyMsSum: 0 });
      }
      for (const hitter of counts.ips.top(IP_ROWS_PER_FLUSH)) rows.push(hitterRow(minute, 'ip', hitter));
      for (const hitter of counts.accounts?.top(ACCOUNT_ROWS_PER_FLUSH) ?? []) {
        rows.push(hitterRow(minute, 'account', hitter));
      }
    }
    this.minutes.clear();
    return rows;
  }

  private countsFor(nowMs: number): MinuteCounts {
    const minute = nowMs - (nowMs % MINUTE_MS);
    let counts = this.minutes.get(minute);
    if (!counts) {
      counts = new MinuteCounts(this.routeCapacity);
      this.minutes.set(minute, counts);
    }
    return counts;
  }
}

function add(measures: Float64Array, offset: number, bytes: number, latencyMs: number): void {
  measures[offset] = measures[offset]! + 1;
  measures[offset + 1] = measures[offset + 1]! + bytes;
  measures[offset + 2] = measures[offset + 2]! + latencyMs;
}

function row(
  minute: number,
  dimension: StatRow['dimension'],
  value: string,
  measures: Float64Array,
  offset: number,
): StatRow {
  return {
    minute,
    dimension,
    value,
    requests: measures[offset]!,
    bytes: measures[offset + 1]!,
    latencyMsSum: measures[offset + 2]!,
  };
}

function hitterRow(minute: number, dimension: StatRow['dimension'], hitter: HeavyHitter): StatRow {
  return {
    minute,
    dimension,
    value: hitter.key,
    requests: hitter.requests,
    bytes: hitter.bytes,
    latencyMsSum: hitter.latencyMsSum,
  };
}
