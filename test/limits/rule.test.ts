import { describe, expect, it } from 'vitest';
import { rulesFromEnv } from '../../src/limits/env.js';
import { RuleError } from '../../src/limits/errors.js';
import { parseRule, parseRules, serializeRule } from '../../src/limits/rule.js';
import { hashToken } from '../../src/limits/token.js';
import { parseLimit } from '../../src/limits/window.js';

function errorOf(fn: () => unknown): RuleError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RuleError);
    return error as RuleError;
  }
  throw new Error('expected a RuleError');
}

describe('parseLimit', () => {
  it.each([
    ['1000/m', 1000, 60_000],
    ['1000/1m', 1000, 60_000],
    ['10/s', 10, 1_000],
    ['10/1s', 10, 1_000],
    ['5/10s', 5, 10_000],
    ['7/h', 7, 3_600_000],
    ['7/1h', 7, 3_600_000],
    ['3/d', 3, 86_400_000],
    ['3/1d', 3, 86_400_000],
    [' 600 / m ', 600, 60_000],
  ])('%s', (text, count, windowMs) => {
    expect(parseLimit(text)).toEqual({ count, windowMs });
  });

  it.each(['10/x', '0/m', '-1/m', '1.5/m', '10', '10/2m', '10/ms', '/m', '2000000000/m', '10/M'])(
    'refuses %s',
    (text) => {
      expect(parseLimit(text)).toBeUndefined();
    },
  );
});

