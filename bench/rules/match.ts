/**
 * Micro-benchmark of rule matching with large rules: the cost of matching one request against every
 * rule, as the sizes of an address rule and of a path rule grow, for the set matchers the proxy
 * uses (sorted intervals, path trie) and for the one-by-one scan they replaced (run here as the
 * baseline, in the same process).
 *
 *   npx tsx bench/rules/match.ts                 # sizes 10, 1000, 10000, 45000 / 40000
 *   npx tsx bench/rules/match.ts --rules 1000    # plus that many small rules (default 1000)
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { formatIpv4, type IpRange, parseIpInto, parseIpRange } from '../../src/limits/ip.js';
import { compileRules, type LimitRequest, RequestScratch, ruleMatches } from '../../src/limits/matcher.js';
import { compilePathPattern, matchPath, type PathPattern } from '../../src/limits/path.js';
import { parseRule, type Rule } from '../../src/limits/rule.js';

const { values } = parseArgs({
  options: { rules: { type: 'string', default: '1000' }, requests: { type: 'string', default: '20000' } },
});
const SMALL_RULES = Number(values.rules);
const REQUESTS = Number(values.requests);

let seed = 42;
function next(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
}

function cidrs(count: number): string[] {
  const seen = new Set<string>();
  while (seen.size < count) seen.add(`${formatIpv4((Math.floor(next() * 2 ** 24) << 8) >>> 0)}/24`);
  return [...seen];
}

function paths(count: number): string[] {
  return Array.from({ length: count }, (_, i) =>
    i % 2 === 0 ? `/items/MLA${i}/*` : `/sites/S${i}/:id/search`,
  );
}

function requests(count: number): LimitRequest[] {
  return Array.from({ length: count }, (_, i) => ({
    ip: formatIpv4(Math.floor(next() * 2 ** 32)),
    method: 'GET',
    path: i % 2 === 0 ? `/items/MLA${Math.floor(next() * 100_000)}` : `/categories/C${i}`,
    header: () => undefined,
    tokenHash: () => undefined,
  }));
}

function ruleSet(ipCount: number, pathCount: number): Rule[] {
  const rules: Rule[] = [];
  for (let i = 0; i < SMALL_RULES; i++) {
    rules.push(
      parseRule(
        i % 2 === 0
          ? { id: `small-${i}`, match: { ip: formatIpv4(Math.floor(next() * 2 ** 32)) }, limit: '100/m' }
          : { id: `small-${i}`, match: { path: `/small/${i}/*` }, limit: '100/m' },
      ),
    );
  }
  rules.push(parseRule({ id: 'big-ip', match: { ip: cidrs(ipCount) }, limit: '1000/m' }));
  rules.push(parseRule({ id: 'big-path', match: { path: paths(pathCount) }, limit: '1000/m' }));
  return rules;
}

/**
 * Microseconds per request to test every rule: the median of 5 samples of about 100 ms each (after
 * one for warm-up), cycling through the requests, so the slow side does not take minutes.
 */
function measure(match: (request: LimitRequest) => number, list: readonly LimitRequest[]): number {
  const samples: number[] = [];
  let sink = 0;
  let at = 0;
  for (let sample = 0; sample < 6; sample++) {
    const start = performance.now();
    let done = 0;
    let elapsed = 0;
    while (elapsed < 100) {
      for (let i = 0; i < 16; i++, done++) {
        sink += match(list[at] as LimitRequest);
        at = (at + 1) % list.length;
      }
      elapsed = performance.now() - start;
    }
    if (sample > 0) samples.push((elapsed * 1000) / done);
  }
  if (sink < 0) console.log(sink);
  samples.sort((x, y) => x - y);
  return samples[2] as number;
}

/** The matcher before: every range masked and compared (IPv4 clients here), every pattern tried. */
function scanMatcher(rules: readonly Rule[]): (request: LimitRequest) => number {
  const compiled = rules.map((rule) => ({
    ranges: rule.match.ip?.map((text) => parseIpRange(text) as IpRange),
    patterns: rule.match.path?.map((text) => compilePathPattern(text) as PathPattern),
  }));
  const words = new Uint32Array(4);
  return (request) => {
    let matched = 0;
    const family = parseIpInto(request.ip, words);
    for (const rule of compiled) {
      if (
        rule.ranges !== undefined &&
        !rule.ranges.some((r) => r.family === family && (words[0]! & r.mask[0]!) >>> 0 === r.words[0])
      )
        continue;
      if (rule.patterns !== undefined && !rule.patterns.some((p) => matchPath(p, request.path))) continue;
      matched++;
    }
    return matched;
  };
}

function setMatcher(rules: readonly Rule[]): (request: LimitRequest) => number {
  const compiled = compileRules(rules);
  const scratch = new RequestScratch();
  return (request) => {
    scratch.reset(request);
    let matched = 0;
    for (const rule of compiled) if (ruleMatches(rule, scratch)) matched++;
    return matched;
  };
}

const list = requests(REQUESTS);
const rows: string[] = [];
for (const [ipCount, pathCount] of [
  [10, 10],
  [1000, 1000],
  [10_000, 10_000],
  [45_000, 40_000],
]) {
  const rules = ruleSet(ipCount as number, pathCount as number);
  const sets = measure(setMatcher(rules), list);
  const scan = measure(scanMatcher(rules), list);
  rows.push(
    `| ${SMALL_RULES} + 2 | ${ipCount} | ${pathCount} | ${scan.toFixed(2)} | ${sets.toFixed(2)} | ${(scan / sets).toFixed(1)}× |`,
  );
}
// A sanity check that both sides compute the same thing, so the numbers compare like with like.
const check = ruleSet(2000, 2000);
const a = setMatcher(check);
const b = scanMatcher(check);
for (const request of list.slice(0, 500)) {
  if (a(request) !== b(request)) throw new Error(`matchers disagree on ${request.ip} ${request.path}`);
}
console.log(
  `node ${process.version}, ${REQUESTS} requests (random IPv4 clients; half /items/…, half other paths)`,
);
console.log(
  '| rules | CIDRs in big-ip | paths in big-path | µs/request, scan | µs/request, sets | speed-up |',
);
console.log('|---|---|---|---|---|---|');
for (const row of rows) console.log(row);
