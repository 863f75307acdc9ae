/**
 * What `serve --workers 2` exports and reports host-wide: series of known rules, proxy-made
 * statuses and upstream error kinds exist at 0 before anything happened (so the first event is an
 * increase for rate()), build information once, per-rule counts in /admin/limits gathered from
 * both workers and not reset by an unrelated rule change, worker restarts counted.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { httpRequest } from '../support/net.js';
import { type CliProcess, childPids, spawnCli, useOriginAndDataDir } from '../support/proxy.js';

/** The value of one sample line (`name{labels} value`), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Requests on fresh connections, so both workers get some (the cluster deals connections out). */
async function send(url: string, target: string, count: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) statuses.push((await httpRequest(url, target)).status);
  return statuses;
}

async function waitFor<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  // Only guards against a hang: the condition normally holds within a second or two.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface LimitsAnswer {
  rules: Array<{ id: string; matched: number; rejected: number; shadowExceeded: number }>;
}

describe('metrics of serve --workers 2', () => {
  const fixture = useOriginAndDataDir();

  async function serve(...extra: string[]): Promise<CliProcess> {
    const config = path.join(fixture.dir, 'metrics-workers.yaml');
    writeFileSync(
      config,
      'limits:\n  - { id: items, match: { path: "/items/*" }, limit: 3/h }\n  - { id: watch, match: { path: "/users/*" }, limit: 1/h, mode: shadow }\n',
    );
    return spawnCli([
      'serve',
      '--workers',
      '2',
      '--upstream',
      fixture.origin.url,
      '--port',
      '0',
      '--admin-port',
      '0',
      '--store',
      'memory',
      '--data-dir',
      fixture.dir,
      '--config',
      config,
      '--access-log',
      'off',
      ...extra,
    ]);
  }

  it('exports known series at 0, build info once, host-wide rule counts, and worker restarts', async () => {
    const cli = await serve();
    try {
      const scrape = async () => (await httpRequest(cli.url, '/metrics')).body.toString();
      const first = await scrape();
      expect(sample(first, 'meli_proxy_rate_limited_total{rule="items"}')).toBe(0);
      expect(sample(first, 'meli_proxy_shadow_exceeded_total{rule="watch"}')).toBe(0);
      expect(sample(first, 'meli_proxy_rule_matched_total{rule="items"}')).toBe(0);
      expect(sample(first, 'meli_proxy_rule_allowed_total{rule="watch"}')).toBe(0);
      for (const kind of ['timeout', 'refused', 'reset', 'dns', 'tls', 'protocol', 'other']) {
        expect(sample(first, `meli_proxy_upstream_errors_total{kind="${kind}"}`), kind).toBe(0);
      }
      expect(sample(first, 'meli_proxy_worker_restarts_total')).toBe(0);
      const buildInfo = first.split('\n').filter((line) => line.startsWith('meli_proxy_build_info{'));
      expect(buildInfo).toHaveLength(1);
      expect(buildInfo[0]).toMatch(/version="\d+\.\d+\.\d+".*node_version="v\d+[^"]*"\} 1$/);
      expect(first).toMatch(/^meli_proxy_upstream_connections\{state="connected"\} \d+$/m);
      expect(first).toMatch(/^meli_proxy_limiter_keys \d+$/m);

      const statuses = await send(cli.url, '/items/MLA1', 10);
      expect(statuses.filter((status) => status === 429)).toHaveLength(7);
      const second = await scrape();
      // The first proxy-made 502 on a route with traffic will be an increase from 0.
      expect(sample(second, 'meli_proxy_requests_total{method="GET",route="/items/:id",status="502"}')).toBe(
        0,
      );
      expect(sample(second, 'meli_proxy_requests_total{method="GET",route="/items/:id",status="429"}')).toBe(
        7,
      );
      expect(sample(second, 'meli_proxy_rule_matched_total{rule="items"}')).toBe(10);
      expect(sample(second, 'meli_proxy_rule_allowed_total{rule="items"}')).toBe(3);
      expect(sample(second, 'meli_proxy_response_bytes_total{route="/items/:id"}')).toBeGreaterThan(0);

      // Any worker answers /admin/limits with the counts of both, every time.
      const items = async () =>
        (await httpRequest(cli.adminUrl, '/admin/limits'))
          .json<LimitsAnswer>()
          .rules.find((rule) => rule.id === 'items');
      for (let i = 0; i < 4; i++) {
        expect(await items()).toMatchObject({ matched: 10, rejected: 7, shadowExceeded: 0 });
      }

      // An unrelated rule added through the admin API: the counts of "items" stay.
      const put = await fetch(`${cli.adminUrl}/admin/limits/other`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ match: { path: '/categories/*' }, limit: '100/m' }),
      });
      expect(put.status).toBeLessThan(300);
      await waitFor(async () => {
        const text = await scrape();
        return sample(text, 'meli_proxy_rule_matched_total{rule="other"}') === 0 ? true : undefined;
      }, 'the new rule on every worker');
      await send(cli.url, '/items/MLA1', 2);
      for (let i = 0; i < 4; i++) {
        expect(await items()).toMatchObject({ matched: 12, rejected: 9 });
      }

      const [victim] = childPids(cli.pid);
      process.kill(victim!, 'SIGKILL');
      await waitFor(async () => {
        const text = await scrape().catch(() => '');
        return sample(text, 'meli_proxy_worker_restarts_total') === 1 ? true : undefined;
      }, 'the restart counted');
    } finally {
      await cli.stop();
    }
  }, 120_000);

  it('keeps route labels within --max-routes over both workers together', async () => {
    // The default cap, 256: each worker alone would take ~190 first segments (393 in all).
    const cli = await serve();
    try {
      // 600 distinct first segments, each a fallback label candidate, spread over both workers.
      const targets = Array.from(
        { length: 600 },
        (_, index) => `/junk${String.fromCharCode(97 + (index % 26))}${'x'.repeat(Math.floor(index / 26))}/1`,
      );
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < targets.length) await httpRequest(cli.url, targets[next++]!);
        }),
      );
      const text = (await httpRequest(cli.url, '/metrics')).body.toString();
      const labels = new Set(
        [...text.matchAll(/^meli_proxy_requests_total\{[^}]*route="([^"]*)"/gm)].map((match) => match[1]),
      );
      expect(labels.size).toBeGreaterThan(100);
      expect(labels.size).toBeLessThanOrEqual(256);
      expect(labels).toContain('/other');
    } finally {
      await cli.stop();
    }
  }, 120_000);
});
