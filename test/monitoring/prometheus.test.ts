/**
 * The real Prometheus (Debian's `prometheus`) scraping the real `serve` under one process and under
 * the default worker count (one scrape answers for every worker): traffic through the proxy
 * shows up as a positive request rate, and every PromQL expression of the Grafana dashboards is
 * accepted by Prometheus' parser (run as an instant query with Grafana's variables filled in).
 * Prometheus asks for OpenMetrics, so the scrapes read the proxy's OpenMetrics text.
 *
 * Missing prometheus: a loud skip locally, a failure under CI=true.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { REPO_ROOT, WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';
import { type PrometheusServer, requirePrometheus, startPrometheus } from './prometheus-server.js';

const PROMETHEUS = requirePrometheus('test/monitoring/prometheus.test.ts');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface QueryResult {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

describe.skipIf(!PROMETHEUS).each(WORKER_MODES)('Prometheus scrapes the proxy ($name)', (mode) => {
  let origin: Origin;
  let proxy: ServedProxy;
  let prometheus: PrometheusServer | undefined;
  const output = () => prometheus?.output ?? '';

  function query(expr: string): Promise<QueryResult> {
    return prometheus!.get<QueryResult>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
  }

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startServeProxy(mode, { upstream: origin.url });
    // One enforced and one shadow rule, neither ever exceeded: a healthy proxy with limits.
    for (const [id, rule] of [
      ['items-per-ip', { match: { path: '/items/*' }, by: ['ip'], limit: '100000/m' }],
      ['categories-watch', { match: { path: '/categories/*' }, limit: '100000/m', mode: 'shadow' }],
    ] as const) {
      const put = await fetch(`${proxy.adminUrl}/admin/limits/${id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(rule),
      });
      if (!put.ok) throw new Error(`PUT /admin/limits/${id}: ${put.status} ${await put.text()}`);
    }
    const target = new URL(proxy.url).host;
    prometheus = await startPrometheus(
      PROMETHEUS!,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'scrape_configs:',
        '  - job_name: meli-proxy',
        '    metrics_path: /metrics',
        '    static_configs:',
        `      - targets: ["${target}"]`,
        '        labels:',
        '          pod: meli-proxy-test-0',
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await prometheus?.stop();
    await proxy?.close();
    await origin?.close();
  });

  it('sees traffic sent through the proxy as a positive request rate', async () => {
    const expr = 'sum(rate(meli_proxy_requests_total[15s]))';
    const deadline = Date.now() + 30_000;
    let last: QueryResult | undefined;
    let sent = 0;
    for (;;) {
      // Keep traffic flowing while waiting: a rate needs two scrapes that saw the counter grow.
      await Promise.all(
        Array.from({ length: 5 }, async () => {
          const response = await fetch(`${proxy.url}/categories/MLA97994`);
          await response.arrayBuffer();
          expect(response.status).toBe(200);
          sent++;
        }),
      );
      last = await query(expr);
      const value = Number(last.data?.result[0]?.value[1] ?? 0);
      if (last.status === 'success' && value > 0) break;
      if (Date.now() > deadline) {
        throw new Error(
          `no positive ${expr} within 30 s after ${sent} requests: ${JSON.stringify(last)}\n${output()}`,
        );
      }
      await sleep(250);
    }
    const up = await query('up{job="meli-proxy"}');
    expect(up.data?.result[0]?.value[1]).toBe('1');
    const byStatus = await query('sum by (status) (meli_proxy_requests_total)');
    expect(byStatus.data?.result.map((series) => series.metric.status)).toContain('200');
  }, 45_000);

  it('every panel of the Grafana dashboards shows data for a healthy proxy (zeros, not "No data")', async () => {
    // Healthy traffic on both rules' paths, over more than one scrape.
    const deadline = Date.now() + 30_000;
    let scrapedRules = false;
    while (!scrapedRules) {
      for (const target of ['/items/MLA1', '/categories/MLA97994']) {
        const response = await fetch(`${proxy.url}${target}`);
        await response.arrayBuffer();
        expect(response.status).toBe(200);
      }
      const matched = await query('sum(rate(meli_proxy_rule_matched_total[15s])) > 0');
      scrapedRules = (matched.data?.result.length ?? 0) > 0;
      if (Date.now() > deadline) throw new Error(`no rule traffic scraped within 30 s\n${output()}`);
      await sleep(250);
    }
    const dashboardsDir = path.join(REPO_ROOT, 'deploy/grafana/dashboards');
    const empty: string[] = [];
    let count = 0;
    // The token dashboard needs --inject-token (an OAuth login); its series exist only then.
    for (const file of readdirSync(dashboardsDir).filter(
      (name) => name.endsWith('.json') && !name.includes('token'),
    )) {
      const dashboard = JSON.parse(readFileSync(path.join(dashboardsDir, file), 'utf8')) as {
        panels: Array<{ title: string; targets?: Array<{ expr?: string }> }>;
        templating?: { list: Array<{ name: string; query?: string | { query?: string } }> };
      };
      for (const variable of dashboard.templating?.list ?? []) {
        const text = typeof variable.query === 'string' ? variable.query : variable.query?.query;
        const values = /^label_values\((\w+), (\w+)\)$/.exec(text ?? '');
        if (!values) continue;
        const series = await query(`count by (${values[2]}) (${values[1]})`);
        count++;
        if ((series.data?.result.length ?? 0) === 0)
          empty.push(`${file} variable $${variable.name}: ${text}`);
      }
      for (const panel of dashboard.panels) {
        for (const target of panel.targets ?? []) {
          if (!target.expr) continue;
          const expr = target.expr
            .replaceAll('$__rate_interval', '15s')
            .replaceAll('$__range', '5m')
            .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, '.*');
          const result = await query(expr);
          count++;
          if (result.status !== 'success' || (result.data?.result.length ?? 0) === 0) {
            empty.push(`${file} "${panel.title}": ${result.error ?? 'no data'}\n  ${expr}`);
          }
        }
      }
    }
    expect(empty).toEqual([]);
    expect(count).toBeGreaterThan(40);
  }, 60_000);

  it('accepts every PromQL expression of the Grafana dashboards', async () => {
    const dashboardsDir = path.join(REPO_ROOT, 'deploy/grafana/dashboards');
    const failures: string[] = [];
    let count = 0;
    for (const file of readdirSync(dashboardsDir).filter((name) => name.endsWith('.json'))) {
      const dashboard = JSON.parse(readFileSync(path.join(dashboardsDir, file), 'utf8')) as {
        panels: Array<{ title: string; targets?: Array<{ expr?: string }>; panels?: unknown[] }>;
      };
      for (const panel of dashboard.panels) {
        for (const target of panel.targets ?? []) {
          if (!target.expr) continue;
          // What Grafana substitutes before sending the query.
          const expr = target.expr
            .replaceAll('$__rate_interval', '15s')
            .replaceAll('$__range', '5m')
            .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, '.*');
          const result = await query(expr);
          count++;
          if (result.status !== 'success')
            failures.push(`${file} "${panel.title}": ${result.error}\n  ${expr}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(count).toBeGreaterThan(30);
  });
});
