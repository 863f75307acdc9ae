/**
 * What `meli-proxy top` shows, computed from one `GET /admin/stats/live` answer, and its plain-text
 * form (used when stdout is not a terminal).
 *
 * The newest second of the answer is still being counted, so rates use the `windowSeconds`
 * complete seconds before it, and so does latency (quantiles of the window's merged buckets).
 */
import type { LiveStats, TopEntry } from '../admin-client.js';
import {
  type Column,
  formatCount,
  formatMs,
  formatPercent,
  formatRate,
  formatTable,
  formatUtc,
  sparkline,
} from '../stats-format.js';

export const DEFAULT_WINDOW_SECONDS = 10;

export interface TopSummary {
  /** Server time of the answer (epoch ms). */
  at: number;
  windowSeconds: number;
  rps: number;
  rateLimitedPerSecond: number;
  /** 5xx answers / requests in the window; NaN when there were no requests. */
  errorRate: number;
  /** NaN when no complete second saw traffic. */
  p50Ms: number;
  p99Ms: number;
  /** Requests in the whole minute. */
  requestsLastMinute: number;
  /** Requests per second, oldest first (60 values). */
  series: number[];
  topRoutes: TopEntry[];
  topIps: TopEntry[];
  topRules: TopEntry[];
}

export function summarizeLive(
  live: LiveStats,
  windowSeconds = DEFAULT_WINDOW_SECONDS,
  shadowRules: ReadonlySet<string> = new Set(),
): TopSummary {
  const seconds = live.seconds ?? [];
  // Everything but the newest (partial) second; with a single entry, that one.
  const complete = seconds.length > 1 ? seconds.slice(0, -1) : seconds;
  const window = complete.slice(-windowSeconds);
  const span = Math.max(1, window.length);
  let requests = 0;
  let rateLimited = 0;
  let errors = 0;
  for (const second of window) {
    requests += second.requests;
    rateLimited += second.rateLimited;
    errors += second.errors;
  }
  const latest = [...complete].reverse().find((second) => second.requests > 0);
  return {
    at: live.now,
    windowSeconds: window.length,
    rps: requests / span,
    rateLimitedPerSecond: rateLimited / span,
    errorRate: requests > 0 ? errors / requests : Number.NaN,
    // Over the window the rates use, from the server's merged buckets; an older server sends only
    // per-second figures: then the newest complete second that saw traffic.
    p50Ms: live.window && requests > 0 ? live.window.p50Ms : latest ? latest.p50Ms : Number.NaN,
    p99Ms: live.window && requests > 0 ? live.window.p99Ms : latest ? latest.p99Ms : Number.NaN,
    requestsLastMinute: seconds.reduce((sum, second) => sum + second.requests, 0),
    series: seconds.map((second) => second.requests),
    topRoutes: live.topRoutes ?? [],
    topIps: live.topIps ?? [],
    // A shadow rule's hits are exceedances it let through, not rejections: say so.
    topRules: (live.topRules ?? []).map((entry) =>
      shadowRules.has(entry.key) ? { ...entry, key: `${entry.key} (shadow)` } : entry,
    ),
  };
}

/** The headline figures as label/value pairs, in display order. */
export function headline(summary: TopSummary): Array<[label: string, value: string]> {
  return [
    ['rps', formatRate(summary.rps)],
    ['429/s', formatRate(summary.rateLimitedPerSecond)],
    ['5xx', formatPercent(summary.errorRate)],
    ['p50', formatMs(summary.p50Ms)],
    ['p99', formatMs(summary.p99Ms)],
  ];
}

export interface TopSection {
  title: string;
  countHeader: string;
  entries: TopEntry[];
  empty: string;
}

export function sections(summary: TopSummary): TopSection[] {
  return [
    { title: 'TOP ROUTES', countHeader: 'REQ/60s', entries: summary.topRoutes, empty: 'no traffic' },
    { title: 'TOP CLIENT IPS', countHeader: 'REQ/60s', entries: summary.topIps, empty: 'no traffic' },
    { title: 'TOP RULES', countHeader: 'HITS/60s', entries: summary.topRules, empty: 'no rule hit' },
  ];
}

/** One snapshot as plain text lines (no colour), for pipes and logs. */
export function formatTopText(summary: TopSummary, adminUrl: string): string[] {
  const lines = [
    `meli-proxy top · ${adminUrl} · ${formatUtc(new Date(summary.at))}`,
    `${headline(summary)
      .map(([label, value]) => `${label} ${value}`)
      .join(' · ')} (last ${summary.windowSeconds} s)`,
    // Requests per second over the last minute; within 80 columns (62 + the minute's count).
    `|${sparkline(summary.series)}| ${formatCount(summary.requestsLastMinute)}/min`,
  ];
  for (const section of sections(summary)) {
    lines.push('');
    if (section.entries.length === 0) {
      lines.push(`${section.title}: ${section.empty}`);
      continue;
    }
    const columns: Column[] = [
      { header: section.title, align: 'left' },
      { header: section.countHeader, align: 'right' },
    ];
    lines.push(
      ...formatTable(
        columns,
        section.entries.map((entry) => [entry.key, formatCount(entry.requests)]),
      ),
    );
  }
  return lines;
}
