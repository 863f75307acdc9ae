/**
 * The primary's side of the IPC store (see ipc-client.ts): answers one worker's store calls from
 * the store the primary owns, and its rate-limit lease calls from the primary's one LeaseArbiter
 * (limits/lease-arbiter.ts), which is what makes limits exact across the workers.
 *
 * Counters: `store.counters.sync` is still answered (a worker built without leases would use it):
 * the embedded counter backend counts for a single process and reports one replica; here every
 * worker is a replica, so the answer carries the number of live workers instead.
 */
import type { LeaseArbiter, LeaseAsk, LeaseReturn } from '../limits/lease-arbiter.js';
import type { IpcStoreInfo } from './ipc-client.js';
import { LEASE_OPS, STORE_OPS } from './ipc-client.js';
import type { IpcPeer } from './ipc-peer.js';
import type { CounterDelta, StatRow, StatsQuery, Store } from './types.js';

export interface IpcStoreServerOptions {
  /** Workers that currently share the store (the replica count reported to counter syncs). */
  replicas: () => number;
  /** The primary's lease arbiter; without it lease calls fail and workers fall back (onStoreError). */
  leases?: LeaseArbiter;
  clock?: () => number;
}

/** Registers the store operations on a worker's peer. */
export function serveStore(peer: IpcPeer, store: Store, options: IpcStoreServerOptions): void {
  const info: IpcStoreInfo = { kind: store.kind, displayUrl: store.displayUrl };
  peer
    .handle(STORE_OPS.describe, () => info)
    .handle(STORE_OPS.check, () => store.check())
    .handle(STORE_OPS.get, (key: string) => store.documents.get(key))
    .handle(STORE_OPS.set, (key: string, value: unknown, ttlMs?: number) =>
      store.documents.set(key, value, ttlMs),
    )
    .handle(STORE_OPS.delete, (key: string) => store.documents.delete(key))
    .handle(STORE_OPS.list, (prefix: string) => store.documents.list(prefix))
    .handle(STORE_OPS.sync, async (replicaId: string, deltas: CounterDelta[]) => {
      const result = await store.counters.sync(replicaId, deltas);
      return { totals: result.totals, replicas: Math.max(result.replicas, options.replicas()) };
    })
    .handle(STORE_OPS.add, (rows: StatRow[], batchId?: string) => store.stats.add(rows, batchId))
    .handle(STORE_OPS.query, (query: StatsQuery) => store.stats.query(query))
    .handle(STORE_OPS.prune, (before: number) => store.stats.prune(before));
  const { leases } = options;
  if (!leases) return;
  const clock = options.clock ?? Date.now;
  peer
    .handle(LEASE_OPS.lease, (asks: LeaseAsk[]) => leases.grant(asks, clock()))
    .handle(LEASE_OPS.release, (returns: LeaseReturn[]) => leases.release(returns, clock()));
}
