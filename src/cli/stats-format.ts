/**
 * Number, time and table formatting shared by `stats` and `top`. Locale-independent, so output is
 * the same on every machine (and in tests).
 */
import { UsageError } from '../errors.js';
import { MAX_EPOCH_MS, parseInstant } from '../instant.js';

/** 1234567 → "1,234,567"; fractions are rounded. */
export function formatCount(value: number): string {
  const rounded = Math.round(value);
  const sign = rounded < 0 ? '-' : '';
  return sign + String(Math.abs(rounded)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Requests per second: one decimal below 100, whole numbers above. */
export function formatRate(value: number): string {
  return value >= 100 ? formatCount(value) : value.toFixed(1);
}

const BYTE_UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** 1536 → "1.5 kB" (powers of 1000). */
export function formatBytes(value: number): string {
  let scaled = value;
  let unit = 0;
  while (Math.abs(scaled) >= 1000 && unit < BYTE_UNITS.length - 1) {
    scaled /= 1000;
    unit++;
  }
  return unit === 0 ? `${Math.round(scaled)} B` : `${scaled.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/** Milliseconds: "0.42 ms", "12.3 ms", "1.25 s". */
export function formatMs(value: number): string {
  if (!Number.isFinite(value)) return '–';
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value < 1) return `${value.toFixed(2)} ms`;
  return `${value.toFixed(1)} ms`;
}

/** 0.1234 → "12.3%". */
export function formatPercent(fraction: number): string {
  if (!Number.isFinite(fraction)) return '–';
  return `${(fraction * 100).toFixed(1)}%`;
}

/** "2025-01-01 10:00:00Z": UTC, to the second. */
export function formatUtc(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** A span of time in words: "60 min", "2 h 30 min", "3 d 4 h", "45 s". */
export function formatSpan(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return minutes % 60 === 0 ? `${hours} h` : `${hours} h ${minutes % 60} min`;
  const days = Math.floor(hours / 24);
  return hours % 24 === 0 ? `${days} d` : `${days} d ${hours % 24} h`;
}

const DURATION_UNITS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * A point in time given on the command line: `now`, a duration ago (`15m`, `2h`, `7d`, `-30s`),
 * epoch milliseconds, or ISO-8601 (`2025-01-01T10:00:00Z`, `2025-01-01`).
 */
export function parseTime(text: string, flag: string, now: number): Date {
  const value = text.trim();
  if (value === 'now') return new Date(now);
  const relative = /^-?(\d+(?:\.\d+)?)(s|m|h|d|w)$/.exec(value);
  // A bare number under 10 digits is more likely a duration without its unit than a 1970 time.
  const at = relative
    ? now - Number(relative[1]) * DURATION_UNITS[relative[2]!]!
    : /^\d{1,9}$/.test(value)
      ? undefined
      : parseInstant(value);
  if (at !== undefined && Math.abs(at) <= MAX_EPOCH_MS) return new Date(at);
  throw new UsageError(
    `Invalid ${flag} "${text}": expected "now", a duration ago (15m, 2h, 7d), epoch milliseconds or ISO-8601 (2025-01-01T10:00:00Z).`,
  );
}

export type Align = 'left' | 'right';

export interface Column {
  header: string;
  align: Align;
}

/** Pads cells into aligned columns separated by two spaces; no trailing spaces. */
export function formatTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string[] {
  const widths = columns.map((column, index) =>
    Math.max(column.header.length, ...rows.map((row) => (row[index] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    columns
      .map((column, index) => {
        const cell = cells[index] ?? '';
        const width = widths[index]!;
        return column.align === 'right' ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(columns.map((column) => column.header)), ...rows.map(line)];
}

const SPARK = '▁▂▃▄▅▆▇█';

/** A one-line bar chart: a space for zero, ▁ for the smallest non-zero value, █ for the largest. */
export function sparkline(values: readonly number[]): string {
  const max = Math.max(0, ...values);
  return values
    .map((value) => {
      if (max <= 0 || value <= 0) return ' ';
      const level = Math.ceil((value / max) * SPARK.length) - 1;
      return SPARK[Math.min(SPARK.length - 1, Math.max(0, level))];
    })
    .join('');
}
