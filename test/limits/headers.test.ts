import { describe, expect, it } from 'vitest';
import {
  formatList,
  formatPolicyItem,
  formatRateLimitItem,
  rateLimitHeaderList,
  rateLimitHeaders,
  sfString,
} from '../../src/limits/headers.js';
import { Limiter } from '../../src/limits/limiter.js';
import { parseRules } from '../../src/limits/rule.js';
import { request, T0 } from './helpers.js';

describe('draft-ietf-httpapi-ratelimit-headers-11 fields', () => {
  it('formats RateLimit-Policy items', () => {
    expect(formatPolicyItem('ip-152', 1000, 60)).toBe('"ip-152";q=1000;w=60');
    expect(formatPolicyItem('daily', 5, 86_400)).toBe('"daily";q=5;w=86400');
    expect(formatPolicyItem('peruser', 100, 60, 'client-a')).toBe('"peruser";q=100;w=60;pk=:Y2xpZW50LWE=:');
    expect(formatList([formatPolicyItem('a', 1, 1), formatPolicyItem('b', 2, 10)])).toBe(
      '"a";q=1;w=1, "b";q=2;w=10',
    );
  });

  it('formats RateLimit items', () => {
    expect(formatRateLimitItem('ip-152', 0, 42)).toBe('"ip-152";r=0;t=42');
    expect(formatRateLimitItem('ip-152', 999, 0)).toBe('"ip-152";r=999;t=0');
    // Negative or fractional values cannot be Integers here.
    expect(formatRateLimitItem('x', -3, 1.7)).toBe('"x";r=0;t=1');
    expect(formatRateLimitItem('x', 1, 2, 'k')).toBe('"x";r=1;t=2;pk=:aw==:');
  });

  it('escapes sf-strings', () => {
    expect(sfString('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(sfString('tab\there é')).toBe('"tab?here ?"');
  });

  it('builds the headers of an admitted and a rejected decision', () => {
    const limiter = new Limiter(parseRules([{ id: 'ip-152', limit: '2/m' }], 'test'));
    const first = limiter.decide(request(), T0 + 18_000);
    expect(rateLimitHeaders(first)).toEqual([
      ['ratelimit-policy', '"ip-152";q=2;w=60'],
      ['ratelimit', '"ip-152";r=1;t=42'],
      ['x-ratelimit-limit', '2'],
      ['x-ratelimit-remaining', '1'],
      ['x-ratelimit-reset', '42'],
    ]);
    limiter.decide(request(), T0 + 18_000);
    const rejected = limiter.decide(request(), T0 + 18_000);
    expect(rateLimitHeaders(rejected, { legacy: false })).toEqual([
      ['ratelimit-policy', '"ip-152";q=2;w=60'],
      ['ratelimit', '"ip-152";r=0;t=42'],
      ['retry-after', '42'],
    ]);
    expect(rateLimitHeaderList(rejected, { legacy: false })).toEqual([
      'ratelimit-policy',
      '"ip-152";q=2;w=60',
      'ratelimit',
      '"ip-152";r=0;t=42',
      'retry-after',
      '42',
    ]);
  });

  it('adds nothing when no enforced rule applied', () => {
    const limiter = new Limiter([]);
    expect(rateLimitHeaders(limiter.decide(request()))).toEqual([]);
  });
});
