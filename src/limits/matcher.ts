/**
 * Rules compiled for the hot path: CIDRs as 32-bit words, path patterns as segment tables, header
 * names split from values, partitions as small codes. A RequestScratch, reused across requests,
 * parses the client address and hashes the token at most once per request and only when a rule
 * needs them.
 */
import { RuleError } from './errors.js';
import { type RuleHeaderText, ruleHeaderText } from './headers.js';
import {
  canonicalIp,
  compileRanges,
  type IpFamily,
  type IpRangeSet,
  parseIpInto,
  parseIpRange,
  rangeSetContains,
} from './ip.js';
import { compilePathPattern } from './path.js';
import { PathSet } from './path-set.js';
import type { Rule, RuleMode } from './rule.js';
import { windowIndex } from './window.js';

/** What the limiter needs to know about a request. Designed to be backed by one reusable object. */
export interface LimitRequest {
  /** Client address as the server determined it (after trusted-proxy handling). */
  readonly ip: string;
  /** Method as Node reports it (upper-case). */
  readonly method: string;
  /** Path normalised with normalizePath (no query). */
  readonly path: string;
  /** A request header by lower-case name (several values joined with ", "). */
  header(name: string): string | undefined;
  /** SHA-256 hex of the bearer token (see bearerTokenHash), asked for only when a rule needs it. */
  tokenHash(): string | undefined;
}

/** The public face of a rule in decisions and headers. */
export interface RuleInfo extends RuleHeaderText {
  readonly id: string;
  readonly limit: number;
  readonly windowSeconds: number;
  readonly burst: number;
  readonly mode: RuleMode;
}

const BY_IP = 0;
const BY_PATH = 1;
const BY_METHOD = 2;
const BY_TOKEN = 3;
const BY_HEADER = 4;

export interface CompiledRule {
  readonly index: number;
  readonly rule: Rule;
  readonly info: RuleInfo;
  readonly shadow: boolean;
  readonly limit: number;
  /** limit + burst: the count at which requests are refused. */
  readonly cap: number;
  readonly windowMs: number;
  /** Index of the window size, for the per-size idle lists of the key table. */
  readonly windowSlot: number;
  readonly ranges: IpRangeSet | undefined;
  readonly paths: PathSet | undefined;
  readonly methods: readonly string[] | undefined;
  readonly headerNames: readonly string[] | undefined;
  readonly headerValues: readonly (string | undefined)[];
  readonly tokenHashes: readonly string[] | undefined;
  readonly byKinds: Uint8Array;
  readonly byHeaders: readonly string[];
}

export function compileRules(rules: readonly Rule[]): CompiledRule[] {
  const ids = new Set<string>();
  return rules.map((rule, index) => {
    if (ids.has(rule.id)) throw new RuleError(rule.id, 'id', rule.id, 'an id used by no other rule');
    ids.add(rule.id);
    return compileRule(rule, index);
  });
}

function compileRule(rule: Rule, index: number): CompiledRule {
  const m = rule.match;
  const ranges =
    m.ip === undefined
      ? undefined
      : compileRanges(
          m.ip.map((text) => {
            const range = parseIpRange(text);
            if (typeof range === 'string') throw new RuleError(rule.id, 'match.ip', text, range);
            return range;
          }),
        );
  const paths =
    m.path === undefined
      ? undefined
      : new PathSet(
          m.path.map((text) => {
            const pattern = compilePathPattern(text);
            if (typeof pattern === 'string') throw new RuleError(rule.id, 'match.path', text, pattern);
            return pattern;
          }),
        );
  const headerNames = m.header?.map((h) => (h.includes('=') ? h.slice(0, h.indexOf('=')) : h));
  const headerValues =
    m.header?.map((h) => (h.includes('=') ? h.slice(h.indexOf('=') + 1) : undefined)) ?? [];
  const byKinds = new Uint8Array(rule.by.length);
  const byHeaders: string[] = [];
  rule.by.forEach((key, i) => {
    if (key === 'ip') byKinds[i] = BY_IP;
    else if (key === 'path') byKinds[i] = BY_PATH;
    else if (key === 'method') byKinds[i] = BY_METHOD;
    else if (key === 'token') byKinds[i] = BY_TOKEN;
    else byKinds[i] = BY_HEADER;
    byHeaders.push(key.startsWith('header:') ? key.slice(7) : '');
  });
  const windowSeconds = rule.limit.windowMs / 1000;
  return {
    index,
    rule,
    info: {
      id: rule.id,
      limit: rule.limit.count,
      windowSeconds,
      burst: rule.burst,
      mode: rule.mode,
      ...ruleHeaderText(rule.id, rule.limit.count, windowSeconds),
    },
    shadow: rule.mode === 'shadow',
    limit: rule.limit.count,
    cap: rule.limit.count + rule.burst,
    windowMs: rule.limit.windowMs,
    windowSlot: windowIndex(rule.limit.windowMs),
    ranges,
    paths,
    methods: m.method,
    headerNames,
    headerValues,
    tokenHashes: m.tokenHash,
    byKinds,
    byHeaders,
  };
}

