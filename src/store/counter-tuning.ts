/** Liveness of replicas sharing counters, the same for every backend that has replicas. */
export interface ReplicaTuning {
  /** A replica counts as live if it synced within this horizon. Default 3000 ms. */
  replicaTtlMs: number;
}

export const DEFAULT_REPLICA_TUNING: ReplicaTuning = { replicaTtlMs: 3000 };
