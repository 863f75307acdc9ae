/** How `meli-proxy limits` shows rules and test results: fixed-width tables, one line per rule. */
import { formatLimit, parseRule, type Rule } from '../../limits/index.js';
import { type Column, formatCount, formatTable } from '../stats-format.js';
import type { ListedRule, TestAnswer } from './target.js';

/** `ip=152.152.152.152 path=/items/*`; token hashes are shortened (they are not the tokens). */
export function describeMatch(rule: Rule): string {
  const parts: string[] = [];
  const { ip, path, method, header, tokenHash } = rule.match;
  if (ip) parts.push(`ip=${ip.join(',')}`);
  if (path) parts.push(`path=${path.join(',')}`);
  if (method) parts.push(`method=${method.join(',')}`);
  if (header) for (const h of header) parts.push(`header=${h}`);
  if (tokenHash) parts.push(`token=${tokenHash.map((hash) => `sha256:${hash.slice(0, 12)}…`).join(',')}`);
  return parts.length === 0 ? '(every request)' : parts.join(' ');
}

/** One line for confirmations: `ip=152.152.152.152 · 1000/1m · enforce`. */
export function describeRule(rule: Rule): string {
  const pieces = [describeMatch(rule)];
  if (rule.by.length > 0) pieces.push(`per ${rule.by.join('+')}`);
  pieces.push(formatLimit(rule.limit) + (rule.burst > 0 ? ` (+${rule.burst} burst)` : ''));
  pieces.push(rule.mode);
  return pieces.join(' · ');
}

/** The listed entry back as a Rule (for display); undefined if it does not parse. */
function asRule(entry: ListedRule): Rule | undefined {
  const { source: _source, matched: _m, rejected: _r, shadowExceeded: _s, ...input } = entry;
  try {
    return parseRule(input);
  } catch {
    return undefined;
  }
}

/** The `limits list` table. `live` adds the counters a running proxy reports. */
export function formatRuleList(rules: readonly ListedRule[], live: boolean): string[] {
  if (rules.length === 0) {
    return [
      'No rate-limit rules.',
      'Add one with: meli-proxy limits set ip-152 --ip 152.152.152.152 --limit 1000/m',
    ];
  }
  const columns: Column[] = [
    { header: 'ID', align: 'left' },
    { header: 'MATCH', align: 'left' },
    { header: 'BY', align: 'left' },
    { header: 'LIMIT', align: 'left' },
    { header: 'BURST', align: 'right' },
    { header: 'MODE', align: 'left' },
    { header: 'SOURCE', align: 'left' },
  ];
  if (live) {
    columns.push({ header: 'MATCHED', align: 'right' }, { header: 'REJECTED', align: 'right' });
  }
  let shadowSeen = false;
  const rows = rules.map((entry) => {
    const rule = asRule(entry);
    const row = rule
      ? [
          rule.id,
          describeMatch(rule),
          rule.by.length > 0 ? rule.by.join(',') : '-',
          formatLimit(rule.limit),
          String(rule.burst),
          rule.mode,
          entry.source,
        ]
      : [entry.id, '(unreadable)', '-', String(entry.limit), '-', '-', entry.source];
    if (live) {
      const shadow = (rule?.mode ?? entry.mode) === 'shadow';
      shadowSeen ||= shadow;
      row.push(
        formatCount(entry.matched ?? 0),
        shadow ? `${formatCount(entry.shadowExceeded ?? 0)} (shadow)` : formatCount(entry.rejected ?? 0),
      );
    }
    return row;
  });
  const lines = formatTable(columns, rows);
  if (live) {
    lines.push('', 'MATCHED and REJECTED count requests since this proxy process started.');
    if (shadowSeen) {
      lines.push('(shadow): requests over a shadow rule’s limit, let through and only reported.');
    }
  }
  return lines;
}

/** The `limits test` report. */
export function formatTest(
  answer: TestAnswer,
  request: { method: string; path: string; ip: string },
): string[] {
  const what = `${request.method} ${request.path} from ${request.ip}`;
  if (answer.matches.length === 0) return [`${what}: no rule matches; such requests are not rate limited.`];
  const lines = [
    `${what}: ${answer.matches.length === 1 ? '1 rule matches' : `${answer.matches.length} rules match`}`,
    '',
  ];
  const columns: Column[] = [
    { header: 'RULE', align: 'left' },
    { header: 'MODE', align: 'left' },
    { header: 'LIMIT', align: 'left' },
    { header: 'COUNTER', align: 'left' },
    { header: 'USED', align: 'right' },
    { header: 'REMAINING', align: 'right' },
    { header: 'WINDOW RESETS IN', align: 'right' },
  ];
  const rows = answer.matches.map((m) => [
    m.id,
    m.mode,
    `${m.limit}/${windowText(m.windowSeconds)}${m.burst ? ` +${m.burst}` : ''}`,
    shortKey(m.key),
    formatCount(m.used),
    formatCount(m.remaining),
    `${m.resetSeconds} s`,
  ]);
  lines.push(...formatTable(columns, rows));
  const blocking = answer.matches.filter(
    (m) => m.mode === 'enforce' && m.used + 1 > m.limit + (m.burst ?? 0),
  );
  const shadowOver = answer.matches.filter(
    (m) => m.mode === 'shadow' && m.used + 1 > m.limit + (m.burst ?? 0),
  );
  lines.push('');
  if (blocking.length > 0) {
    lines.push(`The next such request would be rejected (429) by ${blocking.map((m) => m.id).join(', ')}.`);
  } else {
    lines.push('The next such request would be let through.');
  }
  if (shadowOver.length > 0) {
    lines.push(`It is over the shadow rule(s) ${shadowOver.map((m) => m.id).join(', ')} (reported only).`);
  }
  return lines;
}

function windowText(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** Counter keys may end in a token hash: shorten those, they are long and mean little to a reader. */
function shortKey(key: string): string {
  return key.replace(/[0-9a-f]{64}/g, (hash) => `sha256:${hash.slice(0, 12)}…`);
}
