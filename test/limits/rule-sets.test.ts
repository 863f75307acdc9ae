/**
 * The set matchers of large rules (sorted address intervals, the path trie) against the plain
 * one-by-one matchers they replace, on random inputs from a fixed seed: any disagreement is a bug in
 * the fast side, and the seed and case are in the failure message.
 */
import { describe, expect, it } from 'vitest';
import {
  compileRanges,
  formatIpv4,
  type IpRange,
  parseIpInto,
  parseIpRange,
  rangeSetContains,
} from '../../src/limits/ip.js';
import { compilePathPattern, matchPath, normalizePath, type PathPattern } from '../../src/limits/path.js';
import { PathSet } from '../../src/limits/path-set.js';

/** mulberry32: small, fast and reproducible. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)] as T;
}

/** The simple matcher: every range, mask and compare. */
function simpleContains(ranges: readonly IpRange[], address: string): boolean {
  const words = new Uint32Array(4);
  const family = parseIpInto(address, words);
  return ranges.some(
    (range) =>
      range.family === family &&
      [0, 1, 2, 3]
        .slice(0, family === 4 ? 1 : 4)
        .every((i) => ((words[i] as number) & (range.mask[i] as number)) >>> 0 === range.words[i]),
  );
}

function rangeOf(text: string): IpRange {
  const range = parseIpRange(text);
  if (typeof range === 'string') throw new Error(`${text}: ${range}`);
  return range;
}

function networkText(next: () => number, v6: boolean): string {
  if (!v6) {
    // A narrow part of the space, so that ranges overlap and nest.
    const prefix = 8 + Math.floor(next() * 25);
    const address = (0x0a000000 | Math.floor(next() * 0x00ffffff)) >>> 0;
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    return `${formatIpv4((address & mask) >>> 0)}/${prefix}`;
  }
  const prefix = 16 + Math.floor(next() * 113);
  const groups = ['2001', 'db8', ...Array.from({ length: 6 }, () => Math.floor(next() * 4).toString(16))];
  const words = new Uint32Array(4);
  parseIpInto(groups.join(':'), words);
  for (let i = 0; i < 4; i++) {
    const bits = Math.min(32, Math.max(0, prefix - i * 32));
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    words[i] = ((words[i] as number) & mask) >>> 0;
  }
  const parts: string[] = [];
  for (let i = 0; i < 4; i++) parts.push((words[i]! >>> 16).toString(16), (words[i]! & 0xffff).toString(16));
  return `${parts.join(':')}/${prefix}`;
}

function addressText(next: () => number, v6: boolean): string {
  if (!v6) {
    const address =
      next() < 0.9 ? (0x0a000000 | Math.floor(next() * 0x00ffffff)) >>> 0 : Math.floor(next() * 2 ** 32);
    return next() < 0.2 ? `::ffff:${formatIpv4(address)}` : formatIpv4(address);
  }
  const groups = ['2001', 'db8', ...Array.from({ length: 6 }, () => Math.floor(next() * 4).toString(16))];
  return groups.join(':');
}

describe('address sets agree with the one-by-one matcher', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i', (seed) => {
    const next = random(seed);
    const count = pick(next, [1, 2, 5, 50, 2000]);
    const texts = Array.from({ length: count }, () => networkText(next, next() < 0.4));
    const ranges = texts.map(rangeOf);
    const set = compileRanges(ranges);
    const words = new Uint32Array(4);
    for (let i = 0; i < 3000; i++) {
      const address = addressText(next, next() < 0.4);
      const family = parseIpInto(address, words);
      const fast = rangeSetContains(set, family, words);
      if (fast !== simpleContains(ranges, address)) {
        expect.fail(
          `seed ${seed}: ${address} in [${texts.slice(0, 20).join(', ')}${count > 20 ? ', …' : ''}]: set says ${fast}`,
        );
      }
    }
  });

  it('edges of merged, nested and adjacent ranges', () => {
    const ranges = [
      '10.0.0.0/8',
      '10.1.0.0/16',
      '11.0.0.0/8',
      '0.0.0.0/32',
      '255.255.255.255',
      '::/128',
      'ffff::/16',
    ].map(rangeOf);
    const set = compileRanges(ranges);
    const words = new Uint32Array(4);
    for (const address of [
      '9.255.255.255',
      '10.0.0.0',
      '11.255.255.255',
      '12.0.0.0',
      '0.0.0.0',
      '0.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      'ffff::1',
      'fffe::1',
    ]) {
      expect(rangeSetContains(set, parseIpInto(address, words), words), address).toBe(
        simpleContains(ranges, address),
      );
    }
    expect(rangeSetContains(compileRanges([]), parseIpInto('1.2.3.4', words), words)).toBe(false);
  });
});

const SEGMENTS = ['items', 'MLA1', 'a', 'x.y', '%2F'];

function patternText(next: () => number): string {
  const length = Math.floor(next() * 5);
  const parts = Array.from({ length }, (_, i) => {
    const roll = next();
    if (roll < 0.12) return ':id';
    if (roll < 0.22) return i === length - 1 || next() < 0.5 ? '*' : ':p';
    return pick(next, SEGMENTS);
  });
  return `/${parts.join('/')}`;
}

function pathText(next: () => number): string {
  const length = Math.floor(next() * 6);
  const parts = Array.from({ length }, () => pick(next, SEGMENTS));
  return normalizePath(`/${parts.join('/')}${next() < 0.2 ? '/' : ''}`);
}

describe('path sets agree with the one-by-one matcher', () => {
  it.each(Array.from({ length: 16 }, (_, i) => i + 1))('seed %i', (seed) => {
    const next = random(seed * 7919);
    const count = pick(next, [1, 3, 9, 40, 500]);
    const patterns = Array.from({ length: count }, () => compilePathPattern(patternText(next))).filter(
      (pattern): pattern is PathPattern => typeof pattern !== 'string',
    );
    const set = new PathSet(patterns);
    for (let i = 0; i < 3000; i++) {
      const path = pathText(next);
      const simple = patterns.some((pattern) => matchPath(pattern, path));
      if (set.matches(path) !== simple) {
        expect.fail(
          `seed ${seed}: ${path} against [${patterns.map((p) => p.source).join(', ')}]: set says ${!simple}`,
        );
      }
    }
  });

  it('a trie set (more than a few patterns) keeps the pattern rules', () => {
    const texts = [
      '/',
      '/items/*',
      '/items/:id/pictures',
      '/sites/:site/search',
      '/sites/MLA1/other',
      '/a/*/c',
      '/users/me',
      '/x',
      '/y',
      '/z',
    ];
    const set = new PathSet(texts.map((text) => compilePathPattern(text) as PathPattern));
    const expectations: Array<[string, boolean]> = [
      ['/', true],
      ['/items', false],
      ['/items/', false],
      ['/items/MLA1', true],
      ['/items/MLA1/pictures/2', true],
      // The literal branch fails below, the parameter branch matches.
      ['/sites/MLA1/search', true],
      ['/sites/MLA/search', true],
      ['/sites/MLA/search/', true],
      ['/sites/MLA', false],
      ['/a/b/c', true],
      ['/a/b/d', false],
      ['/users/me', true],
      ['/users/you', false],
    ];
    for (const [path, expected] of expectations) expect(set.matches(path), path).toBe(expected);
  });
});