describe('parseRule', () => {
  it('parses the three classic rules', () => {
    const rules = parseRules(
      [
        { id: 'ip-152', match: { ip: '152.152.152.152' }, limit: '1000/m' },
        { id: 'categories', match: { path: '/categories/*' }, limit: '10000/m' },
        { id: 'ip-152-items', match: { ip: '152.152.152.152', path: '/items/*' }, limit: '10/m' },
      ],
      'config.yaml limits',
    );
    expect(rules).toEqual([
      {
        id: 'ip-152',
        match: { ip: ['152.152.152.152'] },
        by: [],
        limit: { count: 1000, windowMs: 60_000 },
        burst: 0,
        mode: 'enforce',
      },
      {
        id: 'categories',
        match: { path: ['/categories/*'] },
        by: [],
        limit: { count: 10_000, windowMs: 60_000 },
        burst: 0,
        mode: 'enforce',
      },
      {
        id: 'ip-152-items',
        match: { ip: ['152.152.152.152'], path: ['/items/*'] },
        by: [],
        limit: { count: 10, windowMs: 60_000 },
        burst: 0,
        mode: 'enforce',
      },
    ]);
  });

  it('normalises every field', () => {
    const rule = parseRule({
      id: 'all.fields_1',
      match: {
        ip: ['::ffff:10.0.0.0/104', '2001:DB8::/32', '10.0.0.0/8'],
        path: ['/items/%4DLA/*', '/a//b/'],
        method: ['get', 'POST'],
        header: ['X-Client-Id = abc', 'X-Debug'],
        token: 's3cret',
        tokenHash: 'A'.repeat(64),
      },
      by: ['IP', 'header:X-Client-Id', 'token'],
      limit: '5/10s',
      burst: 3,
      mode: 'shadow',
    });
    expect(rule.match).toEqual({
      ip: ['10.0.0.0/8', '2001:db8::/32'],
      path: ['/items/MLA/*', '/a/b'],
      method: ['GET', 'POST'],
      header: ['x-client-id=abc', 'x-debug'],
      tokenHash: [hashToken('s3cret'), 'a'.repeat(64)],
    });
    expect(rule.by).toEqual(['ip', 'header:x-client-id', 'token']);
    expect(rule).toMatchObject({ burst: 3, mode: 'shadow', limit: { count: 5, windowMs: 10_000 } });
    expect(JSON.stringify(rule)).not.toContain('s3cret');
  });

  it('round-trips through serializeRule without the token', () => {
    const rule = parseRule({ id: 'tok', match: { token: 'abc' }, by: 'ip', limit: '10/m', burst: 2 });
    const stored = serializeRule(rule);
    expect(stored).toEqual({
      id: 'tok',
      match: { tokenHash: [hashToken('abc')] },
      by: ['ip'],
      limit: '10/1m',
      burst: 2,
    });
    expect(parseRule(stored)).toEqual(rule);
  });

  it('gives the message from the issue for a bad limit', () => {
    const error = errorOf(() => parseRule({ id: 'ip-152', match: { ip: '152.152.152.152' }, limit: '10/x' }));
    expect(error.message).toBe(
      'rule "ip-152": invalid limit "10/x": expected N/<window> where window is 1s, 10s, 1m, 1h or 1d (e.g. 1000/m)',
    );
    expect(error).toMatchObject({ ruleId: 'ip-152', field: 'limit', value: '10/x', code: 'ERR_LIMIT_RULE' });
    expect(error.expected).toContain('1s, 10s, 1m, 1h or 1d');
  });

  it.each([
    [
      { id: 'Bad Id', limit: '1/m' },
      'id',
      /^rule: invalid id "Bad Id": expected a slug of 1 to 64 characters/,
    ],
    [{ id: 'x'.repeat(65), limit: '1/m' }, 'id', /invalid id "x{65}": expected a slug/],
    [{ id: 'r', limit: 10 }, 'limit', /^rule "r": invalid limit 10: expected N\/<window>/],
    [{ id: 'r' }, 'limit', /^rule "r": missing limit: expected N\/<window>/],
    [{ limit: '1/m' }, 'id', /^rule: missing id: expected a slug/],
    [
      { id: 'r', limit: '1/m', burst: -1 },
      'burst',
      /invalid burst -1: expected a whole number of extra requests/,
    ],
    [{ id: 'r', limit: '1/m', burst: 1.5 }, 'burst', /invalid burst 1.5/],
    [
      { id: 'r', limit: '1/m', mode: 'dry-run' },
      'mode',
      /invalid mode "dry-run": expected "enforce" \(the default\) or "shadow"/,
    ],
    [
      { id: 'r', limit: '1/m', by: ['ip', 'cookie'] },
      'by[1]',
      /invalid by\[1\] "cookie": expected a list of ip, path/,
    ],
    [{ id: 'r', limit: '1/m', by: ['ip', 'ip'] }, 'by[1]', /each at most once/],
    [{ id: 'r', limit: '1/m', by: 'header:' }, 'by', /invalid by "header:"/],
    [{ id: 'r', limit: '1/m', by: 3 }, 'by', /invalid by 3: expected a list of ip/],
    [
      { id: 'r', limit: '1/m', match: { ip: '300.1.1.1' } },
      'match.ip',
      /invalid match.ip "300.1.1.1": expected an IPv4\/IPv6 address or CIDR range .*; here not an IP address/,
    ],
    [
      { id: 'r', limit: '1/m', match: { ip: ['10.0.0.0/8', '10.1.2.3/8'] } },
      'match.ip[1]',
      /here host bits are set \(did you mean 10.0.0.0\/8\?\)/,
    ],
    [
      { id: 'r', limit: '1/m', match: { ip: '10.0.0.0/33' } },
      'match.ip',
      /here the prefix length must be 0 to 32/,
    ],
    [
      { id: 'r', limit: '1/m', match: { ip: [] } },
      'match.ip',
      /invalid match.ip \[\]: expected an IPv4\/IPv6/,
    ],
    [
      { id: 'r', limit: '1/m', match: { path: 'items/*' } },
      'match.path',
      /invalid match.path "items\/\*": expected a path pattern .*; here it must start with "\/"/,
    ],
    [
      { id: 'r', limit: '1/m', match: { path: '/items/MLA*' } },
      'match.path',
      /here "\*" must be a whole segment/,
    ],
    [{ id: 'r', limit: '1/m', match: { path: '/items?x=1' } }, 'match.path', /without "\?" or "#"/],
    [
      { id: 'r', limit: '1/m', match: { path: '/items/:' } },
      'match.path',
      /here ":" is not a parameter like :id/,
    ],
    [
      { id: 'r', limit: '1/m', match: { method: 'GE T' } },
      'match.method',
      /invalid match.method "GE T": expected an HTTP method name/,
    ],
    [
      { id: 'r', limit: '1/m', match: { header: 'bad name=1' } },
      'match.header',
      /invalid match.header "bad name=1": expected "name" or "name=value"/,
    ],
    [
      { id: 'r', limit: '1/m', match: { tokenHash: 'abc' } },
      'match.tokenHash',
      /invalid match.tokenHash "abc": expected a SHA-256 digest/,
    ],
    [
      { id: 'r', limit: '1/m', match: { cidr: '10.0.0.0/8' } },
      'match.cidr',
      /invalid match.cidr "10.0.0.0\/8": expected only the fields ip, path/,
    ],
    [
      { id: 'r', limit: '1/m', match: 'everything' },
      'match',
      /invalid match "everything": expected an object with any of ip/,
    ],
    [
      { id: 'r', limits: '1/m', limit: '1/m' },
      'limits',
      /invalid limits "1\/m": expected only the fields id, match, by, limit, burst, mode and counting/,
    ],
    ['ip-152', 'rule', /^rule: invalid rule "ip-152": expected an object with at least id and limit/],
  ])('refuses %j at %s', (input, field, message) => {
    const error = errorOf(() => parseRule(input));
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
  });

  it('never shows a token in an error', () => {
    for (const input of [
      { id: 'r', limit: '1/m', match: { token: '   ' } },
      { id: 'r', limit: '1/m', match: { token: ['ok', 'sekrit-token', 42] } },
      { id: 'r', limit: '1/m', token: 'sekrit-token' },
      { id: 'r', limit: '1/m', match: { bearerToken: 'sekrit-token' } },
      { id: 'r', limit: '5/m', match: { tokens: 'sekrit-token' } },
      { id: 'r', limit: '5/m', match: { TOKEN_VALUE: 'sekrit-token' } },
      { id: 'r', limit: '5/m', accessTokens: ['sekrit-token'] },
    ]) {
      const error = errorOf(() => parseRule(input));
      expect(error.field).toMatch(/token/i);
      expect(error.message).toContain('<redacted>');
      expect(error.message).not.toContain('sekrit');
      expect(error.value).toBe('<redacted>');
    }
  });

  it('hides token-like fields inside a shown object or list, but shows a tokenHash', () => {
    for (const input of [
      { id: 'r', limit: '5/m', extra: { token: 'sekrit-token', n: 1 } },
      { id: 'r', limit: '5/m', match: { ip: [{ Tokens: 'sekrit-token' }] } },
      [{ id: 'r', limit: '5/m', match: { token: 'sekrit-token' } }],
    ]) {
      const error = errorOf(() => parseRule(input));
      expect(error.message).toContain('<redacted>');
      expect(error.message).not.toContain('sekrit');
    }
    expect(errorOf(() => parseRule({ id: 'r', limit: '5/m', match: { tokenHash: 'zz' } })).message).toContain(
      'invalid match.tokenHash "zz"',
    );
  });

  it('prefixes where the rule came from', () => {
    const error = errorOf(() =>
      parseRules(
        [
          { id: 'a', limit: '1/m' },
          { id: 'b', limit: '1/m' },
          { id: 'ip-152', limit: '10/x' },
        ],
        'config.yaml limits',
      ),
    );
    expect(error.where).toBe('config.yaml limits[2]');
    expect(error.message).toBe(
      'config.yaml limits[2]: rule "ip-152": invalid limit "10/x": expected N/<window> where window is 1s, 10s, 1m, 1h or 1d (e.g. 1000/m)',
    );
  });
});

