/**
 * The rule model and its parser. A rule says which requests it covers (`match`), how its counter is
 * partitioned (`by`), how many requests a window allows (`limit` + `burst`) and whether it rejects
 * (`enforce`) or only reports (`shadow`). Parsing happens once, at load time; every error names the
 * rule, the field, the value and the form expected, and never echoes a bearer token.
 *
 * zod checks the shape (types, unknown keys); the field parsers below check the meaning (limits,
 * CIDRs, patterns), so that each message can say exactly what to write instead.
 */
import { z } from 'zod';
import { RuleError } from './errors.js';
import { IP_EXPECTED, parseIpRange } from './ip.js';
import { compilePathPattern, PATH_EXPECTED } from './path.js';
import { hashToken, TOKEN_HASH_PATTERN } from './token.js';
import { formatLimit, LIMIT_EXPECTED, type Limit, parseLimit } from './window.js';

export type PartitionKey = 'ip' | 'path' | 'method' | 'token' | `header:${string}`;
export type RuleMode = 'enforce' | 'shadow';
/**
 * How replicas sharing a store count a rule: `exact` decides every request through one atomic store
 * operation, `approximate` in memory within a bounded over-admission; absent, the proxy picks exact
 * when the limit is small next to the replica count (--exact-per-replica).
 */
export type RuleCounting = 'exact' | 'approximate';

export interface RuleMatch {
  /** Canonical addresses or CIDR ranges; any of them. IPv4-mapped IPv6 is stored as IPv4. */
  readonly ip?: readonly string[];
  /** Normalised path patterns; any of them. */
  readonly path?: readonly string[];
  /** Upper-case method names; any of them. */
  readonly method?: readonly string[];
  /** `name` (present) or `name=value` (exact value), name lower-case; any of them. */
  readonly header?: readonly string[];
  /** SHA-256 hex of bearer tokens; any of them. The tokens themselves are never kept. */
  readonly tokenHash?: readonly string[];
}

/** A validated rule. Every field present in `match` must match (AND); values within a field are OR. */
export interface Rule {
  readonly id: string;
  readonly match: RuleMatch;
  /** Counter partition; empty means one counter for everything the rule matches. */
  readonly by: readonly PartitionKey[];
  readonly limit: Limit;
  /**
   * Extra requests tolerated on top of `limit` before rejecting. Headers keep advertising `limit`
   * (q=limit, remaining counted against limit), so clients pace themselves to `limit` while short
   * spikes up to `limit + burst` in a sliding window are still served.
   */
  readonly burst: number;
  readonly mode: RuleMode;
  /** Only when given; see RuleCounting. */
  readonly counting?: RuleCounting;
}

export const MAX_BURST = 1_000_000_000;

const EXPECTED = {
  rule: 'an object with at least id and limit (e.g. { id: ip-152, match: { ip: 152.152.152.152 }, limit: 1000/m })',
  fields: 'only the fields id, match, by, limit, burst, mode and counting',
  id: 'a slug of 1 to 64 characters: lower-case letters, digits, ".", "_" or "-", starting with a letter or digit (e.g. ip-152)',
  limit: LIMIT_EXPECTED,
  burst: `a whole number of extra requests from 0 to ${MAX_BURST} (e.g. 20)`,
  mode: '"enforce" (the default) or "shadow"',
  counting: '"exact" or "approximate" (leave it out to let the proxy choose by limit and replica count)',
  by: 'a list of ip, path, method, token or header:<name>, each at most once (e.g. [ip])',
  match: 'an object with any of ip, path, method, header, token and tokenHash',
  matchFields: 'only the fields ip, path, method, header, token and tokenHash',
  ip: IP_EXPECTED,
  path: PATH_EXPECTED,
  method: 'an HTTP method name such as GET or POST',
  header: '"name" or "name=value" with a valid header name (e.g. x-client-id or x-client-id=abc)',
  token: 'a non-empty bearer token (kept only as its SHA-256 hash)',
  tokenHash: 'a SHA-256 digest as 64 hexadecimal characters',
  list: 'a value or a non-empty list of values',
} as const;

const oneOrMany = z.union([z.string(), z.array(z.string()).min(1)]);

