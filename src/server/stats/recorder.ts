/**
 * Usage statistics: every answered request is counted in memory (live window and per-minute
 * aggregates), and the aggregates are written to the store in batches. The hot path never waits
 * on the store; a failed write keeps its rows for the next attempt, so nothing accepted is lost
 * while the store comes back (up to a bound, past which the oldest rows are dropped and counted).
 *
 * Each batch has an id (this process's random id and a sequence number) and keeps it, and its
 * rows, across retries: a write that timed out may still have been applied by a stalled store,
 * and the store adds a batch id only once. New counts never join a batch already sent; they wait
 * in the next one.
 */
import { randomUUID } from 'node:crypto';
import { canonicalIp, parseIpInto } from '../../limits/ip.js';
import type { Logger } from '../../logger.js';
import { groupRows, mergeRows } from '../../store/stats-rows.js';
import type { StatDimension, StatRow, StatsStore } from '../../store/types.js';
import { type LiveExport, type LiveSnapshot, LiveWindow } from './live-window.js';
import { MinuteAggregator } from './minute-aggregator.js';

export interface StatsRecorderOptions {
  store: StatsStore;
  logger: Logger;
  routeCapacity: number;
  routeLabel: (id: number) => string;
  /** How often aggregates are written (default 5 s). */
  flushIntervalMs?: number;
  /** How long per-minute rows are kept (default 7 days). */
  retentionMs?: number;
  /** Rows held while the store is unreachable before the oldest are dropped. */
  maxPendingRows?: number;
  clock?: () => number;
}

export interface StatsReport {
  from: string;
  to: string;
  /**
   * Statistics are kept per minute: the minutes counted for [from, to), when that range is not
   * whole minutes. The start goes back to the start of its minute; an end in a past minute goes on
   * to the end of that minute (an end in the current minute stays: nothing later is stored).
   */
  counted?: { from: string; to: string };
  groupBy: Exclude<StatDimension, 'total'>;
  /** `name`: grouped by account, the account's nickname when the proxy holds it. */
  rows: Array<{ key: string; name?: string; requests: number; bytes: number; latencyMsAvg: number }>;
  totals: { requests: number; bytes: number; latencyMsAvg: number; rateLimited: number; errors: number };
}

export type StatsGroup = StatsReport['groupBy'];
export type StatsGroupsReport = Omit<StatsReport, 'groupBy' | 'rows'> & {
  groups: Record<StatsGroup, StatsReport['rows']>;
};

const PRUNE_INTERVAL_MS = 3_600_000;
/** How long the final flush keeps trying a store that fails, and how often. */
const FINAL_FLUSH_RETRY_MS = 3000;
const FINAL_FLUSH_RETRY_INTERVAL_MS = 200;

interface PendingBatch {
  id: string;
  rows: StatRow[];
  /** Once sent, the rows may be in the store already: nothing more may join the batch. */
  sent: boolean;
}

/** How a cluster worker reaches the other workers' statistics (see server/cluster-worker.ts). */
export interface StatsPeers {
  /** Every worker's live export, this one's included. */
  liveExports(): Promise<LiveExport[]>;
  /** Makes every worker flush what it counted to the store. */
  flushAll(): Promise<void>;
}

const MINUTE_MS = 60_000;

/** The range of whole minutes a query for [from, to) counts (see StatsReport.counted). */
export function countedRange(from: number, to: number, now: number): { from: number; to: number } {
  const start = from - (from % MINUTE_MS);
  if (to % MINUTE_MS === 0) return { from: start, to };
  const endOfMinute = to - (to % MINUTE_MS) + MINUTE_MS;
  // In the current minute, what is stored stops at now: `to` itself, give or take the query's time.
  return { from: start, to: endOfMinute > now ? to : endOfMinute };
}

function average(sum: number, count: number): number {
  return count > 0 ? Math.round((sum / count) * 100) / 100 : 0;
}

export class StatsRecorder {
  private readonly live: LiveWindow;
  private readonly minutes: MinuteAggregator;
  /** Oldest first; only the first may have been sent already. */
  private pending: PendingBatch[] = [];
  private readonly senderId = randomUUID();
  private nextSequence = 1;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private lastPrune = 0;
  private failing = false;
  private dropped = 0;
  private readonly clock: () => number;
  private readonly ipWords = new Uint32Array(4);
  private readonly flushIntervalMs: number;
  private readonly retentionMs: number;
  private readonly maxPendingRows: number;
  private peers: StatsPeers | undefined;
  private accountName: (id: string) => string | undefined = () => undefined;

