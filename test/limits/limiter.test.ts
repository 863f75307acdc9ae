import { describe, expect, it } from 'vitest';
import { RuleError } from '../../src/limits/errors.js';
import { Limiter, type LimiterOptions } from '../../src/limits/limiter.js';
import { parseRules } from '../../src/limits/rule.js';
import { bearerTokenHash, hashToken } from '../../src/limits/token.js';
import { request, T0 } from './helpers.js';

function limiter(rules: unknown[], options: LimiterOptions = {}): Limiter {
  return new Limiter(parseRules(rules, 'test'), { clock: () => T0, ...options });
}

function admitted(l: Limiter, n: number, init: Parameters<typeof request>[0], now = T0): number {
  let count = 0;
  for (let i = 0; i < n; i++) if (l.decide(request(init), now).allowed) count++;
  return count;
}

const CLASSIC = [
  { id: 'ip-152', match: { ip: '152.152.152.152' }, limit: '1000/m' },
  { id: 'categories', match: { path: '/categories/*' }, limit: '10000/m' },
  { id: 'ip-152-items', match: { ip: '152.152.152.152', path: '/items/*' }, limit: '10/m' },
];

describe('Limiter', () => {
  it('is exact in one process: N admitted, the N+1th rejected', () => {
    const l = limiter([{ id: 'ten', limit: '10/m' }]);
    for (let i = 0; i < 10; i++) {
      const d = l.decide(request(), T0 + i);
      expect(d).toMatchObject({ allowed: true, limit: 10, remaining: 9 - i, rejectedBy: undefined });
    }
    const rejected = l.decide(request(), T0 + 10);
    expect(rejected).toMatchObject({ allowed: false, rejectedBy: 'ten', remaining: 0, limit: 10 });
    expect(rejected.rule?.id).toBe('ten');
    // The 10 fill this window; from the next one on they decay.
    expect(rejected.retryAfterSeconds).toBe(60);
    expect(rejected.resetSeconds).toBe(60);
  });

  it('is exact for large limits too', () => {
    const l = limiter([{ id: 'k', limit: '1000/10s' }]);
    expect(admitted(l, 1500, {})).toBe(1000);
  });

  it('applies the three classic rules', () => {
    const l = limiter(CLASSIC);
    const client = '152.152.152.152';
    // ip + /items/* at 10/m.
    expect(admitted(l, 15, { ip: client, path: '/items/MLA1' })).toBe(10);
    const d = l.decide(request({ ip: client, path: '/items/MLA2' }), T0);
    expect(d).toMatchObject({ allowed: false, rejectedBy: 'ip-152-items' });
    // Other clients are not limited by it; other paths for this client still are by ip-152.
    expect(admitted(l, 15, { ip: '1.1.1.1', path: '/items/MLA1' })).toBe(15);
    expect(admitted(l, 2000, { ip: client, path: '/sites/MLA' })).toBe(990);
    expect(l.decide(request({ ip: client, path: '/sites/MLA' }), T0).rejectedBy).toBe('ip-152');
    // /categories/* at 10000/m for everybody together.
    expect(admitted(l, 10_005, { ip: '2.2.2.2', path: '/categories/MLA97994' })).toBe(10_000);
    expect(l.decide(request({ ip: '3.3.3.3', path: '/categories/MLA1' }), T0).rejectedBy).toBe('categories');
  });

  it('matches IPv4-mapped client addresses against IPv4 rules', () => {
    const l = limiter(CLASSIC);
    expect(admitted(l, 12, { ip: '::ffff:152.152.152.152', path: '/items/MLA1' })).toBe(10);
    expect(l.decide(request({ ip: '152.152.152.152', path: '/items/MLA1' }), T0).allowed).toBe(false);
  });

  it('by: [ip] limits each client separately', () => {
    const l = limiter([{ id: 'items-per-ip', match: { path: '/items/*' }, by: ['ip'], limit: '3/m' }]);
    expect(admitted(l, 5, { ip: '1.1.1.1', path: '/items/a' })).toBe(3);
    expect(admitted(l, 5, { ip: '2.2.2.2', path: '/items/a' })).toBe(3);
    expect(admitted(l, 5, { ip: '::ffff:2.2.2.2', path: '/items/b' })).toBe(0);
    expect(admitted(l, 5, { ip: '2001:db8::1', path: '/items/a' })).toBe(3);
    expect(admitted(l, 5, { ip: '2001:DB8:0::1', path: '/items/a' })).toBe(0);
    expect(admitted(l, 5, { ip: '1.1.1.1', path: '/other' })).toBe(5);
  });

  it('partitions by path, method, header and token', () => {
    const l = limiter([
      { id: 'per-path', by: ['path', 'method'], limit: '2/m', match: { path: '/p/*' } },
      { id: 'per-client', by: 'header:x-client-id', limit: '2/m', match: { path: '/c/*' } },
      { id: 'per-token', by: 'token', limit: '2/m', match: { path: '/t/*' } },
    ]);
    expect(admitted(l, 3, { path: '/p/a' })).toBe(2);
    expect(admitted(l, 3, { path: '/p/b' })).toBe(2);
    expect(admitted(l, 3, { path: '/p/a', method: 'POST' })).toBe(2);
    expect(admitted(l, 3, { path: '/c/x', headers: { 'x-client-id': 'a|b' } })).toBe(2);
    expect(admitted(l, 3, { path: '/c/x', headers: { 'x-client-id': 'c' } })).toBe(2);
    expect(admitted(l, 3, { path: '/c/x' })).toBe(2);
    expect(admitted(l, 3, { path: '/t/x', tokenHash: hashToken('one') })).toBe(2);
    expect(admitted(l, 3, { path: '/t/x', tokenHash: hashToken('two') })).toBe(2);
  });

  it('matches method, header and token conditions', () => {
    const l = limiter([
      { id: 'posts', match: { method: 'post' }, limit: '1/m' },
      { id: 'client-a', match: { header: 'x-client-id=a' }, limit: '1/m' },
      { id: 'debug', match: { header: 'x-debug' }, limit: '1/m' },
      { id: 'robot', match: { token: 'robot-token' }, limit: '1/m' },
    ]);
    expect(admitted(l, 3, { method: 'POST' })).toBe(1);
    expect(admitted(l, 3, { method: 'GET' })).toBe(3);
    expect(admitted(l, 3, { headers: { 'x-client-id': 'a' } })).toBe(1);
    expect(admitted(l, 3, { headers: { 'x-client-id': 'b' } })).toBe(3);
    expect(admitted(l, 3, { headers: { 'x-debug': '' } })).toBe(1);
    expect(admitted(l, 3, { tokenHash: hashToken('robot-token') })).toBe(1);
    expect(admitted(l, 3, { tokenHash: hashToken('other') })).toBe(3);
  });

  it('hashes the token at most once per request, and only when a rule needs it', () => {
    const l = limiter([
      { id: 'a', match: { path: '/t/*', token: 'x' }, by: 'token', limit: '5/m' },
      { id: 'b', match: { path: '/t/*' }, by: 'token', limit: '5/m' },
    ]);
    let calls = 0;
    const base = request({ path: '/t/1' });
    const counting = {
      ...base,
      tokenHash: () => {
        calls++;
        return hashToken('x');
      },
    };
    l.decide(counting, T0);
    expect(calls).toBe(1);
    l.decide({ ...counting, path: '/elsewhere' }, T0);
    expect(calls).toBe(1);
  });

  it('does not let a rejected request consume other rules', () => {
    const l = limiter([
      { id: 'narrow', match: { path: '/items/*' }, limit: '5/m' },
      { id: 'wide', limit: '100/m' },
      { id: 'watch', limit: '1000/m', mode: 'shadow' },
    ]);
    expect(admitted(l, 50, { path: '/items/1' })).toBe(5);
    // 45 rejections consumed nothing of "wide": 95 more requests fit.
    expect(admitted(l, 200, { path: '/other' })).toBe(95);
    const stats = Object.fromEntries(l.ruleStats().map((s) => [s.id, s]));
    expect(stats.narrow).toMatchObject({ matched: 50, rejected: 45 });
    expect(stats.wide).toMatchObject({ matched: 250, rejected: 105 });
    expect(stats.watch).toMatchObject({ matched: 250, rejected: 0, shadowExceeded: 0 });
  });

  it('rolls over windows with a sliding estimate', () => {
    const l = limiter([{ id: 'ten', limit: '10/s' }]);
    expect(admitted(l, 12, {}, T0)).toBe(10);
    expect(l.decide(request(), T0 + 999).allowed).toBe(false);
    // Start of the next window: the previous 10 still weigh fully.
    expect(l.decide(request(), T0 + 1000).allowed).toBe(false);
    // Halfway: they weigh 5, so 5 more fit (5 + 5 ≤ 10).
    expect(admitted(l, 10, {}, T0 + 1500)).toBe(5);
    // Next window: previous = 5, at 80% it weighs 1 → 9 fit.
    expect(admitted(l, 20, {}, T0 + 2800)).toBe(9);
    // Two idle windows later everything is forgotten.
    expect(admitted(l, 20, {}, T0 + 5000)).toBe(10);
  });

  it('reports the wait until the sliding estimate leaves room', () => {
    const l = limiter([{ id: 'ten', limit: '10/10s' }]);
    expect(admitted(l, 10, {}, T0)).toBe(10);
    expect(l.decide(request(), T0 + 2000)).toMatchObject({
      allowed: false,
      retryAfterSeconds: 8,
      resetSeconds: 8,
    });
    // At the boundary the previous 10 weigh fully; one millisecond later one of them is gone.
    expect(l.decide(request(), T0 + 10_000)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
    expect(l.decide(request(), T0 + 10_001).allowed).toBe(true);
    expect(l.decide(request(), T0 + 10_002).allowed).toBe(false);
    // 9 of the previous window + 1 of this one.
    expect(l.decide(request(), T0 + 11_000).allowed).toBe(false);
    const ok = l.decide(request(), T0 + 12_000);
    expect(ok).toMatchObject({ allowed: true, retryAfterSeconds: 0, remaining: 0 });
    // A 200 with nothing remaining and the 429 after it agree on when to come back.
    const next = l.decide(request(), T0 + 12_000);
    expect(next.allowed).toBe(false);
    expect(ok.resetSeconds).toBe(next.retryAfterSeconds);
    // With quota left, the reset is the end of the window.
    const roomy = limiter([{ id: 'ten', limit: '10/10s' }]);
    expect(roomy.decide(request(), T0 + 2000)).toMatchObject({ remaining: 9, resetSeconds: 8 });
  });

  it('shadow rules count and report but never reject', () => {
    const l = limiter([
      { id: 'would-block', limit: '2/m', mode: 'shadow' },
      { id: 'real', limit: '100/m' },
    ]);
    const decisions = Array.from({ length: 5 }, () => l.decide(request(), T0));
    expect(decisions.every((d) => d.allowed)).toBe(true);
    expect(decisions.map((d) => d.shadowExceeded)).toEqual([
      [],
      [],
      ['would-block'],
      ['would-block'],
      ['would-block'],
    ]);
    // Headers describe enforced rules only.
    expect(decisions[4]?.rule?.id).toBe('real');
    expect(l.ruleStats()[0]).toMatchObject({
      id: 'would-block',
      mode: 'shadow',
      matched: 5,
      shadowExceeded: 3,
    });
    const onlyShadow = limiter([{ id: 's', limit: '1/m', mode: 'shadow' }]);
    onlyShadow.decide(request());
    expect(onlyShadow.decide(request())).toMatchObject({
      allowed: true,
      rule: undefined,
      shadowExceeded: ['s'],
    });
  });

  it('burst admits extra requests while advertising the limit', () => {
    const l = limiter([{ id: 'b', limit: '10/m', burst: 5 }]);
    const decisions = Array.from({ length: 16 }, () => l.decide(request(), T0));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(15);
    expect(decisions[9]).toMatchObject({ allowed: true, remaining: 0, limit: 10 });
    expect(decisions[14]).toMatchObject({ allowed: true, remaining: 0 });
    expect(decisions[15]).toMatchObject({ allowed: false, rejectedBy: 'b' });
    expect(decisions[0]?.rule?.policy).toBe('"b";q=10;w=60');
  });

  it('reports the most constrained rule that applied', () => {
    const l = limiter([
      { id: 'big', limit: '100/m' },
      { id: 'small', match: { path: '/items/*' }, limit: '5/m' },
    ]);
    expect(l.decide(request({ path: '/items/1' }), T0)).toMatchObject({
      rule: { id: 'small' },
      remaining: 4,
    });
    expect(l.decide(request({ path: '/other' }), T0)).toMatchObject({ rule: { id: 'big' }, remaining: 98 });
    expect(limiter([]).decide(request())).toMatchObject({
      allowed: true,
      rule: undefined,
      shadowExceeded: [],
    });
  });

  it('lets a client at exactly 1/m through every minute', () => {
    const l = limiter([{ id: 'one', limit: '1/m' }]);
    for (let minute = 0; minute < 5; minute++) {
      expect(l.decide(request(), T0 + minute * 60_000 + 50).allowed).toBe(true);
      expect(l.decide(request(), T0 + minute * 60_000 + 30_000).allowed).toBe(false);
    }
  });

  it('reports the longest wait when several rules reject', () => {
    const l = limiter([
      { id: 'second', limit: '1/s' },
      { id: 'minute', limit: '1/m' },
    ]);
    l.decide(request(), T0);
    expect(l.decide(request(), T0)).toMatchObject({
      allowed: false,
      rejectedBy: 'minute',
      retryAfterSeconds: 60,
    });
  });
});

describe('Limiter memory bounds', () => {
  const perIp = [{ id: 'per-ip', by: ['ip'], limit: '5/m' }];

  it('expires idle keys', () => {
    const l = limiter(perIp);
    for (let i = 0; i < 100; i++) l.decide(request({ ip: `10.0.0.${i}` }), T0);
    expect(l.stats().keys).toBe(100);
    // Still the previous window for the estimate: nothing may go.
    expect(l.sweep(T0 + 60_000)).toBe(0);
    expect(l.sweep(T0 + 120_000)).toBe(100);
    expect(l.stats().keys).toBe(0);
  });

  it('never evicts an active key when full; onTableFull decides for new keys', () => {
    const open = limiter(perIp, { maxKeys: 3 });
    for (const ip of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) expect(admitted(open, 5, { ip })).toBe(5);
    // A new client: not tracked, so not limited by this rule.
    expect(admitted(open, 10, { ip: '4.4.4.4' })).toBe(10);
    expect(open.stats()).toMatchObject({ keys: 3, maxKeys: 3, untracked: 10 });
    // The active clients keep their counts.
    expect(admitted(open, 1, { ip: '1.1.1.1' })).toBe(0);
    // Once they are idle, their slots are reused.
    expect(admitted(open, 10, { ip: '4.4.4.4' }, T0 + 120_000)).toBe(5);

    const deny = limiter(perIp, { maxKeys: 3, onTableFull: 'deny' });
    for (const ip of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) admitted(deny, 1, { ip });
    expect(deny.decide(request({ ip: '4.4.4.4' }), T0)).toMatchObject({
      allowed: false,
      rejectedBy: 'per-ip',
      retryAfterSeconds: 1,
    });
  });

  it('stops using the remembered slot of a rule without partitions once its idle key is dropped', () => {
    const l = limiter([
      { id: 'all-a', match: { path: '/a' }, limit: '3/s' },
      { id: 'per-ip', by: ['ip'], limit: '100/s' },
    ]);
    expect(admitted(l, 4, { path: '/a' })).toBe(3);
    // Two seconds later both keys are idle: a sweep drops them, and the rule's slot goes to
    // another client's counter (the table hands out the freed slots first).
    expect(l.sweep(T0 + 2000)).toBe(2);
    l.decide(request({ ip: '10.9.9.9', path: '/b' }), T0 + 2000);
    expect(l.stats().keys).toBe(1);
    // The rule counts afresh in a slot of its own; the client's counter is left alone.
    expect(admitted(l, 4, { ip: '10.0.0.1', path: '/a' }, T0 + 2000)).toBe(3);
    expect(l.stats().keys).toBe(3);
    expect(admitted(l, 99, { ip: '10.9.9.9', path: '/b' }, T0 + 2000)).toBe(99);
    expect(admitted(l, 1, { ip: '10.9.9.9', path: '/b' }, T0 + 2000)).toBe(0);
    // Dropped and not reused: the remembered slot is free, and must not be counted in.
    expect(l.sweep(T0 + 4000)).toBe(3);
    expect(admitted(l, 4, { path: '/a' }, T0 + 4000)).toBe(3);
    expect(l.stats().keys).toBe(2);
    expect(l.sweep(T0 + 6000)).toBe(2);
  });

  it('keeps keys of long windows while short ones expire', () => {
    const l = limiter([
      { id: 'daily', by: ['ip'], limit: '100/d', match: { path: '/d' } },
      { id: 'secondly', by: ['ip'], limit: '100/s', match: { path: '/s' } },
    ]);
    l.decide(request({ ip: '1.1.1.1', path: '/d' }), T0);
    for (let i = 0; i < 10; i++) l.decide(request({ ip: `2.2.2.${i}`, path: '/s' }), T0 + 1);
    expect(l.sweep(T0 + 5000)).toBe(10);
    expect(l.stats().keys).toBe(1);
  });
});

describe('Limiter clock', () => {
  it('keeps counting when the wall clock steps back', () => {
    const l = limiter([{ id: 'five', limit: '5/m' }]);
    expect(admitted(l, 3, {}, T0 + 60_000)).toBe(3);
    expect(admitted(l, 5, {}, T0 + 59_000)).toBe(2);
  });
});

describe('rules given to the Limiter directly', () => {
  it('refuses duplicate ids', () => {
    const [rule] = parseRules([{ id: 'same', limit: '1/m' }], 'test');
    expect(() => new Limiter([rule!, rule!])).toThrow(RuleError);
  });
});

describe('bearerTokenHash', () => {
  it('hashes the bearer token only', () => {
    expect(bearerTokenHash('Bearer abc')).toBe(hashToken('abc'));
    expect(bearerTokenHash('bearer  abc ')).toBe(hashToken('abc'));
    expect(bearerTokenHash('Basic YWJjOmRlZg==')).toBeUndefined();
    expect(bearerTokenHash('Bearer ')).toBeUndefined();
    expect(bearerTokenHash(undefined)).toBeUndefined();
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
