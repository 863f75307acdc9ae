/**
 * Statistics for the embedded store: kept in memory for reads, and appended as JSON lines to one
 * file per UTC day under `<dataDir>/stats/` so they survive a restart. Appends never rewrite old
 * data; pruning deletes whole day files.
 */
import { appendFile, mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { StoreLogger } from './logger.js';
import { MemoryStatsStore } from './memory-stats.js';
import { SeenBatches } from './seen-batches.js';
import { isStatRow } from './stats-rows.js';
import type { StatRow, StatsQuery, StatsStore } from './types.js';

const DAY_FILE = /^(\d{4}-\d{2}-\d{2})\.jsonl$/;
const DAY_MS = 86_400_000;

function dayOf(minute: number): string {
  return new Date(minute).toISOString().slice(0, 10);
}

export class FileStatsStore implements StatsStore {
  private readonly memory = new MemoryStatsStore();
  private readonly batches = new SeenBatches();

  private constructor(private readonly dir: string) {}

  static async open(dataDir: string, logger: StoreLogger): Promise<FileStatsStore> {
    const dir = path.join(dataDir, 'stats');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const store = new FileStatsStore(dir);
    for (const name of await readdir(dir)) {
      if (!DAY_FILE.test(name)) continue;
      const text = await readFile(path.join(dir, name), 'utf8');
      const rows: StatRow[] = [];
      let damaged = 0;
      for (const line of text.split('\n')) {
        if (line.length === 0) continue;
        try {
          const row: unknown = JSON.parse(line);
          if (isStatRow(row)) rows.push(row);
          else damaged++;
        } catch {
          damaged++;
        }
      }
      // A torn last line after a crash must not cost the rest of the day.
      if (damaged > 0)
        logger.warn({ file: path.join(dir, name), damaged }, 'skipped damaged statistics lines');
      store.memory.addNow(rows);
    }
    return store;
  }

  async add(rows: readonly StatRow[], batchId?: string): Promise<void> {
    if (batchId !== undefined && !this.batches.claim(batchId)) return;
    try {
      await this.append(rows);
    } catch (error) {
      // Nothing of the batch is kept in memory: a retry must add it.
      if (batchId !== undefined) this.batches.release(batchId);
      throw error;
    }
  }

  private async append(rows: readonly StatRow[]): Promise<void> {
    const byDay = new Map<string, string[]>();
    for (const row of rows) {
      const day = dayOf(row.minute);
      let lines = byDay.get(day);
      if (!lines) {
        lines = [];
        byDay.set(day, lines);
      }
      lines.push(JSON.stringify(row));
    }
    for (const [day, lines] of byDay) {
      await appendFile(path.join(this.dir, `${day}.jsonl`), `${lines.join('\n')}\n`, { mode: 0o600 });
    }
    this.memory.addNow(rows);
  }

  query(query: StatsQuery): Promise<StatRow[]> {
    return this.memory.query(query);
  }

  async prune(before: number): Promise<number> {
    const removed = await this.memory.prune(before);
    for (const name of await readdir(this.dir)) {
      const match = DAY_FILE.exec(name);
      // A day file goes once its whole day lies before the cut-off.
      if (match && Date.parse(`${match[1]}T00:00:00Z`) + DAY_MS <= before) {
        await unlink(path.join(this.dir, name)).catch(() => undefined);
      }
    }
    return removed;
  }
}
