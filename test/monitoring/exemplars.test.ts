/**
 * OpenMetrics with exemplars, end to end: a real Prometheus with exemplar storage scrapes
 * `meli-proxy serve` under the default workers (the primary sums the workers' metrics). Prometheus
 * rejects a whole scrape when the OpenMetrics text is invalid, so exemplars found through its API
 * prove the exposition valid, and that the trace ids the origin saw in `traceparent` survived the
 * aggregation. A scrape without OpenMetrics in Accept still gets the Prometheus text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest } from '../support/net.js';
import { type CliProcess, serveArgs, spawnCli, useOriginAndDataDir } from '../support/proxy.js';
import { type PrometheusServer, requirePrometheus, startPrometheus } from './prometheus-server.js';

const PROMETHEUS = requirePrometheus('test/monitoring/exemplars.test.ts');

/** What Prometheus 2.x sends when it may scrape OpenMetrics. */
const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

interface ExemplarAnswer {
  status: string;
  error?: string;
  data?: Array<{
    seriesLabels: Record<string, string>;
    exemplars: Array<{ labels: Record<string, string> }>;
  }>;
}

describe.skipIf(!PROMETHEUS)('exemplars under serve with the default workers', () => {
  const fixture = useOriginAndDataDir();
  let proxy: CliProcess;
  let prometheus: PrometheusServer;

  beforeAll(async () => {
    proxy = await spawnCli(serveArgs(fixture.origin.url, fixture.dir, '--access-log', 'off'));
    const target = new URL(proxy.url).host;
    prometheus = await startPrometheus(
      PROMETHEUS!,
      [
        'global:',
        '  scrape_interval: 1s',
        'scrape_configs:',
        '  - job_name: meli-proxy',
        '    static_configs:',
        `      - targets: ["${target}"]`,
        '',
      ].join('\n'),
      ['--enable-feature=exemplar-storage'],
    );
  }, 90_000);

  afterAll(async () => {
    await prometheus?.stop();
    await proxy?.stop();
  });

  /** Trace ids of the exemplars Prometheus holds for a histogram's buckets. */
  async function exemplarTraceIds(histogram: string): Promise<Set<string>> {
    const end = Date.now() / 1000 + 60;
    const answer = await prometheus.get<ExemplarAnswer>(
      `/api/v1/query_exemplars?query=${encodeURIComponent(`${histogram}_bucket`)}&start=${end - 3600}&end=${end}`,
    );
    if (answer.status !== 'success') throw new Error(`query_exemplars: ${JSON.stringify(answer)}`);
    const ids = new Set<string>();
    for (const series of answer.data ?? []) {
      for (const exemplar of series.exemplars)
        if (exemplar.labels.trace_id) ids.add(exemplar.labels.trace_id);
    }
    return ids;
  }

  it('carries the trace id the origin saw on both latency histograms', async () => {
    const seen: string[] = [];
    // One request at a time, each waited for: it is then the newest in its buckets at the next
    // scrape, whichever worker took it (fresh connections, dealt out to both workers).
    for (const [i, traceparent] of [
      undefined,
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      undefined,
      undefined,
    ].entries()) {
      const before = fixture.origin.requests.length;
      const response = await httpRequest(proxy.url, `/items/MLA${i}`, {
        headers: traceparent ? { traceparent } : {},
      });
      expect(response.status).toBe(200);
      const forwarded = fixture.origin.requests
        .slice(before)
        .find((request) => request.url === `/items/MLA${i}`);
      const traceId = String(forwarded?.headers.traceparent ?? '').split('-')[1];
      expect(traceId, 'the origin got a traceparent').toMatch(/^[0-9a-f]{32}$/);
      if (traceparent) expect(traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
      seen.push(traceId!);
      // Only a hang guard: the next scrape (every second) normally brings it.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const [request, upstream] = await Promise.all([
          exemplarTraceIds('meli_proxy_request_duration_seconds'),
          exemplarTraceIds('meli_proxy_upstream_duration_seconds'),
        ]);
        if (request.has(traceId!) && upstream.has(traceId!)) break;
        if (Date.now() > deadline) {
          throw new Error(
            `trace ${traceId} not among the exemplars within 30 s: request ${[...request]}, upstream ${[...upstream]}\n${prometheus.output}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    // Every exemplar is a trace the origin saw: none made up, none from another series.
    const all = await exemplarTraceIds('meli_proxy_request_duration_seconds');
    for (const id of all) expect(seen).toContain(id);
    const up = await prometheus.get<{ data: { result: Array<{ value: [number, string] }> } }>(
      `/api/v1/query?query=${encodeURIComponent('up{job="meli-proxy"}')}`,
    );
    expect(up.data.result[0]?.value[1]).toBe('1');
  }, 180_000);

  it('answers OpenMetrics only to a scraper that asks for it', async () => {
    const open = await httpRequest(proxy.url, '/metrics', { headers: { accept: PROMETHEUS_ACCEPT } });
    expect(open.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    const openText = open.body.toString();
    expect(openText.endsWith('\n# EOF\n')).toBe(true);
    expect(openText).toContain('# TYPE meli_proxy_requests counter\n');
    expect(openText).toMatch(/\nmeli_proxy_requests_total\{/);
    expect(openText).toMatch(
      /\nmeli_proxy_request_duration_seconds_bucket\{[^}]*\} \d+ # \{trace_id="[0-9a-f]{32}"\} [\d.e-]+ \d+\.\d{3}\n/,
    );

    for (const accept of [undefined, 'text/plain;version=0.0.4', '*/*']) {
      const plain = await httpRequest(proxy.url, '/metrics', { headers: accept ? { accept } : {} });
      expect(plain.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
      const text = plain.body.toString();
      expect(text).not.toContain('# EOF');
      expect(text).not.toContain('trace_id');
      expect(text).toContain('# TYPE meli_proxy_requests_total counter\n');
      expect(text).toMatch(/\nmeli_proxy_request_duration_seconds_bucket\{[^}]*\} \d+\n/);
    }
  }, 60_000);
});
