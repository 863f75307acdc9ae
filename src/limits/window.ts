/**
 * `N/<window>` limits. Windows come from a short fixed list on purpose: counters are keyed by aligned
 * window starts that every replica must agree on, and a handful of sizes keeps the idle-key lists
 * (one per size, see key-table.ts) few and ordered.
 */

export interface Limit {
  /** Requests allowed per window. */
  readonly count: number;
  readonly windowMs: number;
}

export const WINDOW_NAMES = ['1s', '10s', '1m', '1h', '1d'] as const;
export type WindowName = (typeof WINDOW_NAMES)[number];

export const WINDOW_MS: Readonly<Record<WindowName, number>> = {
  '1s': 1_000,
  '10s': 10_000,
  '1m': 60_000,
  '1h': 3_600_000,
  '1d': 86_400_000,
};

const ALIASES: Readonly<Record<string, WindowName>> = {
  s: '1s',
  '1s': '1s',
  '10s': '10s',
  m: '1m',
  '1m': '1m',
  h: '1h',
  '1h': '1h',
  d: '1d',
  '1d': '1d',
};

export const MAX_LIMIT = 1_000_000_000;

export const LIMIT_EXPECTED = 'N/<window> where window is 1s, 10s, 1m, 1h or 1d (e.g. 1000/m)';

/** Parses `1000/m`, `10/1s`, `5/10s`; `undefined` when the text is not such a limit. */
export function parseLimit(text: string): Limit | undefined {
  const match = /^\s*(\d{1,10})\s*\/\s*([0-9]*[a-z]+)\s*$/.exec(text);
  if (!match) return undefined;
  const count = Number(match[1]);
  const name = ALIASES[match[2] as string];
  if (name === undefined || count < 1 || count > MAX_LIMIT) return undefined;
  return { count, windowMs: WINDOW_MS[name] };
}

/** The canonical spelling, e.g. `1000/1m`; `parseLimit(formatLimit(l))` gives `l` back. */
export function formatLimit(limit: Limit): string {
  return `${limit.count}/${windowName(limit.windowMs)}`;
}

export function windowName(windowMs: number): WindowName {
  for (const name of WINDOW_NAMES) if (WINDOW_MS[name] === windowMs) return name;
  throw new RangeError(`no window of ${windowMs} ms`);
}

/** Index of a window size in WINDOW_NAMES; key-table.ts keeps one idle list per size. */
export function windowIndex(windowMs: number): number {
  return WINDOW_NAMES.indexOf(windowName(windowMs));
}
