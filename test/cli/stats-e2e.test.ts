/**
 * `meli-proxy stats` against the real `serve` (memory store, an admin token), under one process and
 * under the default worker count: traffic through the proxy shows up in the table and in --json
 * exactly as GET /admin/stats has it, counted host-wide whichever worker served each request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatsResponse } from '../../src/cli/admin-client.js';
import { runCli } from '../../src/cli/program.js';
import { type Origin, startOrigin } from '../peers/origin.js';
import { WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';

const TOKEN = 'stats-e2e-admin-token-7d31b0';

async function run(argv: string[], env: Record<string, string>) {
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

describe.each(WORKER_MODES)('stats against the real server ($name)', (mode) => {
  let origin: Origin;
  let proxy: ServedProxy;
  let env: Record<string, string>;

  async function apiStats(query: string): Promise<StatsResponse> {
    const response = await fetch(`${proxy.adminUrl}/admin/stats${query}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(response.status).toBe(200);
    return (await response.json()) as StatsResponse;
  }

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startServeProxy(mode, { upstream: origin.url, adminToken: TOKEN });
    env = { MELI_PROXY_ADMIN_URL: proxy.adminUrl, MELI_PROXY_ADMIN_TOKEN: TOKEN };
    const targets = [
      ...Array.from({ length: 6 }, (_, index) => `/items/MLA${index}`),
      ...Array.from({ length: 3 }, () => '/categories/MLA97994'),
      '/users/12345',
    ];
    for (const target of targets) await (await fetch(`${proxy.url}${target}`)).arrayBuffer();
  });

  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });

  it('the first answer after the traffic counts all of it, whichever worker served each request', async () => {
    // No waiting: /admin/stats has every worker flush its counts before it answers.
    const first = await apiStats('');
    expect(first.totals.requests).toBe(10);
    const byIp = await apiStats('?groupBy=ip');
    expect(byIp.rows.map((row) => [row.key, row.requests])).toEqual([['127.0.0.1', 10]]);
  });

  it('--json prints what the admin API answers', async () => {
    const result = await run(['stats', '--json', '--from', '1h'], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const printed = JSON.parse(result.stdout) as StatsResponse;
    const direct = await apiStats(
      `?from=${encodeURIComponent(printed.from)}&to=${encodeURIComponent(printed.to)}`,
    );
    expect(printed).toEqual(direct);
    expect(printed.groupBy).toBe('route');
    expect(printed.totals.requests).toBe(10);
    expect(printed.rows.map((row) => [row.key, row.requests])).toEqual([
      ['/items/:id', 6],
      ['/categories/:id', 3],
      ['/users/:id', 1],
    ]);
  });

  it('the table lists the routes in order with their counts and the totals', async () => {
    const result = await run(['stats'], env);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^Requests by route · \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ → .* \(60 min\)$/);
    expect(lines[2]).toMatch(/^ROUTE\s+REQUESTS\s+SHARE\s+BYTES\s+AVG LATENCY$/);
    expect(lines[3]).toMatch(/^\/items\/:id\s+6\s+60\.0%\s+[\d.]+ k?B\s+[\d.]+ m?s$/);
    expect(lines[4]).toMatch(/^\/categories\/:id\s+3\s+30\.0%/);
    expect(lines[5]).toMatch(/^\/users\/:id\s+1\s+10\.0%/);
    expect(result.stdout).toMatch(/^TOTAL\s+10\s/m);
    expect(result.stdout).toContain('Total requests: 10 · rate limited (429): 0 · errors (5xx): 0');
  });

  it('--group-by status and --limit', async () => {
    const result = await run(['stats', '--group-by', 'status', '--limit', '5', '--json'], env);
    expect(result.code).toBe(0);
    const printed = JSON.parse(result.stdout) as StatsResponse;
    expect(printed.groupBy).toBe('status');
    expect(printed.rows.reduce((sum, row) => sum + row.requests, 0)).toBe(10);
    const routes = await run(['stats', '--limit', '1', '--json'], env);
    expect((JSON.parse(routes.stdout) as StatsResponse).rows).toHaveLength(1);
  });

  it('GET /admin/stats refuses a malformed, out-of-range or repeated from/to with 400 naming it', async () => {
    const cases: Array<[string, string]> = [
      ['?from=1&to=99999999999999999999999', 'to "99999999999999999999999" is not an ISO-8601 time'],
      ['?from=1&from=2', 'give from once, as an ISO-8601 time or epoch milliseconds'],
      ['?to=3&to=4', 'give to once, as an ISO-8601 time or epoch milliseconds'],
      ['?from=-5', 'from "-5" is not an ISO-8601 time'],
      ['?from=2025-02-30', 'from "2025-02-30" is not an ISO-8601 time'],
      ['?from=2025-01-01%20(x)', 'from "2025-01-01 (x)" is not an ISO-8601 time'],
      ['?to=nope', 'to "nope" is not an ISO-8601 time'],
    ];
    for (const [query, message] of cases) {
      const response = await fetch(`${proxy.adminUrl}/admin/stats${query}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(response.status, query).toBe(400);
      const body = (await response.json()) as { message: string; error: string; status: number };
      expect(body, query).toMatchObject({ error: 'bad_request', status: 400 });
      expect(body.message, query).toContain(message);
    }
    const valid = await apiStats('?from=1&to=2025-03-01T10:00:00.000Z');
    expect(valid.from).toBe('1970-01-01T00:00:00.001Z');
  });

  it('a wrong token is refused with the fix, exit 1', async () => {
    const result = await run(['stats'], { ...env, MELI_PROXY_ADMIN_TOKEN: 'wrong-token-0000000000' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^meli-proxy: error: admin token rejected: set MELI_PROXY_ADMIN_TOKEN/);
  });
});