const RuleShape = z.strictObject({
  id: z.string(),
  match: z
    .strictObject({
      ip: oneOrMany.optional(),
      path: oneOrMany.optional(),
      method: oneOrMany.optional(),
      header: oneOrMany.optional(),
      token: oneOrMany.optional(),
      tokenHash: oneOrMany.optional(),
    })
    .optional(),
  by: z.union([z.string(), z.array(z.string())]).optional(),
  limit: z.string(),
  burst: z.number().int().min(0).max(MAX_BURST).optional(),
  mode: z.enum(['enforce', 'shadow']).optional(),
  counting: z.enum(['exact', 'approximate']).optional(),
});

type RuleInput = z.infer<typeof RuleShape>;

const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const HTTP_TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** Validates one rule; `where` (e.g. `config.yaml limits[2]`) prefixes error messages. */
export function parseRule(input: unknown, where?: string): Rule {
  const declaredId =
    isRecord(input) && typeof input.id === 'string' && ID_PATTERN.test(input.id) ? input.id : undefined;
  const fail = (field: string, value: unknown, expected: string): never => {
    throw new RuleError(declaredId, field, value, expected, where);
  };

  const shaped = RuleShape.safeParse(input);
  if (!shaped.success) {
    const issue = shaped.error.issues[0];
    if (issue) reportShapeIssue(input, issue, fail);
    fail('rule', redactNested(input), EXPECTED.rule);
  }
  const rule = shaped.data as RuleInput;

  if (!ID_PATTERN.test(rule.id)) fail('id', rule.id, EXPECTED.id);
  const limit = parseLimit(rule.limit) ?? fail('limit', rule.limit, EXPECTED.limit);

  const match: { -readonly [K in keyof RuleMatch]: string[] } = {};
  const m = rule.match ?? {};
  if (m.ip !== undefined) {
    match.ip = eachValue('match.ip', m.ip, (text, field) => {
      const range = parseIpRange(text);
      return typeof range === 'string' ? fail(field, text, `${EXPECTED.ip}; here ${range}`) : range.text;
    });
  }
  if (m.path !== undefined) {
    match.path = eachValue('match.path', m.path, (text, field) => {
      const pattern = compilePathPattern(text);
      return typeof pattern === 'string'
        ? fail(field, text, `${EXPECTED.path}; here ${pattern}`)
        : pattern.source;
    });
  }
  if (m.method !== undefined) {
    match.method = eachValue('match.method', m.method, (text, field) =>
      HTTP_TOKEN.test(text.trim()) ? text.trim().toUpperCase() : fail(field, text, EXPECTED.method),
    );
  }
  if (m.header !== undefined) {
    match.header = eachValue('match.header', m.header, (text, field) => {
      const eq = text.indexOf('=');
      const name = (eq < 0 ? text : text.slice(0, eq)).trim().toLowerCase();
      if (!HTTP_TOKEN.test(name)) fail(field, text, EXPECTED.header);
      return eq < 0 ? name : `${name}=${text.slice(eq + 1).trim()}`;
    });
  }
  if (m.token !== undefined || m.tokenHash !== undefined) {
    const fromTokens =
      m.token === undefined
        ? []
        : eachValue('match.token', m.token, (text, field) =>
            text.trim() === '' ? fail(field, '<redacted>', EXPECTED.token) : hashToken(text.trim()),
          );
    const given =
      m.tokenHash === undefined
        ? []
        : eachValue('match.tokenHash', m.tokenHash, (text, field) =>
            TOKEN_HASH_PATTERN.test(text.trim().toLowerCase())
              ? text.trim().toLowerCase()
              : fail(field, text, EXPECTED.tokenHash),
          );
    match.tokenHash = [...new Set([...fromTokens, ...given])];
  }

  const by = parseBy(rule.by, fail);
  return {
    id: rule.id,
    match,
    by,
    limit,
    burst: rule.burst ?? 0,
    mode: rule.mode ?? 'enforce',
    ...(rule.counting === undefined ? {} : { counting: rule.counting }),
  };
}

/**
 * Validates a list of rules from one source (a config file section, a stored document). `where`
 * names the list (e.g. `config.yaml limits`); each rule is reported as `where[i]`.
 */
