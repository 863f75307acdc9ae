/**
 * Counters for a single process (the embedded store): the global total is the local total, and
 * there is exactly one replica. Windows are forgotten one window after they end, like in SQL.
 */
import { mergeDeltas } from './deltas.js';
import type { CounterBackend, CounterDelta, CounterSyncResult } from './types.js';

interface Cell {
  n: number;
  expiresAt: number;
}

export class MemoryCounterBackend implements CounterBackend {
  private readonly cells = new Map<string, Cell>();
  private nextSweep = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async sync(_replicaId: string, deltas: readonly CounterDelta[]): Promise<CounterSyncResult> {
    const merged = mergeDeltas(deltas);
    const now = this.now();
    this.sweep(now);
    const totals = new Map<string, number>();
    for (const [id, d] of merged) {
      let cell = this.cells.get(id);
      if (!cell) {
        cell = { n: 0, expiresAt: d.windowStart + 2 * d.windowMs };
        this.cells.set(id, cell);
      }
      cell.n += d.delta;
      totals.set(id, cell.n);
    }
    return { totals, replicas: 1 };
  }

  /** Number of windows held; for tests and metrics. */
  get size(): number {
    return this.cells.size;
  }

  private sweep(now: number): void {
    // A full scan per sync would cost O(windows); once a second is plenty for memory hygiene.
    if (now < this.nextSweep) return;
    this.nextSweep = now + 1000;
    for (const [id, cell] of this.cells) if (cell.expiresAt <= now) this.cells.delete(id);
  }
}
