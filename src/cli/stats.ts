/**
 * `meli-proxy stats`: usage statistics of a running proxy (all replicas, from the shared store),
 * grouped by route, client IP, status class, rate-limit rule or account, as a table or as JSON.
 *
 * It reads `GET /admin/stats` on the admin port; see admin-client.ts for how the API is found.
 */
import { type Command, Option } from 'commander';
import { UsageError } from '../errors.js';
import {
  AdminClient,
  adminClientOptions,
  DEFAULT_ADMIN_URL,
  type FetchLike,
  GROUP_BYS,
  type GroupBy,
  type StatsQuery,
  type StatsResponse,
} from './admin-client.js';
import type { CliIO } from './io.js';
import {
  type Column,
  formatBytes,
  formatCount,
  formatMs,
  formatPercent,
  formatSpan,
  formatTable,
  formatUtc,
  parseTime,
} from './stats-format.js';

export interface StatsDeps {
  now(): number;
  fetch?: FetchLike;
}

interface StatsFlags {
  from?: string;
  to?: string;
  groupBy: GroupBy;
  limit: string;
  json?: boolean;
  adminUrl?: string;
}

export const MAX_LIMIT = 1000;

export function parseLimit(text: string): number {
  const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!(value >= 1 && value <= MAX_LIMIT)) {
    throw new UsageError(`Invalid --limit "${text}": expected a whole number from 1 to ${MAX_LIMIT}.`);
  }
  return value;
}

/** The query the flags ask for; times left out are the API's defaults (the last hour). */
export function statsQueryOf(flags: StatsFlags, now: number): StatsQuery {
  const query: StatsQuery = { groupBy: flags.groupBy, limit: parseLimit(flags.limit) };
  if (flags.from !== undefined) query.from = parseTime(flags.from, '--from', now);
  if (flags.to !== undefined) query.to = parseTime(flags.to, '--to', now);
  // Only --to given: the hour before it, as the API does for "now".
  if (query.to && !query.from) query.from = new Date(query.to.getTime() - 3_600_000);
  if (query.from && query.to && query.from.getTime() >= query.to.getTime()) {
    throw new UsageError(`--from (${formatUtc(query.from)}) must be before --to (${formatUtc(query.to)}).`);
  }
  return query;
}

const KEY_HEADERS: Record<GroupBy, string> = {
  route: 'ROUTE',
  ip: 'CLIENT IP',
  status: 'STATUS',
  rule: 'RULE',
  account: 'ACCOUNT',
};
const TITLES: Record<GroupBy, string> = {
  route: 'Requests by route',
  ip: 'Top client IPs',
  status: 'Requests by status',
  rule: 'Rate-limit rules',
  account: 'Requests by account (injected token)',
};