  constructor(private readonly options: StatsRecorderOptions) {
    this.live = new LiveWindow(options.routeCapacity);
    this.minutes = new MinuteAggregator(options.routeCapacity);
    this.clock = options.clock ?? Date.now;
    this.flushIntervalMs = options.flushIntervalMs ?? 5000;
    this.retentionMs = options.retentionMs ?? 7 * 86_400_000;
    this.maxPendingRows = options.maxPendingRows ?? 200_000;
  }

  /**
   * One answered request (forwarded, rejected or refused); `account`, the account whose token was
   * injected into it.
   */
  record(
    routeId: number,
    status: number,
    bytes: number,
    latencyMs: number,
    rawIp: string,
    account?: string,
  ): void {
    const now = this.clock();
    // One client, one row: `::ffff:1.2.3.4` is `1.2.3.4`, IPv6 in its RFC 5952 form, as the limiter counts.
    const ip = canonicalIp(rawIp, parseIpInto(rawIp, this.ipWords), this.ipWords);
    this.live.record(now, routeId, status, latencyMs, ip);
    this.minutes.record(now, routeId, status, bytes, latencyMs, ip, account);
  }

  /** A request rejected by `ruleId`, or over the limit of shadow rule `ruleId`. */
  recordRule(ruleId: string): void {
    const now = this.clock();
    this.live.recordRule(now, ruleId);
    this.minutes.recordRule(now, ruleId);
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  /**
   * Stops the timer and writes what is left: the final flush of a graceful shutdown. A store client
   * that is still reconnecting after an outage (another worker of the host may already be back)
   * fails at once, so the flush is tried again for up to `retryForMs` (within the 5 s the shutdown
   * allows past its grace period) before what is left is given up, and said so.
   */
  async stop(retryForMs = FINAL_FLUSH_RETRY_MS): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const giveUpAt = performance.now() + retryForMs;
    await this.flush();
    while (this.pending.length > 0 && performance.now() < giveUpAt) {
      await new Promise((resolve) => setTimeout(resolve, FINAL_FLUSH_RETRY_INTERVAL_MS));
      await this.flush();
    }
    const lost = this.pendingRows().length;
    if (lost > 0)
      this.options.logger.error(
        { rows: lost },
        'statistics not written before shutdown: the store did not answer',
      );
  }

  /** Writes everything counted so far; resolves when the store took it or the attempt failed. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    this.flushing = this.writePending().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  get droppedRows(): number {
    return this.dropped;
  }

  liveSnapshot(): LiveSnapshot {
    return this.live.snapshot(this.clock(), this.options.routeLabel);
  }

  /** This process's last 60 s as raw counts, for aggregation across cluster workers. */
  liveExport(): LiveExport {
    return this.live.export(this.clock(), this.options.routeLabel);
  }

  /** With several accounts: reports grouped by account name each account the proxy holds. */
  nameAccounts(name: (id: string) => string | undefined): void {
    this.accountName = name;
  }

  /** In a cluster worker: reports cover every worker, not just this one. */
  shareWith(peers: StatsPeers): void {
    this.peers = peers;
  }

  /**
   * The last 60 s of the whole server: with cluster workers, every worker's counts added up (this
   * worker's own view alone when the others cannot be reached).
   */
  async liveSummary(): Promise<LiveSnapshot> {
    if (!this.peers) return this.liveSnapshot();
    try {
      return LiveWindow.summarize(await this.peers.liveExports(), this.clock());
    } catch (error) {
      this.options.logger.warn({ err: error }, 'live statistics of the other workers unavailable');
      return this.liveSnapshot();
    }
  }

  /** Stored rows plus what is still in memory, so the current minute shows before its flush. */
  async report(from: number, to: number, groupBy: StatsGroup, limit: number): Promise<StatsReport> {
    const { groups, ...rest } = await this.reportGroups(from, to, [groupBy], limit);
    return { ...rest, groupBy, rows: groups[groupBy] };
  }