describe('parseRules', () => {
  it('refuses duplicate ids, naming both places', () => {
    const error = errorOf(() =>
      parseRules(
        [
          { id: 'a', limit: '1/m' },
          { id: 'a', limit: '2/m' },
        ],
        'config.yaml limits',
      ),
    );
    expect(error.message).toBe(
      'config.yaml limits[1]: rule "a": invalid id "a": expected an id used by no other rule (config.yaml limits[0] already uses it)',
    );
  });

  it('refuses what is not a list', () => {
    expect(errorOf(() => parseRules({ id: 'a' }, 'config.yaml limits')).message).toBe(
      'config.yaml limits: rule: invalid rules {"id":"a"}: expected a list of rules',
    );
  });
});

describe('rulesFromEnv', () => {
  it('builds the default rules', () => {
    expect(rulesFromEnv({ MELI_PROXY_LIMIT_PER_IP: '600/m', MELI_PROXY_LIMIT_GLOBAL: '50000/s' })).toEqual([
      {
        id: 'default-per-ip',
        match: {},
        by: ['ip'],
        limit: { count: 600, windowMs: 60_000 },
        burst: 0,
        mode: 'enforce',
      },
      {
        id: 'default-global',
        match: {},
        by: [],
        limit: { count: 50_000, windowMs: 1_000 },
        burst: 0,
        mode: 'enforce',
      },
    ]);
  });

  it('adds nothing for unset or empty variables', () => {
    expect(rulesFromEnv({})).toEqual([]);
    expect(rulesFromEnv({ MELI_PROXY_LIMIT_PER_IP: ' ' })).toEqual([]);
  });

  it('names the variable in errors', () => {
    expect(errorOf(() => rulesFromEnv({ MELI_PROXY_LIMIT_PER_IP: '600/min' })).message).toBe(
      'MELI_PROXY_LIMIT_PER_IP: rule "default-per-ip": invalid limit "600/min": expected N/<window> where window is 1s, 10s, 1m, 1h or 1d (e.g. 1000/m)',
    );
  });
});

describe('counting', () => {
  it('is kept only when given, and survives a round trip', () => {
    expect(parseRule({ id: 'auto', limit: '10/m' }).counting).toBeUndefined();
    expect(serializeRule(parseRule({ id: 'auto', limit: '10/m' }))).not.toHaveProperty('counting');
    const exact = parseRule({ id: 'tiny', limit: '10/m', counting: 'exact' });
    expect(exact.counting).toBe('exact');
    expect(parseRule(serializeRule(exact))).toEqual(exact);
  });

  it('refuses anything but exact or approximate, saying what to write', () => {
    expect(errorOf(() => parseRule({ id: 'r', limit: '10/m', counting: 'strict' })).message).toBe(
      'rule "r": invalid counting "strict": expected "exact" or "approximate" (leave it out to let the proxy choose by limit and replica count)',
    );
  });
});