/** The table `meli-proxy stats` prints, line by line. */
export function formatStats(stats: StatsResponse): string[] {
  const from = new Date(stats.from);
  const to = new Date(stats.to);
  const lines = [
    `${TITLES[stats.groupBy] ?? 'Requests'} · ${formatUtc(from)} → ${formatUtc(to)} (${formatSpan(to.getTime() - from.getTime())})`,
    '',
  ];
  const totals = stats.totals;

  if (stats.rows.length === 0) {
    lines.push(
      stats.groupBy === 'rule'
        ? 'No request was rejected (or exceeded a shadow rule) in this period.'
        : 'No requests in this period.',
    );
  } else if (stats.groupBy === 'rule') {
    const columns: Column[] = [
      { header: 'RULE', align: 'left' },
      { header: 'HITS', align: 'right' },
    ];
    lines.push(
      ...formatTable(
        columns,
        stats.rows.map((row) => [row.key, formatCount(row.requests)]),
      ),
    );
    lines.push('', 'HITS: requests rejected with 429 by the rule, or that exceeded it in shadow mode.');
  } else {
    // Accounts are named by user id; the nickname, when the proxy holds it, is what people know.
    const named = stats.groupBy === 'account';
    const columns: Column[] = [
      { header: KEY_HEADERS[stats.groupBy] ?? 'KEY', align: 'left' },
      ...(named ? [{ header: 'NICKNAME', align: 'left' } as const] : []),
      { header: 'REQUESTS', align: 'right' },
      { header: 'SHARE', align: 'right' },
      { header: 'BYTES', align: 'right' },
      { header: 'AVG LATENCY', align: 'right' },
    ];
    const rows = stats.rows.map((row) => [
      row.key,
      ...(named ? [row.name ?? '–'] : []),
      formatCount(row.requests),
      formatPercent(totals.requests > 0 ? row.requests / totals.requests : Number.NaN),
      formatBytes(row.bytes),
      formatMs(row.latencyMsAvg),
    ]);
    const table = formatTable(columns, [
      ...rows,
      [
        'TOTAL',
        ...(named ? [''] : []),
        formatCount(totals.requests),
        '',
        formatBytes(totals.bytes),
        formatMs(totals.latencyMsAvg),
      ],
    ]);
    // A blank line before TOTAL.
    lines.push(...table.slice(0, -1), '', table[table.length - 1]!);
    if (stats.groupBy === 'ip') {
      lines.push('', 'Client IP counts come from a heavy-hitters sketch: they may overcount slightly.');
    }
    if (named) {
      lines.push(
        '',
        'Only requests forwarded with an injected token count here; TOTAL and SHARE are of all requests.',
      );
    }
  }
  lines.push(
    '',
    `Total requests: ${formatCount(totals.requests)} · rate limited (429): ${formatCount(totals.rateLimited)} · errors (5xx): ${formatCount(totals.errors)}`,
  );
  if (stats.counted) {
    const countedFrom = new Date(stats.counted.from);
    const countedTo = new Date(stats.counted.to);
    lines.push(
      `Counted: ${formatUtc(countedFrom)} → ${formatUtc(countedTo)} (${formatSpan(countedTo.getTime() - countedFrom.getTime())}): statistics are kept per whole minute.`,
    );
  }
  return lines;
}

export async function runStats(flags: StatsFlags, io: CliIO, deps: StatsDeps): Promise<void> {
  const query = statsQueryOf(flags, deps.now());
  const client = new AdminClient({
    ...adminClientOptions(io.env, flags),
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  });
  const stats = await client.stats(query);
  if (flags.json) {
    io.stdout.write(`${JSON.stringify(stats, null, 2)}\n`);
    return;
  }
  io.stdout.write(`${formatStats(stats).join('\n')}\n`);
}

export function registerStats(program: Command, io: CliIO, deps: StatsDeps = { now: Date.now }): void {
  program
    .command('stats')
    .description(
      'Show usage statistics of a running proxy (every replica): requests by route, IP, status, rule or account.',
    )
    .option(
      '--from <time>',
      'start: ISO-8601, epoch ms, or a duration ago such as 15m, 2h, 7d (default: 1h ago)',
    )
    .option('--to <time>', 'end: same forms as --from (default: now)')
    .addOption(
      new Option('--group-by <dimension>', 'group rows by route, ip, status, rule or account')
        .choices(GROUP_BYS)
        .default('route'),
    )
    .option('--limit <n>', `number of rows, 1 to ${MAX_LIMIT}`, '20')
    .option('--json', "print the admin API's JSON answer instead of a table")
    .option(
      '--admin-url <url>',
      `admin API of the proxy (env MELI_PROXY_ADMIN_URL, default ${DEFAULT_ADMIN_URL})`,
    )
    .addHelpText(
      'after',
      '\nThe admin token is read from MELI_PROXY_ADMIN_TOKEN. Statistics are kept per minute; the current\n' +
        'minute is included. Examples:\n' +
        '  meli-proxy stats --from 15m\n' +
        '  meli-proxy stats --group-by ip --limit 10\n' +
        '  meli-proxy stats --group-by rule --from 2025-01-01T00:00:00Z --to 2025-01-02T00:00:00Z --json',
    )
    .action(async (flags: StatsFlags) => runStats(flags, io, deps));
}