export function parseRules(input: unknown, where: string): Rule[] {
  if (!Array.isArray(input)) {
    throw new RuleError(undefined, 'rules', input, 'a list of rules', where);
  }
  const seen = new Map<string, number>();
  return input.map((item, index) => {
    const rule = parseRule(item, `${where}[${index}]`);
    const first = seen.get(rule.id);
    if (first !== undefined) {
      throw new RuleError(
        rule.id,
        'id',
        rule.id,
        `an id used by no other rule (${where}[${first}] already uses it)`,
        `${where}[${index}]`,
      );
    }
    seen.set(rule.id, index);
    return rule;
  });
}

/** The input form of a rule (what parseRule accepts), for config files and the document store. */
export function serializeRule(rule: Rule): Record<string, unknown> {
  const out: Record<string, unknown> = { id: rule.id };
  if (Object.keys(rule.match).length > 0) out.match = rule.match;
  if (rule.by.length > 0) out.by = rule.by;
  out.limit = formatLimit(rule.limit);
  if (rule.burst > 0) out.burst = rule.burst;
  if (rule.mode !== 'enforce') out.mode = rule.mode;
  if (rule.counting !== undefined) out.counting = rule.counting;
  return out;
}

function parseBy(
  input: string | string[] | undefined,
  fail: (field: string, value: unknown, expected: string) => never,
): PartitionKey[] {
  if (input === undefined) return [];
  const list = typeof input === 'string' ? [input] : input;
  const keys: PartitionKey[] = [];
  list.forEach((raw, index) => {
    const field = typeof input === 'string' ? 'by' : `by[${index}]`;
    const text = raw.trim();
    let key: PartitionKey | undefined;
    const lower = text.toLowerCase();
    if (lower === 'ip' || lower === 'path' || lower === 'method' || lower === 'token') key = lower;
    else if (lower.startsWith('header:') && HTTP_TOKEN.test(lower.slice(7).trim())) {
      key = `header:${lower.slice(7).trim()}`;
    }
    if (key === undefined || keys.includes(key)) fail(field, raw, EXPECTED.by);
    keys.push(key as PartitionKey);
  });
  return keys;
}

function eachValue(
  field: string,
  input: string | string[],
  parse: (text: string, field: string) => string,
): string[] {
  const list = typeof input === 'string' ? [input] : input;
  const values = list.map((text, index) =>
    parse(text, typeof input === 'string' ? field : `${field}[${index}]`),
  );
  return [...new Set(values)];
}

function reportShapeIssue(
  input: unknown,
  issue: z.core.$ZodIssue,
  fail: (field: string, value: unknown, expected: string) => never,
): void {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const container = path.length === 0 ? '' : `${fieldName(path)}.`;
    const value = valueAt(input, [...path, key]);
    const keyPath = [...path, key];
    fail(
      `${container}${key}`,
      redact(keyPath, value),
      path.length === 0 ? EXPECTED.fields : EXPECTED.matchFields,
    );
  }
  if (path.length === 0) fail('rule', redactNested(input), EXPECTED.rule);
  const name = fieldName(path);
  const leaf = String(path.find((p) => typeof p === 'string' && p !== 'match') ?? path[0]);
  const expected = EXPECTED[leaf as keyof typeof EXPECTED] ?? EXPECTED.rule;
  // A wrong type inside a list (e.g. `ip: [1]`) is still best explained by the field's form.
  fail(name, redact(path, valueAt(input, path)), leaf === 'match' ? EXPECTED.match : expected);
}

function fieldName(path: readonly (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

function valueAt(input: unknown, path: readonly (string | number)[]): unknown {
  let value: unknown = input;
  for (const p of path) {
    if (!isRecord(value) && !Array.isArray(value)) return undefined;
    value = (value as Record<string | number, unknown>)[p];
  }
  return value;
}

/** Anything under a field whose name holds "token" (tokens, accessToken…) may be a secret. */
function redact(path: readonly (string | number)[], value: unknown): unknown {
  if (value === undefined) return value;
  return path.some((p) => typeof p === 'string' && isSecretKey(p)) ? '<redacted>' : redactNested(value);
}

function isSecretKey(key: string): boolean {
  return /token/i.test(key) && key !== 'tokenHash';
}

/** A shown object or list keeps its shape, with the values of token-like fields hidden. */
function redactNested(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactNested);
  if (!isRecord(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [key, isSecretKey(key) ? '<redacted>' : redactNested(inner)]),
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