  /**
   * Several groupings of one range from one read: one flush, one copy of the unflushed rows, and
   * every query issued together, so the totals and each grouping describe the same counts.
   */
  async reportGroups(
    from: number,
    to: number,
    groupBys: readonly StatsGroup[],
    limit: number,
  ): Promise<StatsGroupsReport> {
    // With cluster workers, what the others counted reaches the store first (best effort).
    if (this.peers) await this.peers.flushAll().catch(() => undefined);
    await this.flush();
    const { store } = this.options;
    const wide = Number.MAX_SAFE_INTEGER;
    const pending = this.pendingRows();
    const [totals, statuses, ...grouped] = await Promise.all([
      store.query({ from, to, dimension: 'total', limit: 1 }),
      store.query({ from, to, dimension: 'status', limit: wide }),
      ...groupBys.map((dimension) => store.query({ from, to, dimension, limit })),
    ]);
    // Rows a failing store has not taken yet still count; groupRows filters them to the range.
    const withPending = (stored: StatRow[], dimension: StatDimension, max: number) =>
      groupRows([...stored, ...pending], { from, to, dimension, limit: max });
    const total = withPending(totals, 'total', 1)[0];
    const statusRows = withPending(statuses, 'status', wide);
    const statusCount = (name: string) => statusRows.find((row) => row.value === name)?.requests ?? 0;
    const groups = {} as Record<StatsGroup, StatsReport['rows']>;
    groupBys.forEach((dimension, index) => {
      groups[dimension] = withPending(grouped[index] ?? [], dimension, limit).map((row) => {
        const name = dimension === 'account' ? this.accountName(row.value) : undefined;
        return {
          key: row.value,
          ...(name === undefined ? {} : { name }),
          requests: row.requests,
          bytes: row.bytes,
          latencyMsAvg: average(row.latencyMsSum, row.requests),
        };
      });
    });
    const counted = countedRange(from, to, this.clock());
    return {
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      ...(counted.from !== from || counted.to !== to
        ? { counted: { from: new Date(counted.from).toISOString(), to: new Date(counted.to).toISOString() } }
        : {}),
      groups,
      totals: {
        requests: total?.requests ?? 0,
        bytes: total?.bytes ?? 0,
        latencyMsAvg: average(total?.latencyMsSum ?? 0, total?.requests ?? 0),
        rateLimited: statusCount('429'),
        errors: statusCount('5xx'),
      },
    };
  }

  private pendingRows(): StatRow[] {
    return this.pending.flatMap((batch) => batch.rows);
  }

  private async writePending(): Promise<void> {
    this.takeDrained();
    this.dropBeyondBound();
    while (this.pending.length > 0) {
      const batch = this.pending[0]!;
      batch.sent = true;
      try {
        await this.options.store.add(batch.rows, batch.id);
      } catch (error) {
        if (!this.failing) {
          this.options.logger.warn(
            { err: error, rows: batch.rows.length },
            'cannot write statistics to the store; keeping them to retry',
          );
        }
        this.failing = true;
        return;
      }
      this.pending.shift();
      if (this.failing) this.options.logger.info('statistics are being written to the store again');
      this.failing = false;
    }
    await this.pruneIfDue();
  }

  /** What was counted since the last flush joins the newest batch not yet sent, or starts one. */
  private takeDrained(): void {
    const drained = this.minutes.drain(this.options.routeLabel);
    if (drained.length === 0) return;
    const last = this.pending.at(-1);
    if (last && !last.sent) last.rows = mergeRows([...last.rows, ...drained]);
    else
      this.pending.push({
        id: `${this.senderId}:${this.nextSequence++}`,
        rows: mergeRows(drained),
        sent: false,
      });
  }

  private dropBeyondBound(): void {
    let excess = this.pending.reduce((sum, batch) => sum + batch.rows.length, 0) - this.maxPendingRows;
    if (excess <= 0) return;
    this.dropped += excess;
    this.options.logger.error(
      { dropped: excess },
      'statistics buffer full while the store is unreachable: dropped the oldest rows',
    );
    // Oldest minutes first. A batch keeps its id when it loses rows: if its first write went
    // through, the store skips it whole; if not, what is left is added once.
    for (const batch of this.pending) {
      if (excess === 0) break;
      batch.rows.sort((a, b) => a.minute - b.minute);
      const cut = Math.min(excess, batch.rows.length);
      batch.rows.splice(0, cut);
      excess -= cut;
    }
    this.pending = this.pending.filter((batch) => batch.rows.length > 0);
  }

  private async pruneIfDue(): Promise<void> {
    const now = this.clock();
    if (now - this.lastPrune < PRUNE_INTERVAL_MS) return;
    this.lastPrune = now;
    try {
      await this.options.store.prune(now - this.retentionMs);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'cannot prune old statistics');
    }
  }
}
