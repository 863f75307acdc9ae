import { SeenBatches } from './seen-batches.js';
import { groupRows, mergeRows } from './stats-rows.js';
import type { StatRow, StatsQuery, StatsStore } from './types.js';

/** Statistics kept in process memory, grouped by minute so pruning and range reads skip the rest. */
export class MemoryStatsStore implements StatsStore {
  private readonly minutes = new Map<number, Map<string, StatRow>>();
  private readonly batches = new SeenBatches();

  async add(rows: readonly StatRow[], batchId?: string): Promise<void> {
    if (batchId !== undefined && !this.batches.claim(batchId)) return;
    this.addNow(rows);
  }

  /** Synchronous add, for loading what was persisted. */
  addNow(rows: readonly StatRow[]): void {
    for (const row of mergeRows(rows)) {
      let minute = this.minutes.get(row.minute);
      if (!minute) {
        minute = new Map();
        this.minutes.set(row.minute, minute);
      }
      const key = `${row.dimension}\u0000${row.value}`;
      const seen = minute.get(key);
      if (seen) {
        seen.requests += row.requests;
        seen.bytes += row.bytes;
        seen.latencyMsSum += row.latencyMsSum;
      } else {
        minute.set(key, { ...row });
      }
    }
  }

  async query(query: StatsQuery): Promise<StatRow[]> {
    const inRange = function* (minutes: Map<number, Map<string, StatRow>>) {
      for (const [minute, rows] of minutes) {
        if (minute >= query.from - 59_999 && minute < query.to) yield* rows.values();
      }
    };
    return groupRows(inRange(this.minutes), query);
  }

  async prune(before: number): Promise<number> {
    let removed = 0;
    for (const [minute, rows] of this.minutes) {
      if (minute >= before) continue;
      removed += rows.size;
      this.minutes.delete(minute);
    }
    return removed;
  }
}