/** Per-request memo of the derived values rules share. One instance serves all requests in turn. */
export class RequestScratch {
  request: LimitRequest | undefined;
  readonly words = new Uint32Array(4);
  private family: -1 | 0 | IpFamily = -1;
  private ipKey: string | undefined;
  private token: string | undefined;
  private tokenDone = false;

  /** Starts a request; `undefined` lets go of the last one so it is not kept alive. */
  reset(request: LimitRequest | undefined): void {
    this.request = request;
    this.family = -1;
    this.ipKey = undefined;
    this.token = undefined;
    this.tokenDone = false;
  }

  ipFamily(): 0 | IpFamily {
    if (this.family === -1) this.family = parseIpInto(this.request!.ip, this.words);
    return this.family;
  }

  ipKeyText(): string {
    if (this.ipKey === undefined) this.ipKey = canonicalIp(this.request!.ip, this.ipFamily(), this.words);
    return this.ipKey;
  }

  tokenHash(): string | undefined {
    if (!this.tokenDone) {
      this.token = this.request!.tokenHash();
      this.tokenDone = true;
    }
    return this.token;
  }
}

export function ruleMatches(rule: CompiledRule, scratch: RequestScratch): boolean {
  const request = scratch.request!;
  if (rule.methods !== undefined && !rule.methods.includes(request.method)) return false;
  if (rule.ranges !== undefined && !rangeSetContainsScratch(rule.ranges, scratch)) return false;
  if (rule.paths !== undefined && !rule.paths.matches(request.path)) return false;
  if (rule.headerNames !== undefined && !anyHeader(rule, request)) return false;
  if (rule.tokenHashes !== undefined) {
    const hash = scratch.tokenHash();
    if (hash === undefined || !rule.tokenHashes.includes(hash)) return false;
  }
  return true;
}

/**
 * The partition of a request within a rule: '' for an unpartitioned rule; for one partition the
 * value itself (usually the request's own string, so looking it up allocates nothing); for several,
 * the values joined by `|`, a `|` inside a value written as `%7C` (that may merge a literal `%7C`
 * with a `|`, which gives a client nothing it could not get by sending the other spelling).
 */
export function partitionValue(rule: CompiledRule, scratch: RequestScratch): string {
  const kinds = rule.byKinds;
  if (kinds.length === 0) return '';
  if (kinds.length === 1) return partOf(rule, scratch, 0);
  let key = '';
  for (let i = 0; i < kinds.length; i++) {
    let value = partOf(rule, scratch, i);
    if (value.indexOf('|') >= 0) value = value.replaceAll('|', '%7C');
    key = i === 0 ? value : `${key}|${value}`;
  }
  return key;
}

/** The counter key every replica agrees on: the rule id, then `|` and the partition if any. */
export function counterKey(rule: CompiledRule, partition: string): string {
  return rule.byKinds.length === 0 ? rule.info.id : `${rule.info.id}|${partition}`;
}

function partOf(rule: CompiledRule, scratch: RequestScratch, i: number): string {
  const request = scratch.request!;
  switch (rule.byKinds[i]) {
    case BY_IP:
      return scratch.ipKeyText();
    case BY_PATH:
      return request.path;
    case BY_METHOD:
      return request.method;
    case BY_TOKEN:
      return scratch.tokenHash() ?? '';
    default:
      return request.header(rule.byHeaders[i] as string) ?? '';
  }
}

function rangeSetContainsScratch(ranges: IpRangeSet, scratch: RequestScratch): boolean {
  const family = scratch.ipFamily();
  return family !== 0 && rangeSetContains(ranges, family, scratch.words);
}

function anyHeader(rule: CompiledRule, request: LimitRequest): boolean {
  const names = rule.headerNames!;
  for (let i = 0; i < names.length; i++) {
    const value = request.header(names[i] as string);
    if (value === undefined) continue;
    const wanted = rule.headerValues[i];
    if (wanted === undefined || wanted === value) return true;
  }
  return false;
}
