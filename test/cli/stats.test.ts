/**
 * `meli-proxy stats` rendering and errors, through runCli with injected IO, against a stand-in
 * admin API (test/monitoring/admin-stub.ts) serving the documented contract with fixed numbers.
 * The same command against the real server: stats-e2e.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminClient } from '../../src/cli/admin-client.js';
import { runCli } from '../../src/cli/program.js';
import { formatCount, formatSpan, parseTime, sparkline } from '../../src/cli/stats-format.js';
import { UsageError } from '../../src/errors.js';
import { type AdminStub, closedPort, FIXTURE_STATS, startAdminStub } from '../monitoring/admin-stub.js';

const TOKEN = 'stats-test-token-0123456789';

async function run(argv: string[], env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env,
    cwd: process.cwd(),
  });
  return { code, stdout, stderr };
}

let stub: AdminStub;
let env: Record<string, string>;
beforeAll(async () => {
  stub = await startAdminStub({ token: TOKEN });
  env = { MELI_PROXY_ADMIN_URL: stub.url, MELI_PROXY_ADMIN_TOKEN: TOKEN };
});
afterAll(() => stub.close());

describe('stats table', () => {
  it('groups by route by default: aligned columns, shares, totals, 429s and 5xx', async () => {
    const result = await run(['stats'], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      [
        'Requests by route · 2025-03-01 10:00:00Z → 2025-03-01 11:00:00Z (60 min)',
        '',
        'ROUTE                REQUESTS  SHARE     BYTES  AVG LATENCY',
        '/items/:id              6,120  47.7%    9.8 MB      21.7 ms',
        '/categories/:id         3,904  30.4%    5.1 MB      18.2 ms',
        '/sites/:site/search     2,011  15.7%    3.3 MB      41.9 ms',
        '/users/:id                805   6.3%  256.3 kB      12.1 ms',
        '',
        'TOTAL                  12,840          18.5 MB      23.4 ms',
        '',
        'Total requests: 12,840 · rate limited (429): 412 · errors (5xx): 37',
        '',
      ].join('\n'),
    );
    expect(stub.authorizations.at(-1)).toBe(`Bearer ${TOKEN}`);
    expect(stub.statsQueries.at(-1)).toEqual({ groupBy: 'route', limit: '20' });
  });

  it('--group-by status|ip|rule, --limit and --from/--to are sent as the API expects', async () => {
    const status = await run(['stats', '--group-by', 'status'], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^Requests by status/);
    expect(status.stdout).toMatch(/^STATUS\s+REQUESTS\s+SHARE/m);
    expect(status.stdout).toMatch(/^429\s+412\s+3\.2%/m);

    const ip = await run(['stats', '--group-by', 'ip', '--limit', '2'], env);
    expect(ip.code).toBe(0);
    expect(ip.stdout).toMatch(/^CLIENT IP\s+REQUESTS/m);
    expect(ip.stdout).toContain('152.152.152.152');
    expect(ip.stdout).not.toContain('2001:db8::7');
    expect(ip.stdout).toContain('heavy-hitters sketch');
    expect(stub.statsQueries.at(-1)).toEqual({ groupBy: 'ip', limit: '2' });

    const rule = await run(
      ['stats', '--group-by', 'rule', '--from', '2025-03-01T10:00:00Z', '--to', '1740830400000'],
      env,
    );
    expect(rule.code).toBe(0);
    expect(rule.stdout).toMatch(/^RULE\s+HITS$/m);
    expect(rule.stdout).toMatch(/^ip-items\s+300$/m);
    expect(rule.stdout).not.toContain('BYTES');
    expect(stub.statsQueries.at(-1)).toEqual({
      groupBy: 'rule',
      limit: '20',
      from: '2025-03-01T10:00:00.000Z',
      to: '2025-03-01T12:00:00.000Z',
    });
  });

  it('--json prints the API answer as is', async () => {
    const result = await run(['stats', '--json', '--group-by', 'status'], env);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(FIXTURE_STATS.status);
  });

  it('--admin-url wins over MELI_PROXY_ADMIN_URL; a URL without scheme means http', async () => {
    const host = new URL(stub.url).host;
    const result = await run(['stats', '--admin-url', host], {
      ...env,
      MELI_PROXY_ADMIN_URL: 'http://127.0.0.1:1',
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('/items/:id');
  });
});

describe('stats errors', () => {
  it('nothing listening: says so and exits 1', async () => {
    const port = await closedPort();
    const result = await run(['stats'], {
      MELI_PROXY_ADMIN_URL: `http://127.0.0.1:${port}`,
      MELI_PROXY_ADMIN_TOKEN: TOKEN,
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `meli-proxy: error: no proxy admin API at http://127.0.0.1:${port}: is \`meli-proxy serve\` running?\n`,
    );
  });

  it('a missing or wrong token: 401 → names MELI_PROXY_ADMIN_TOKEN, exits 1, never echoes the token', async () => {
    const missing = await run(['stats'], { MELI_PROXY_ADMIN_URL: stub.url });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^meli-proxy: error: admin token rejected: set MELI_PROXY_ADMIN_TOKEN/);
    const wrong = await run(['stats'], {
      MELI_PROXY_ADMIN_URL: stub.url,
      MELI_PROXY_ADMIN_TOKEN: 'not-the-token-xyz',
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^meli-proxy: error: admin token rejected: set MELI_PROXY_ADMIN_TOKEN/);
    expect(wrong.stderr).not.toContain('not-the-token-xyz');
  });

  it('bad flags are usage errors (exit 2) that name the flag, and nothing is requested', async () => {
    const before = stub.statsQueries.length;
    const cases: Array<[string[], RegExp]> = [
      [
        ['stats', '--group-by', 'path'],
        /group-by.*path.*route, ip, status, rule|Allowed choices are route, ip, status, rule/,
      ],
      [['stats', '--limit', '0'], /Invalid --limit "0"/],
      [['stats', '--limit', 'ten'], /Invalid --limit "ten"/],
      [['stats', '--from', 'yesterday'], /Invalid --from "yesterday": expected "now", a duration ago/],
      [['stats', '--from', '1h', '--to', '2h'], /--from .* must be before --to/],
      [['stats', '--to', '99999999999999999999999'], /Invalid --to "99999999999999999999999": expected/],
      [['stats', '--from', '2025-02-30'], /Invalid --from "2025-02-30": expected/],
      [['stats', '--from', '2025-01-01 (x)'], /Invalid --from "2025-01-01 \(x\)": expected/],
      [['stats', '--from', '99999999999999999d'], /Invalid --from "99999999999999999d": expected/],
      [['stats', '--admin-url', 'ftp://x'], /Invalid admin URL "ftp:\/\/x"/],
    ];
    for (const [argv, message] of cases) {
      const result = await run(argv, env);
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.stderr, argv.join(' ')).toMatch(message);
    }
    expect(stub.statsQueries.length).toBe(before);
  });

  it('a proxy without an admin token: no Authorization header is sent', async () => {
    const open = await startAdminStub();
    try {
      const result = await run(['stats'], { MELI_PROXY_ADMIN_URL: open.url });
      expect(result.code).toBe(0);
      expect(open.authorizations).toEqual([undefined]);
    } finally {
      await open.close();
    }
  });

  it('a 400 from the API is a usage error with its message; an unknown endpoint says so', async () => {
    // The CLI only sends known groupBy values, so this goes through the client directly.
    const client = new AdminClient({ baseUrl: stub.url, token: TOKEN });
    await expect(client.getJson('/admin/stats', { groupBy: 'nope' })).rejects.toMatchObject({
      name: 'UsageError',
      message: 'the admin API refused the request: Unknown groupBy "nope".',
    });
    await expect(client.getJson('/admin/nothing')).rejects.toMatchObject({
      name: 'RuntimeFailure',
      message: expect.stringContaining('/admin/nothing does not exist'),
    });
  });
});

describe('formatting helpers', () => {
  it('parseTime: now, durations ago, epoch ms, ISO', () => {
    const now = Date.parse('2025-03-01T12:00:00Z');
    expect(parseTime('now', '--to', now).toISOString()).toBe('2025-03-01T12:00:00.000Z');
    expect(parseTime('15m', '--from', now).toISOString()).toBe('2025-03-01T11:45:00.000Z');
    expect(parseTime('-2h', '--from', now).toISOString()).toBe('2025-03-01T10:00:00.000Z');
    expect(parseTime('7d', '--from', now).toISOString()).toBe('2025-02-22T12:00:00.000Z');
    expect(parseTime('1740826800000', '--from', now).toISOString()).toBe('2025-03-01T11:00:00.000Z');
    expect(parseTime('2025-03-01', '--from', now).toISOString()).toBe('2025-03-01T00:00:00.000Z');
    expect(() => parseTime('12', '--from', now)).toThrow(/Invalid --from "12"/);
    expect(parseTime('2024-02-29T10:00:00.5+03:00', '--from', now).toISOString()).toBe(
      '2024-02-29T07:00:00.500Z',
    );
    for (const text of ['8640000000000001', '2025-13-01', '2025-01-01T24:00:00Z', '2025-01-01,5', '1,2']) {
      expect(() => parseTime(text, '--from', now), text).toThrow(UsageError);
    }
  });

  it('counts, spans and sparklines', () => {
    expect(formatCount(0)).toBe('0');
    expect(formatCount(1234567.4)).toBe('1,234,567');
    expect(formatSpan(3_600_000)).toBe('60 min');
    expect(formatSpan(9_000_000)).toBe('2 h 30 min');
    expect(formatSpan(7 * 86_400_000)).toBe('7 d');
    expect(sparkline([0, 1, 4, 8])).toBe(' ▁▄█');
  });
});
