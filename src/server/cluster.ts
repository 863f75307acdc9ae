/**
 * `serve --workers N` (N > 1): the primary process of a node:cluster. It serves no request itself.
 *
 * - Forks N workers that each run the whole server (startServer) on the same proxy and admin
 *   ports: the cluster module shares the listening sockets and hands connections out round-robin.
 * - With the embedded store (`embedded` or `memory`) the primary owns the host's one store and the
 *   workers reach it over IPC (store/ipc-client.ts, store/ipc-server.ts). The primary also keeps
 *   the host's rate-limit counts and grants the workers permits out of them (limits/lease-arbiter.ts),
 *   so limits are exact across workers: together they admit what one process would. With
 *   PostgreSQL or Redis the workers connect themselves and share counters like replicas (within
 *   the bound in docs/rate-limiting.md).
 * - Aggregates what a single scrape or view must show for the whole server: `/metrics` on any worker
 *   returns every worker's metrics summed (prom-client's AggregatorRegistry; counters never go down
 *   when a worker dies or misses a scrape: cluster-metrics.ts), `/admin/stats/live`
 *   every worker's last 60 s, and `/admin/stats` first makes every worker flush its counts. A rule
 *   changed through the admin API is re-read by every worker before the change is acknowledged.
 * - Restarts a worker that dies unexpectedly (giving up after too many deaths in a short time), and
 *   on SIGTERM/SIGINT passes the signal on for a graceful drain of every worker, closes the store
 *   once they are all gone, and exits 0.
 * - A worker that fails before it listens (a port in use, a bad rule) fails the whole start: the
 *   primary stops the others and exits with that worker's exit code.
 */
import cluster, { type Worker } from 'node:cluster';
import { type Aggregator, Counter, collectDefaultMetrics, Registry } from 'prom-client';
import { HostLock } from '../auth/lock-ipc.js';
import type { Config } from '../config.js';
import { LeaseArbiter } from '../limits/lease-arbiter.js';
import { flushLogger, type Logger } from '../logger.js';
import { openStore, parseStoreUrl, type Store } from '../store/index.js';
import { IpcPeer } from '../store/ipc-peer.js';
import { serveStore } from '../store/ipc-server.js';
import { ClusterMetrics, type MetricsJson } from './cluster-metrics.js';
import { WORKER_RESTARTS_HELP, WORKER_RESTARTS_METRIC } from './metrics.js';
import type { MetricsFormat } from './metrics-openmetrics.js';
import type { LiveExport } from './stats/live-window.js';

/** The environment variable that tells a forked process it is worker number N (1-based). */
export const WORKER_ENV = 'MELI_PROXY_CLUSTER_WORKER';

/** Calls between the primary and its workers (the store's are in store/ipc-client.ts). */
export const CLUSTER_OPS = {
  /** worker → primary: started and listening. */
  ready: 'cluster.ready',
  /** worker → primary: the aggregated Prometheus text. */
  metrics: 'cluster.metrics',
  /** worker → primary: every worker's live export. */
  live: 'cluster.live',
  /** worker → primary: make every worker flush its statistics. */
  flush: 'cluster.flush',
  /** worker → primary: make every worker re-read the rate-limit rules now. */
  reloadRules: 'cluster.reload-rules',
  /** primary → worker: this worker's metrics as prom-client JSON. */
  workerMetrics: 'worker.metrics',
  workerLive: 'worker.live',
  workerFlush: 'worker.flush',
  workerReloadRules: 'worker.reload-rules',
} as const;

/** Whether the embedded store is in use: then the primary owns it and workers use IPC. */
export function primaryOwnsStore(config: Config): boolean {
  return parseStoreUrl(config.store).kind === 'embedded';
}

/**
 * Aggregation of metrics whose default (sum) would mislead: a start time is the earliest, health
 * is healthy only if every worker is, a token expiry is the soonest, event-loop lag is the worst
 * process's (an average hides the one worker that is stuck).
 */
const AGGREGATOR_OVERRIDES: Record<string, Aggregator> = {
  meli_proxy_process_start_time_seconds: 'min',
  meli_proxy_store_healthy: 'min',
  meli_proxy_token_expires_in_seconds: 'min',
  meli_proxy_nodejs_eventloop_lag_seconds: 'max',
  meli_proxy_nodejs_eventloop_lag_min_seconds: 'max',
  meli_proxy_nodejs_eventloop_lag_max_seconds: 'max',
  meli_proxy_nodejs_eventloop_lag_mean_seconds: 'max',
  meli_proxy_nodejs_eventloop_lag_stddev_seconds: 'max',
  meli_proxy_nodejs_eventloop_lag_p50_seconds: 'max',
  meli_proxy_nodejs_eventloop_lag_p90_seconds: 'max',
  meli_proxy_nodejs_eventloop_lag_p99_seconds: 'max',
};

