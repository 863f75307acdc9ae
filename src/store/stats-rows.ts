import { STAT_DIMENSIONS, type StatDimension, type StatRow, type StatsQuery } from './types.js';

const MINUTE_MS = 60_000;

export function minuteOf(epochMs: number): number {
  return epochMs - (epochMs % MINUTE_MS);
}

function rowKey(row: Pick<StatRow, 'minute' | 'dimension' | 'value'>): string {
  return `${row.minute}\u0000${row.dimension}\u0000${row.value}`;
}

/** Sums rows with the same minute, dimension and value (a batch must not hit one key twice). */
export function mergeRows(rows: readonly StatRow[]): StatRow[] {
  const merged = new Map<string, StatRow>();
  for (const row of rows) {
    const key = rowKey(row);
    const seen = merged.get(key);
    if (seen) {
      seen.requests += row.requests;
      seen.bytes += row.bytes;
      seen.latencyMsSum += row.latencyMsSum;
    } else {
      merged.set(key, { ...row });
    }
  }
  return [...merged.values()];
}

/** Groups rows of one dimension over a range by value, largest first: the shape every query returns. */
export function groupRows(rows: Iterable<StatRow>, query: StatsQuery): StatRow[] {
  const from = minuteOf(query.from);
  const byValue = new Map<string, StatRow>();
  for (const row of rows) {
    if (row.dimension !== query.dimension || row.minute < from || row.minute >= query.to) continue;
    const seen = byValue.get(row.value);
    if (seen) {
      seen.requests += row.requests;
      seen.bytes += row.bytes;
      seen.latencyMsSum += row.latencyMsSum;
    } else {
      byValue.set(row.value, { ...row, minute: from });
    }
  }
  return [...byValue.values()].sort((a, b) => b.requests - a.requests).slice(0, query.limit);
}

const DIMENSIONS = new Set<StatDimension>(STAT_DIMENSIONS);

/** Checks a row read back from disk or Redis; a damaged line is skipped rather than trusted. */
export function isStatRow(value: unknown): value is StatRow {
  if (!value || typeof value !== 'object') return false;
  const row = value as Record<string, unknown>;
  return (
    typeof row.minute === 'number' &&
    typeof row.dimension === 'string' &&
    DIMENSIONS.has(row.dimension as StatDimension) &&
    typeof row.value === 'string' &&
    typeof row.requests === 'number' &&
    typeof row.bytes === 'number' &&
    typeof row.latencyMsSum === 'number'
  );
}
