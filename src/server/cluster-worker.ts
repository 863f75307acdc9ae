/**
 * The worker side of `serve --workers N` (see cluster.ts): the channel to the primary, the store
 * it serves when the store is embedded, and the hooks that make `/metrics`, `/admin/stats/live`
 * and `/admin/stats` answer for the whole server rather than for one worker.
 */
import cluster from 'node:cluster';
import type { Lock } from '../auth/lock.js';
import { IpcLock } from '../auth/lock-ipc.js';
import type { LeaseTransport } from '../limits/lease-arbiter.js';
import { connectIpcLeases, connectIpcStore } from '../store/ipc-client.js';
import { IpcPeer } from '../store/ipc-peer.js';
import type { Store } from '../store/types.js';
import { CLUSTER_OPS, WORKER_ENV } from './cluster.js';
import type { ProxyMetrics } from './metrics.js';
import type { RateLimiter } from './rate-limit.js';
import type { StatsRecorder } from './stats/recorder.js';

/** How long a worker waits for an aggregate the primary gathers from every worker. */
const AGGREGATE_TIMEOUT_MS = 5000;

let peer: IpcPeer | undefined;

/** This process's worker number (1-based) when it is a worker of `serve --workers`, else undefined. */
export function clusterWorkerIndex(env: NodeJS.ProcessEnv = process.env): number | undefined {
  if (!cluster.isWorker) return undefined;
  const index = Number(env[WORKER_ENV]);
  return Number.isInteger(index) && index > 0 ? index : undefined;
}

function primary(): IpcPeer {
  peer ??= new IpcPeer(process as unknown as ConstructorParameters<typeof IpcPeer>[0], 'the primary process');
  return peer;
}

/** The embedded store as served by the primary. */
export function primaryStore(): Promise<Store> {
  return connectIpcStore(primary());
}

/** The host's token refresh lock, which the primary holds for every worker (auth/lock-ipc.ts). */
export function primaryRefreshLock(): Lock {
  return new IpcLock(primary());
}

/**
 * The primary's rate-limit lease arbiter, when this process is a worker whose primary owns the
 * embedded store (exact limits across workers); undefined otherwise.
 */
export function primaryLeases(env: NodeJS.ProcessEnv = process.env): LeaseTransport | undefined {
  return clusterWorkerIndex(env) === undefined ? undefined : connectIpcLeases(primary());
}

/** Wires a started server into the cluster and tells the primary it is ready. */
export async function joinCluster(server: {
  metrics: ProxyMetrics;
  stats: StatsRecorder;
  rateLimit: RateLimiter;
}): Promise<void> {
  const channel = primary();
  channel
    .handle(CLUSTER_OPS.workerMetrics, () => server.metrics.registry.getMetricsAsJSON())
    .handle(CLUSTER_OPS.workerLive, () => server.stats.liveExport())
    .handle(CLUSTER_OPS.workerFlush, () => server.stats.flush())
    .handle(CLUSTER_OPS.workerReloadRules, () => server.rateLimit.reload());
  server.rateLimit.reloadAcross(() => channel.call(CLUSTER_OPS.reloadRules, [], AGGREGATE_TIMEOUT_MS));
  server.metrics.renderThrough((format) =>
    channel.call<string>(CLUSTER_OPS.metrics, [format], AGGREGATE_TIMEOUT_MS),
  );
  server.stats.shareWith({
    liveExports: () => channel.call(CLUSTER_OPS.live, [], AGGREGATE_TIMEOUT_MS),
    flushAll: () => channel.call(CLUSTER_OPS.flush, [], AGGREGATE_TIMEOUT_MS),
  });
  await channel.call(CLUSTER_OPS.ready);
}