/** Lease keys looked at per sweep of the primary at least (a few ms of its time). */
const LEASE_SWEEP_BUDGET = 20_000;
/** And at least this share of them, so a pass never takes more than a few seconds however many. */
const LEASE_SWEEP_SHARE = 0.1;
/** How long the primary waits for one worker's part of an aggregate. */
const GATHER_TIMEOUT_MS = 3000;
/** More unexpected worker deaths than this within RESTART_WINDOW_MS: the primary gives up. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

export interface ClusterPrimaryOptions {
  config: Config;
  logger: Logger;
}

interface Member {
  index: number;
  worker: Worker;
  peer: IpcPeer;
  ready: boolean;
}

/** Runs the primary until every worker has stopped; resolves with the process exit code. */
export async function runClusterPrimary(options: ClusterPrimaryOptions): Promise<number> {
  const { config, logger } = options;
  const workers = config.workers;
  let store: Store | undefined;
  if (primaryOwnsStore(config)) store = await openStore(config.store, { dataDir: config.dataDir, logger });

  // The primary's own process metrics count too: its memory is part of the pod's.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'meli_proxy_' });
  // Added to the workers' own (always 0) series of the same name when /metrics sums them.
  const workerRestarts = new Counter({
    name: WORKER_RESTARTS_METRIC,
    help: WORKER_RESTARTS_HELP,
    registers: [registry],
  });

  const members = new Map<number, Member>();
  // One token refresh lock for every worker of the host (the embedded store has no lock of its own).
  const refreshLock = store ? new HostLock() : undefined;
  // A dead worker's unused permits are not forgotten (it may have used them): they expire with
  // their window. Counts of keys nobody asked about for a window are dropped every few seconds.
  const leases = store
    ? new LeaseArbiter({
        workers: () => Math.max(1, members.size),
        recheckMs: config.syncInterval,
      })
    : undefined;
  // A slice of the keys twice a second: a pass takes at most 5 s, so keys that churn fast (many
  // clients on a short window) go about as fast as they come, and no single slice is large enough
  // to hold up the leases the workers are waiting for.
  const leaseSweep = leases
    ? setInterval(
        () =>
          leases.sweep(Date.now(), Math.max(LEASE_SWEEP_BUDGET, Math.ceil(leases.size * LEASE_SWEEP_SHARE))),
        500,
      )
    : undefined;
  leaseSweep?.unref();
  const restarts: number[] = [];
  let stopping = false;
  let exitCode = 0;
  let startedAll = false;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });

  const live = (): Member[] => [...members.values()];
  const clusterMetrics = new ClusterMetrics(AGGREGATOR_OVERRIDES);

  /** Asks every live worker; each worker's answer by its index, undefined where none came in time. */
  async function gatherEach<T>(op: string): Promise<Map<number, { value: T } | undefined>> {
    const asked = live();
    const parts = await Promise.allSettled(
      asked.map((member) => member.peer.call<T>(op, [], GATHER_TIMEOUT_MS)),
    );
    const byWorker = new Map<number, { value: T } | undefined>();
    parts.forEach((part, i) => {
      const worker = asked[i]!.index;
      if (part.status === 'rejected')
        logger.warn({ worker, err: part.reason }, `worker did not answer ${op}`);
      byWorker.set(worker, part.status === 'fulfilled' ? { value: part.value } : undefined);
    });
    return byWorker;
  }

  /** The answers of the workers that answered in time. */
  async function gather<T>(op: string): Promise<T[]> {
    const values: T[] = [];
    for (const answer of (await gatherEach<T>(op)).values()) if (answer) values.push(answer.value);
    return values;
  }

  async function aggregateMetrics(format: MetricsFormat): Promise<string> {
    const byWorker = new Map<number, MetricsJson | undefined>();
    for (const [worker, answer] of await gatherEach<MetricsJson>(CLUSTER_OPS.workerMetrics)) {
      byWorker.set(worker, answer?.value);
    }
    return clusterMetrics.render(byWorker, await registry.getMetricsAsJSON(), format);
  }

  function fork(index: number): void {
    const worker = cluster.fork({ [WORKER_ENV]: String(index) });
    const peer = new IpcPeer(worker, `worker ${index}`);
    const member: Member = { index, worker, peer, ready: false };
    members.set(index, member);
    if (store) serveStore(peer, store, { replicas: () => Math.max(1, members.size), leases });
    refreshLock?.serve(peer, worker);
    peer
      .handle(CLUSTER_OPS.ready, () => {
        member.ready = true;
        logger.debug({ worker: index, pid: worker.process.pid }, 'worker ready');
        if (!startedAll && live().every((m) => m.ready) && members.size === workers) {
          startedAll = true;
          logger.info({ workers, pid: process.pid }, 'all workers ready');
        }
      })
      .handle(CLUSTER_OPS.metrics, (format: unknown) =>
        aggregateMetrics(format === 'openmetrics' ? 'openmetrics' : 'prometheus'),
      )
      .handle(CLUSTER_OPS.live, () => gather<LiveExport>(CLUSTER_OPS.workerLive))
      .handle(CLUSTER_OPS.flush, async () => {
        await gather<void>(CLUSTER_OPS.workerFlush);
      })
      .handle(CLUSTER_OPS.reloadRules, async () => {
        await gather<void>(CLUSTER_OPS.workerReloadRules);
      });
    worker.on('exit', (code: number | null, signal: string | null) =>
      onExit(member, code, signal as NodeJS.Signals | null),
    );
  }

  function onExit(member: Member, code: number | null, signal: NodeJS.Signals | null): void {
    member.peer.close(`worker ${member.index} exited`);
    // Its replacement reuses the index; keeps the sum in /metrics from going down meanwhile.
    void clusterMetrics.retire(member.index);
    if (members.get(member.index) === member) members.delete(member.index);
    const detail = { worker: member.index, pid: member.worker.process.pid, code, signal };
    if (stopping) {
      logger.debug(detail, 'worker stopped');
      // A worker still starting has no drain of its own yet: the SIGTERM sent to it by stop() ends
      // it as asked, which is a clean stop (Ctrl-C while the workers start), not a failure.
      const stoppedAsAsked = code === 0 || (!member.ready && signal === 'SIGTERM');
      if (!stoppedAsAsked) exitCode = exitCode || 1;
      if (members.size === 0) resolveDone();
      return;
    }
    if (!startedAll && !member.ready) {
      // A worker that cannot start (port in use, invalid rules …) will not start on a retry either.
      logger.error(detail, 'a worker failed to start: stopping');
      exitCode = code && code > 0 ? code : 1;
      stop('a worker failed to start');
      return;
    }
    const now = Date.now();
    restarts.push(now);
    while (restarts.length > 0 && restarts[0]! < now - RESTART_WINDOW_MS) restarts.shift();
    if (restarts.length > MAX_RESTARTS) {
      logger.fatal(
        { ...detail, restarts: restarts.length, windowMs: RESTART_WINDOW_MS },
        'workers keep dying: giving up',
      );
      exitCode = 1;
      stop('workers keep dying');
      return;
    }
    logger.error(detail, 'worker exited unexpectedly: starting a new one');
    workerRestarts.inc();
    fork(member.index);
  }

  let forceTimer: NodeJS.Timeout | undefined;
  function stop(reason: string): void {
    if (stopping) return;
    stopping = true;
    logger.info({ reason, workers: members.size }, 'draining');
    // Each worker drains on its own (its server's shutdown: readiness off, in-flight requests get
    // --shutdown-grace, counters and statistics flushed through the primary).
    for (const member of live()) member.worker.process.kill('SIGTERM');
    forceTimer = setTimeout(() => {
      logger.error({ workers: members.size }, 'workers did not stop in time: killing them');
      for (const member of live()) member.worker.process.kill('SIGKILL');
    }, config.shutdownGrace + 10_000);
    forceTimer.unref();
    if (members.size === 0) resolveDone();
  }

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: killing the workers');
      for (const member of live()) member.worker.process.kill('SIGKILL');
      return;
    }
    stop(`signal ${signal}`);
  };
  // The primary does little, but if that little fails the workers still get their graceful drain.
  const onFatal = (error: unknown): void => {
    logger.fatal({ err: error }, 'uncaught error in the primary process: stopping');
    exitCode = 1;
    stop('uncaught error');
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);

  // Workers run the same command line; `advanced` serialization carries Maps (counter totals).
  cluster.setupPrimary({ serialization: 'advanced' });
  logger.info(
    { workers, pid: process.pid, store: store ? `${store.displayUrl} (owned by the primary)` : 'shared' },
    'starting workers',
  );
  for (let index = 1; index <= workers; index++) fork(index);

  await done;
  clearTimeout(forceTimer);
  clearInterval(leaseSweep);
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  process.off('uncaughtException', onFatal);
  process.off('unhandledRejection', onFatal);
  if (store) {
    await store.close().catch((error: unknown) => logger.error({ err: error }, 'closing the store failed'));
  }
  logger.info({ exitCode }, 'stopped');
  await flushLogger(logger);
  return exitCode;
}
