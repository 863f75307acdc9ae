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
 */
import { type CommandParser, defineScript } from 'redis';
import { mergeDeltas, totalKey } from './deltas.js';
import { type CounterTuning, DEFAULT_COUNTER_TUNING } from './pg-counters.js';
import type { RedisConnection } from './redis-client.js';
import type { CounterBackend, CounterDelta, CounterSyncResult } from './types.js';

export const COUNTER_KEY_PREFIX = 'meli-proxy:{counters}:';
export const REPLICAS_KEY = `${COUNTER_KEY_PREFIX}replicas`;

export interface RedisCounterTuning {
  /** A replica counts as live if it synced within this horizon. Default: as for PostgreSQL, 3000 ms. */
  replicaTtlMs: CounterTuning['replicaTtlMs'];
  /**
   * Windows per script call. A larger batch is split into several calls, sent together (one
   * round trip, pipelined) so that no single script keeps the server busy for long. Default 1000.
   */
  maxKeysPerScript: number;
}

export const DEFAULT_REDIS_COUNTER_TUNING: RedisCounterTuning = {
  replicaTtlMs: DEFAULT_COUNTER_TUNING.replicaTtlMs,
  maxKeysPerScript: 1000,
};

// KEYS[1] the replica set; KEYS[2..n] one counter per window.
// ARGV[1] replica id; ARGV[2] liveness horizon (ms); then per counter: delta, expiry (ms).
// Returns the counters' totals in KEYS order, then the number of live replicas.
const SYNC_LUA = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local horizon = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - horizon)
redis.call('PEXPIRE', KEYS[1], horizon)
local out = {}
for i = 2, #KEYS do
  local arg = 2 * i - 1
  out[i - 1] = redis.call('INCRBY', KEYS[i], ARGV[arg])
  redis.call('PEXPIRE', KEYS[i], ARGV[arg + 1])
end
out[#KEYS] = redis.call('ZCARD', KEYS[1])
return out`;

export const SYNC_COUNTERS_SCRIPT = defineScript({
  SCRIPT: SYNC_LUA,
  // The number of keys varies per call, so parseCommand pushes it (no NUMBER_OF_KEYS).
  parseCommand(parser: CommandParser, keys: string[], args: string[]) {
    parser.pushKeysLength(keys); // numkeys, then the keys
    parser.push(...args);
  },
  transformReply: (reply: unknown) => reply as number[],
});

export class RedisCounterBackend implements CounterBackend {
  constructor(
    private readonly connection: RedisConnection,
    private readonly tuning: RedisCounterTuning,
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
    const replies = await this.connection.bound((client) =>
      Promise.all(
        chunks.map((chunk) => {
          const keys = [REPLICAS_KEY];
          const args = [replicaId, horizon];
          for (const d of chunk) {
            keys.push(COUNTER_KEY_PREFIX + totalKey(d.key, d.windowStart));
            args.push(String(d.delta), String(2 * d.windowMs));
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
        totals.set(totalKey(d.key, d.windowStart), Number(reply[i]));
      });
      replicas = Math.max(1, Number(reply[chunk.length]));
    });
    return { totals, replicas };
  }
}
