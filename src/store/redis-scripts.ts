/**
 * The Lua scripts the Redis store runs, registered on its client (redis-client.ts) so that each
 * call is one EVALSHA (falling back to EVAL after a restart emptied the server's script cache).
 */
import { type CommandParser, defineScript } from 'redis';

/** The number of keys varies per call, so the parser pushes it (no NUMBER_OF_KEYS). */
function variadicKeys(parser: CommandParser, keys: string[], args: string[]): void {
  parser.pushKeysLength(keys); // numkeys, then the keys
  parser.push(...args);
}

// KEYS[1] the replica set; KEYS[2..n] one counter per window.
// ARGV[1] replica id; ARGV[2] liveness horizon (ms); then per counter: delta, expiry (ms), and the
// last total the replica read for it. A counter that is missing although the replica read a total
// for it was lost by the server (a restart without persistence): it starts again from that total,
// so the window's earlier requests still count. A counter another replica restored is only added to.
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
  local arg = 3 * i - 3
  local seen = tonumber(ARGV[arg + 2])
  if seen > 0 and redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('SET', KEYS[i], seen)
  end
  out[i - 1] = redis.call('INCRBY', KEYS[i], ARGV[arg])
  redis.call('PEXPIRE', KEYS[i], ARGV[arg + 1])
end
out[#KEYS] = redis.call('ZCARD', KEYS[1])
return out`;

export const SYNC_COUNTERS_SCRIPT = defineScript({
  SCRIPT: SYNC_LUA,
  parseCommand: variadicKeys,
  transformReply: (reply: unknown) => reply as number[],
});

// KEYS[1] the batch id's key; KEYS[2] the sorted set of minutes; KEYS[3..n] one hash per minute.
// ARGV[1] how long the batch id is remembered (ms); then per row: index of its hash in KEYS, its
// minute, its field prefix, requests, bytes, latency sum. Claiming the id and adding the rows are
// one atomic step, so a batch sent again after a timeout is added once. Returns 1 if added, 0 if
// the id was already claimed.
const ADD_STATS_BATCH_LUA = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
for i = 2, #ARGV, 6 do
  local key = KEYS[tonumber(ARGV[i])]
  local field = ARGV[i + 2]
  redis.call('HINCRBY', key, field .. 'r', ARGV[i + 3])
  redis.call('HINCRBY', key, field .. 'b', ARGV[i + 4])
  redis.call('HINCRBYFLOAT', key, field .. 'l', ARGV[i + 5])
  redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i + 1])
end
return 1`;

export const ADD_STATS_BATCH_SCRIPT = defineScript({
  SCRIPT: ADD_STATS_BATCH_LUA,
  parseCommand: variadicKeys,
  transformReply: (reply: unknown) => reply as number,
});
