/**
 * Response headers for rate limits, as pure string builders.
 *
 * draft-ietf-httpapi-ratelimit-headers-11: both fields are Structured Field Lists (RFC 8941) whose
 * Items are Strings naming a policy. `RateLimit-Policy` items carry q (quota, required), w (window
 * seconds), optional qu and pk; `RateLimit` items carry r (remaining, required), t (seconds of the
 * effective window), optional pk. pk is a Byte Sequence (`:base64:`); we only emit it when asked,
 * since partition values (addresses, token hashes) are the client's own but still identifying.
 *
 * Legacy `X-RateLimit-*` follow @fastify/rate-limit: Reset is seconds from now, not an epoch.
 */

/** The header text of one rule, computed once when rules are compiled (never per request). */
export interface RuleHeaderText {
  /** This rule's RateLimit-Policy item, e.g. `"ip-152";q=1000;w=60`. */
  readonly policy: string;
  /** The id as a Structured Field String (`"ip-152"`), for the RateLimit item of every response. */
  readonly quotedId: string;
}

/** What the headers of one response are built from: a limiter decision has this shape. */
export interface HeaderDecision {
  readonly allowed: boolean;
  /** The enforced rule to report, undefined when none applied. */
  readonly rule: RuleHeaderText | undefined;
  readonly limit: number;
  readonly remaining: number;
  readonly resetSeconds: number;
  readonly retryAfterSeconds: number;
}

export function ruleHeaderText(id: string, quota: number, windowSeconds: number): RuleHeaderText {
  return { policy: formatPolicyItem(id, quota, windowSeconds), quotedId: sfString(id) };
}

/** One RateLimit-Policy item, e.g. `"ip-152";q=1000;w=60`. */
export function formatPolicyItem(
  id: string,
  quota: number,
  windowSeconds: number,
  partitionKey?: string,
): string {
  let item = `${sfString(id)};q=${sfInteger(quota)};w=${Math.max(1, sfInteger(windowSeconds))}`;
  if (partitionKey !== undefined) item += `;pk=${sfBytes(partitionKey)}`;
  return item;
}

/** One RateLimit item, e.g. `"ip-152";r=0;t=42`. */
export function formatRateLimitItem(
  id: string,
  remaining: number,
  resetSeconds: number,
  partitionKey?: string,
): string {
  let item = rateLimitItem(sfString(id), remaining, resetSeconds);
  if (partitionKey !== undefined) item += `;pk=${sfBytes(partitionKey)}`;
  return item;
}

/** A RateLimit item from an id already quoted as an sf-string (rules quote theirs once). */
function rateLimitItem(quotedId: string, remaining: number, resetSeconds: number): string {
  return `${quotedId};r=${sfInteger(remaining)};t=${sfInteger(resetSeconds)}`;
}

/** A whole List field value from items, e.g. for advertising every rule in RateLimit-Policy. */
export function formatList(items: readonly string[]): string {
  return items.join(', ');
}

export interface HeaderOptions {
  /** Also emit X-RateLimit-Limit/-Remaining/-Reset (default true). */
  readonly legacy?: boolean;
}

/**
 * The headers for one decision as a flat list `[name, value, name, value, …]` (the raw form
 * `res.writeHead` accepts): the policy and state of its most constrained enforced rule, and
 * Retry-After when rejected. Empty when no enforced rule applied. Names are lower-case (HTTP/2).
 */
export function rateLimitHeaderList(decision: HeaderDecision, options: HeaderOptions = {}): string[] {
  const rule = decision.rule;
  if (rule === undefined) return [];
  const list = [
    'ratelimit-policy',
    rule.policy,
    'ratelimit',
    rateLimitItem(rule.quotedId, decision.remaining, decision.resetSeconds),
  ];
  if (options.legacy !== false) {
    list.push(
      'x-ratelimit-limit',
      String(decision.limit),
      'x-ratelimit-remaining',
      String(decision.remaining),
      'x-ratelimit-reset',
      String(decision.resetSeconds),
    );
  }
  if (!decision.allowed) list.push('retry-after', String(decision.retryAfterSeconds));
  return list;
}

/** The same headers as name/value pairs. */
export function rateLimitHeaders(
  decision: HeaderDecision,
  options: HeaderOptions = {},
): Array<[string, string]> {
  const list = rateLimitHeaderList(decision, options);
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < list.length; i += 2) pairs.push([list[i] as string, list[i + 1] as string]);
  return pairs;
}

/** RFC 8941 sf-string: printable ASCII, with `"` and `\` escaped; anything else becomes `?`. */
export function sfString(value: string): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += `\\${value[i]}`;
    else if (c < 0x20 || c > 0x7e) out += '?';
    else out += value[i];
  }
  return `${out}"`;
}

/** RFC 8941 sf-integer restricted to what these fields allow: non-negative, at most 15 digits. */
function sfInteger(value: number): number {
  if (!Number.isFinite(value) || value <= 0) return 0;
  return Math.min(Math.floor(value), 999_999_999_999_999);
}

function sfBytes(value: string): string {
  return `:${Buffer.from(value, 'utf8').toString('base64')}:`;
}
