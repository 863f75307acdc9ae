/**
 * Exact shared counting in Redis: one Lua script per request (EVALSHA, EVAL after a restart emptied
 * the script cache), atomic on the server, on the keys the counter sync adds deltas to.
 */
import { createHash } from 'node:crypto';
import { totalKey } from './deltas.js';
import type { RedisConnection } from './redis-client.js';
import { COUNTER_KEY_PREFIX } from './redis-counters.js';
import type { ExactCounter, ExactCounterStore, ExactTakeResult } from './types.js';

// KEYS: per counter, its current window then its previous one. ARGV: per counter, ms left in the
// window, window length, cap, expiry of the current window (ms). Admits when every counter has
// floor(previous × left / window) + current + 1 ≤ cap, and then counts the request in all of them.
// Returns 1 or 0, then per counter its previous and current totals (current after the increment).
const TAKE_LUA = `
local n = #KEYS / 2
local prev, cur = {}, {}
local ok = 1
for i = 1, n do
  cur[i] = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  prev[i] = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local left = tonumber(ARGV[4 * i - 3])
  local window = tonumber(ARGV[4 * i - 2])
  local cap = tonumber(ARGV[4 * i - 1])
  if math.floor(prev[i] * left / window + 1e-9) + cur[i] + 1 > cap then ok = 0 end
end
if ok == 1 then
  for i = 1, n do
    cur[i] = redis.call('INCRBY', KEYS[2 * i - 1], 1)
    redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[4 * i])
  end
end
local out = { ok }
for i = 1, n do
  out[#out + 1] = prev[i]
  out[#out + 1] = cur[i]
end
return out`;

const TAKE_SHA = createHash('sha1').update(TAKE_LUA).digest('hex');

export class RedisExactCounters implements ExactCounterStore {
  constructor(private readonly connection: RedisConnection) {}

  async take(counters: readonly ExactCounter[]): Promise<ExactTakeResult> {
    const keys: string[] = [];
    const args: string[] = [];
    for (const c of counters) {
      keys.push(
        COUNTER_KEY_PREFIX + totalKey(c.key, c.windowStart),
        COUNTER_KEY_PREFIX + totalKey(c.key, c.windowStart - c.windowMs),
      );
      args.push(String(c.leftMs), String(c.windowMs), String(c.cap), String(2 * c.windowMs));
    }
    const reply = (await this.connection.bound(async (client) => {
      try {
        return await client.evalSha(TAKE_SHA, { keys, arguments: args });
      } catch (error) {
        if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
        return client.eval(TAKE_LUA, { keys, arguments: args });
      }
    })) as unknown;
    if (!Array.isArray(reply) || reply.length !== 1 + 2 * counters.length)
      throw new Error('unexpected reply from the Redis exact counting script');
    const values = reply.map(Number);
    return {
      admitted: values[0] === 1,
      previous: counters.map((_, i) => values[1 + 2 * i]!),
      current: counters.map((_, i) => values[2 + 2 * i]!),
    };
  }
}
