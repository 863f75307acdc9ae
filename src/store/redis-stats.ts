/**
 * Statistics in Redis: one hash per minute (`meli-proxy:stats:<minute>`, fields
 * `<dimension>\0<value>\0<r|b|l>`), and a sorted set of the minutes that exist, so range reads and
 * pruning never scan the keyspace.
 */
import type { RedisConnection } from './redis-client.js';
import { BATCH_MEMORY_MS } from './seen-batches.js';
import { groupRows, mergeRows, minuteOf } from './stats-rows.js';
import type { StatDimension, StatRow, StatsQuery, StatsStore } from './types.js';

const PREFIX = 'meli-proxy:stats:';
const MINUTES_KEY = 'meli-proxy:stats-minutes';
const SEPARATOR = '\u0000';
const BATCH_PREFIX = 'meli-proxy:stats-batch:';

function parseHash(minute: number, hash: Record<string, string>): StatRow[] {
  const rows = new Map<string, StatRow>();
  for (const [field, raw] of Object.entries(hash)) {
    const parts = field.split(SEPARATOR);
    if (parts.length !== 3) continue;
    const [dimension, value, measure] = parts as [StatDimension, string, string];
    const key = `${dimension}${SEPARATOR}${value}`;
    let row = rows.get(key);
    if (!row) {
      row = { minute, dimension, value, requests: 0, bytes: 0, latencyMsSum: 0 };
      rows.set(key, row);
    }
    const number = Number(raw);
    if (measure === 'r') row.requests = number;
    else if (measure === 'b') row.bytes = number;
    else if (measure === 'l') row.latencyMsSum = number;
  }
  return [...rows.values()];
}

function fieldOf(row: StatRow): string {
  return `${row.dimension}${SEPARATOR}${row.value}${SEPARATOR}`;
}

export class RedisStatsStore implements StatsStore {
  constructor(private readonly connection: RedisConnection) {}

  async add(rows: readonly StatRow[], batchId?: string): Promise<void> {
    if (rows.length === 0) return;
    const merged = mergeRows(rows);
    if (batchId !== undefined) return this.addBatch(merged, batchId);
    await this.connection.bound(async (client) => {
      const multi = client.multi();
      for (const row of merged) {
        const key = `${PREFIX}${row.minute}`;
        const field = fieldOf(row);
        multi.hIncrBy(key, `${field}r`, Math.round(row.requests));
        multi.hIncrBy(key, `${field}b`, Math.round(row.bytes));
        multi.hIncrByFloat(key, `${field}l`, row.latencyMsSum);
        multi.zAdd(MINUTES_KEY, { score: row.minute, value: String(row.minute) });
      }
      await multi.exec();
    });
  }

  private async addBatch(rows: readonly StatRow[], batchId: string): Promise<void> {
    const keys = [`${BATCH_PREFIX}${batchId}`, MINUTES_KEY];
    const keyIndex = new Map<number, number>();
    const args = [String(BATCH_MEMORY_MS)];
    for (const row of rows) {
      let index = keyIndex.get(row.minute);
      if (index === undefined) {
        keys.push(`${PREFIX}${row.minute}`);
        index = keys.length; // Lua arrays count from 1
        keyIndex.set(row.minute, index);
      }
      args.push(
        String(index),
        String(row.minute),
        fieldOf(row),
        String(Math.round(row.requests)),
        String(Math.round(row.bytes)),
        String(row.latencyMsSum),
      );
    }
    await this.connection.bound((client) => client.addStatsBatch(keys, args));
  }

  async query(query: StatsQuery): Promise<StatRow[]> {
    const from = minuteOf(query.from);
    return this.connection.bound(async (client) => {
      const minutes = await client.zRangeByScore(MINUTES_KEY, from, query.to - 1);
      if (minutes.length === 0) return [];
      const multi = client.multi();
      for (const minute of minutes) multi.hGetAll(`${PREFIX}${minute}`);
      const hashes = (await multi.exec()) as unknown as Array<Record<string, string>>;
      const rows = hashes.flatMap((hash, index) => parseHash(Number(minutes[index]), hash ?? {}));
      return groupRows(rows, query);
    });
  }

  async prune(before: number): Promise<number> {
    return this.connection.bound(async (client) => {
      const minutes = await client.zRangeByScore(MINUTES_KEY, '-inf', before - 1);
      if (minutes.length === 0) return 0;
      await client.del(minutes.map((minute) => `${PREFIX}${minute}`));
      await client.zRemRangeByScore(MINUTES_KEY, '-inf', before - 1);
      return minutes.length;
    });
  }
}
