/**
 * Shared counters in Redis. One sync is one Lua script (EVALSHA, falling back to EVAL after a
 * server restart emptied the script cache), hence one round trip and one atomic step on the
 * server: it heartbeats the replica in a sorted set, forgets replicas older than the liveness
 * horizon, adds the whole batch with INCRBY, and returns the new totals plus the number of live
 * replicas. The clock is the server's (TIME), as PostgreSQL's now() is for that backend.
 *
 * Keys: `meli-proxy:{counters}:<key>@<windowStart>` per window and `meli-proxy:{counters}:replicas`.
 * The hash tag keeps every key of a script in one slot, as Redis Cluster requires. A window expires
 * two window lengths after its last write, so a sliding window can still read the previous one;
 * the replica set expires one horizon after the last heartbeat. Nothing needs a cleanup job.
 * A Redis that lost its data (restarted without persistence) gets each live window back at the
 * last total a replica read for it, at that replica's next sync.
 */
import { DEFAULT_REPLICA_TUNING, type ReplicaTuning } from './counter-tuning.js';
import { mergeDeltas, totalKey } from './deltas.js';
import type { RedisConnection } from './redis-client.js';
import type { CounterBackend, CounterDelta, CounterSyncResult } from './types.js';

export const COUNTER_KEY_PREFIX = 'meli-proxy:{counters}:';
export const REPLICAS_KEY = `${COUNTER_KEY_PREFIX}replicas`;

export interface RedisCounterTuning extends ReplicaTuning {
  /**
   * Windows per script call. A larger batch is split into several calls, sent together (one
   * round trip, pipelined) so that no single script keeps the server busy for long. Default 1000.
   */
  maxKeysPerScript: number;
}

export const DEFAULT_REDIS_COUNTER_TUNING: RedisCounterTuning = {
  ...DEFAULT_REPLICA_TUNING,
  maxKeysPerScript: 1000,
};

interface SeenTotal {
  n: number;
  /** Local epoch ms after which the server has expired the window anyway. */
  expiresAt: number;
}

export class RedisCounterBackend implements CounterBackend {
  /** The last total read per window: what a server that lost the window is re-seeded with. */
  private readonly seen = new Map<string, SeenTotal>();
  private nextSweep = 0;

  constructor(
    private readonly connection: RedisConnection,
    private readonly tuning: RedisCounterTuning,
    private readonly now: () => number = Date.now,
  ) {
    for (const name of ['replicaTtlMs', 'maxKeysPerScript'] as const) {
      if (!Number.isSafeInteger(tuning[name]) || tuning[name] < 1) {
        throw new RangeError(`${name} must be a positive integer, got ${tuning[name]}`);
      }
    }
  }

  async sync(replicaId: string, deltas: readonly CounterDelta[]): Promise<CounterSyncResult> {
    if (typeof replicaId !== 'string' || replicaId === '')
      throw new TypeError('replicaId must be a non-empty string');
    const merged = [...mergeDeltas(deltas).values()];
    const chunks: CounterDelta[][] = [];
    for (let i = 0; i < merged.length; i += this.tuning.maxKeysPerScript) {
      chunks.push(merged.slice(i, i + this.tuning.maxKeysPerScript));
    }
    if (chunks.length === 0) chunks.push([]); // still heartbeat and count replicas

    const horizon = String(this.tuning.replicaTtlMs);
    const now = this.now();
    const replies = await this.connection.bound((client) =>
      Promise.all(
        chunks.map((chunk) => {
          const keys = [REPLICAS_KEY];
          const args = [replicaId, horizon];
          for (const d of chunk) {
            keys.push(COUNTER_KEY_PREFIX + totalKey(d.key, d.windowStart));
            const id = totalKey(d.key, d.windowStart);
            args.push(String(d.delta), String(2 * d.windowMs), String(this.seenTotal(id, now)));
          }
          return client.syncCounters(keys, args);
        }),
      ),
    );

    const totals = new Map<string, number>();
    let replicas = 1;
    chunks.forEach((chunk, c) => {
      const reply = replies[c] ?? [];
      if (reply.length !== chunk.length + 1) {
        throw new Error(`unexpected reply from the Redis counter script: ${reply.length} values`);
      }
      chunk.forEach((d, i) => {
        const id = totalKey(d.key, d.windowStart);
        const n = Number(reply[i]);
        totals.set(id, n);
        this.seen.set(id, { n, expiresAt: d.windowStart + 2 * d.windowMs });
      });
      replicas = Math.max(1, Number(reply[chunk.length]));
    });
    this.sweep();
    return { totals, replicas };
  }

  /** The last total read for a window the server still keeps, else 0 (nothing to restore). */
  private seenTotal(id: string, now: number): number {
    const total = this.seen.get(id);
    return total && total.expiresAt > now ? total.n : 0;
  }

  private sweep(): void {
    // A scan per sync would cost O(windows); once a second is plenty for memory hygiene.
    const now = this.now();
    if (now < this.nextSweep) return;
    this.nextSweep = now + 1000;
    for (const [id, total] of this.seen) if (total.expiresAt <= now) this.seen.delete(id);
  }
}
