/**
 * The Store of a cluster worker when the store is embedded: every operation is a call to the
 * primary process, which owns the one embedded store of the host (ipc-server.ts). Workers thus act
 * like replicas sharing a store: rules and documents are the same for all, per-minute statistics
 * add up in one place. Rate-limit counters do not go through the store here: the primary grants
 * permits out of the one set of counts it keeps (connectIpcLeases, limits/lease-arbiter.ts), which
 * makes limits exact across the workers. (`store.counters.sync` is still served, for completeness.)
 */
import type {
  LeaseAsk,
  LeaseGrant,
  LeaseReclaim,
  LeaseReturn,
  LeaseTransport,
} from '../limits/lease-arbiter.js';
import type { IpcPeer } from './ipc-peer.js';
import type {
  CounterBackend,
  CounterDelta,
  CounterSyncResult,
  DocumentStore,
  StatRow,
  StatsQuery,
  StatsStore,
  Store,
  StoreKind,
} from './types.js';

/** What the primary tells a worker about the store it serves (`store.describe`). */
export interface IpcStoreInfo {
  kind: StoreKind;
  displayUrl: string;
}

/** Call names, shared with ipc-server.ts. */
export const STORE_OPS = {
  describe: 'store.describe',
  check: 'store.check',
  get: 'store.documents.get',
  set: 'store.documents.set',
  delete: 'store.documents.delete',
  list: 'store.documents.list',
  sync: 'store.counters.sync',
  add: 'store.stats.add',
  query: 'store.stats.query',
  prune: 'store.stats.prune',
} as const;

/** Rate-limit lease calls (worker → primary), shared with ipc-server.ts. */
export const LEASE_OPS = {
  lease: 'limits.lease',
  release: 'limits.release',
} as const;

/**
 * How long a worker waits for a lease answer before deciding by --on-store-error: requests wait on
 * it, so it is much shorter than the store calls' 5 s.
 */
export const LEASE_TIMEOUT_MS = 1000;

/** The primary's lease arbiter as seen from a worker. */
export function connectIpcLeases(peer: IpcPeer, timeoutMs = LEASE_TIMEOUT_MS): LeaseTransport {
  return {
    lease: (asks: readonly LeaseAsk[]) => peer.call<LeaseGrant[]>(LEASE_OPS.lease, [asks], timeoutMs),
    release: (returns: readonly LeaseReturn[]) =>
      peer.call<LeaseReclaim[]>(LEASE_OPS.release, [returns], timeoutMs),
  };
}

/** Asks the primary what it serves and returns a Store backed by it. */
export async function connectIpcStore(peer: IpcPeer): Promise<Store> {
  const info = await peer.call<IpcStoreInfo>(STORE_OPS.describe);
  let closed = false;
  const call = <T>(op: string, args: unknown[] = []): Promise<T> => {
    if (closed) return Promise.reject(new Error('the store is closed'));
    return peer.call<T>(op, args);
  };

  const documents: DocumentStore = {
    get: <T>(key: string) => call<T | undefined>(STORE_OPS.get, [key]),
    set: <T>(key: string, value: T, ttlMs?: number) =>
      call<void>(STORE_OPS.set, ttlMs === undefined ? [key, value] : [key, value, ttlMs]),
    delete: (key: string) => call<boolean>(STORE_OPS.delete, [key]),
    list: <T>(prefix: string) => call<Array<[string, T]>>(STORE_OPS.list, [prefix]),
  };
  const counters: CounterBackend = {
    sync: (replicaId: string, deltas: readonly CounterDelta[]) =>
      call<CounterSyncResult>(STORE_OPS.sync, [replicaId, deltas]),
  };
  const stats: StatsStore = {
    add: (rows: readonly StatRow[], batchId?: string) =>
      call<void>(STORE_OPS.add, batchId === undefined ? [rows] : [rows, batchId]),
    query: (query: StatsQuery) => call<StatRow[]>(STORE_OPS.query, [query]),
    prune: (before: number) => call<number>(STORE_OPS.prune, [before]),
  };

  return {
    kind: info.kind,
    displayUrl: info.displayUrl,
    documents,
    counters,
    stats,
    check: () => call<void>(STORE_OPS.check),
    // The store belongs to the primary, which closes it once every worker has stopped.
    async close() {
      closed = true;
    },
  };
}
