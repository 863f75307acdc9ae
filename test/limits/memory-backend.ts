import type { CounterBackend, CounterDelta, CounterSyncResult } from '../../src/store/types.js';

/** A deterministic PRNG, so that a failing interleaving can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A shared store in memory with network delay on both legs: deltas are applied atomically when the
 * request "arrives", and the answer (totals at that moment) travels back with its own delay, as with
 * `INSERT … ON CONFLICT … RETURNING` over a network.
 */
export class MemoryBackend implements CounterBackend {
  readonly totals = new Map<string, number>();
  private readonly seen = new Map<string, number>();
  /** Refuse pushes before applying them. */
  down = false;
  /** Apply pushes, then fail to answer (connection cut after COMMIT). */
  loseAnswers = false;
  calls = 0;
  inFlight = 0;
  maxInFlightPerReplica = 0;
  private readonly inFlightBy = new Map<string, number>();

  constructor(
    private readonly delay: () => number = () => 2,
    private readonly horizonMs = 1000,
  ) {}

  async sync(replicaId: string, deltas: readonly CounterDelta[]): Promise<CounterSyncResult> {
    this.calls++;
    const mine = (this.inFlightBy.get(replicaId) ?? 0) + 1;
    this.inFlightBy.set(replicaId, mine);
    this.maxInFlightPerReplica = Math.max(this.maxInFlightPerReplica, mine);
    try {
      await sleep(this.delay());
      if (this.down) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      const totals = new Map<string, number>();
      for (const d of deltas) {
        const key = `${d.key}@${d.windowStart}`;
        const total = (this.totals.get(key) ?? 0) + d.delta;
        this.totals.set(key, total);
        totals.set(key, total);
      }
      const now = Date.now();
      this.seen.set(replicaId, now);
      let replicas = 0;
      for (const at of this.seen.values()) if (now - at <= this.horizonMs) replicas++;
      const lose = this.loseAnswers;
      await sleep(this.delay());
      if (lose) throw new Error('Connection terminated unexpectedly');
      return { totals, replicas };
    } finally {
      this.inFlightBy.set(replicaId, (this.inFlightBy.get(replicaId) ?? 1) - 1);
    }
  }

  total(key: string, windowStart: number): number {
    return this.totals.get(`${key}@${windowStart}`) ?? 0;
  }
}
