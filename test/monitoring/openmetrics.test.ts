/**
 * The OpenMetrics exposition (src/server/metrics-openmetrics.ts) on real ProxyMetrics registries:
 * which Accept gets which format, the shape of the text (families, `_total`, exemplars on the
 * bucket a request fell in, `# EOF`), the Prometheus text left as it was, and the sum of
 * `serve --workers N` keeping the newest exemplar of each bucket. Prometheus itself parses this
 * text in test/monitoring/exemplars.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ClusterMetrics } from '../../src/server/cluster-metrics.js';
import { methodIndex, ProxyMetrics } from '../../src/server/metrics.js';
import { negotiateMetricsFormat } from '../../src/server/metrics-openmetrics.js';

const TRACE_A = '0af7651916cd43dd8448eb211c80319c';
const TRACE_B = '4bf92f3577b34da6a3ce929d0e0e4736';

/** Metrics whose performance.now() 0 is `timeOrigin` (epoch ms), so exemplar times are known. */
function metricsAt(timeOrigin: number): ProxyMetrics {
  return new ProxyMetrics({
    routeCapacity: 2,
    routeLabel: (id) => (id === 0 ? '/items/:id' : 'other'),
    timeOrigin,
  });
}

function lineOf(text: string, prefix: string): string | undefined {
  return text.split('\n').find((line) => line.startsWith(prefix));
}

const BUCKET_25MS = 'meli_proxy_request_duration_seconds_bucket{route="/items/:id",le="0.025"}';

describe('negotiateMetricsFormat', () => {
  it.each([
    [undefined, 'prometheus'],
    ['', 'prometheus'],
    ['*/*', 'prometheus'],
    ['text/plain;version=0.0.4', 'prometheus'],
    ['application/openmetrics-text', 'openmetrics'],
    ['application/openmetrics-text; version=1.0.0; charset=utf-8', 'openmetrics'],
    // Prometheus 2.x with and without exemplar storage.
    [
      'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
      'openmetrics',
    ],
    // Prometheus 3 (the bundled one), which also offers text 1.0.0 (read here as not ours).
    [
      'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
      'openmetrics',
    ],
    ['text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5', 'prometheus'],
    ['application/openmetrics-text;q=0', 'prometheus'],
    ['application/openmetrics-text;version=2.0.0', 'prometheus'],
  ] as const)('Accept %j → %s', (accept, format) => {
    expect(negotiateMetricsFormat(accept)).toBe(format);
  });
});

describe('OpenMetrics of one process', () => {
  it('has the families, `_total` samples and an exemplar on the bucket the traced request fell in', async () => {
    const metrics = metricsAt(1_765_000_000_000);
    metrics.requestStarted();
    metrics.requestFinished(methodIndex('GET'), 0, 200, 20, 15, 100, TRACE_A, 123);
    // The proxy's own answer has no trace: counted, but no exemplar of its own.
    metrics.countResponse(methodIndex('GET'), 0, 429, 20, 50);
    const text = await metrics.render('openmetrics');

    expect(text.endsWith('\n# EOF\n')).toBe(true);
    expect(text.indexOf('# EOF')).toBe(text.length - '# EOF\n'.length);
    expect(text).toContain('# TYPE meli_proxy_requests counter\n');
    expect(text).toContain('\nmeli_proxy_requests_total{method="GET",route="/items/:id",status="200"} 1\n');
    expect(text).not.toMatch(/^# TYPE \S+_total counter$/m);
    expect(lineOf(text, BUCKET_25MS)).toBe(`${BUCKET_25MS} 2 # {trace_id="${TRACE_A}"} 0.02 1765000000.123`);
    expect(lineOf(text, 'meli_proxy_request_duration_seconds_bucket{route="/items/:id",le="0.01"}')).toBe(
      'meli_proxy_request_duration_seconds_bucket{route="/items/:id",le="0.01"} 0',
    );
    expect(
      lineOf(
        text,
        'meli_proxy_upstream_duration_seconds_bucket{route="/items/:id",status_class="2xx",le="0.025"}',
      ),
    ).toContain(`# {trace_id="${TRACE_A}"} 0.015 1765000000.123`);
    // Every sample line is `name{labels} value` with an optional exemplar, nothing else.
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('# ')) continue;
      expect(line).toMatch(/^[a-zA-Z_:][\w:]*(\{.*\})? \S+( # \{trace_id="[0-9a-f]{32}"\} \S+ \d+\.\d{3})?$/);
    }
  });

  it('leaves the Prometheus text as it was: no exemplars, no # EOF, counters named with _total', async () => {
    const metrics = metricsAt(1_765_000_000_000);
    metrics.requestStarted();
    metrics.requestFinished(methodIndex('GET'), 0, 200, 20, 15, 100, TRACE_A);
    await metrics.render('openmetrics');
    const text = await metrics.render();
    expect(text).not.toContain('# EOF');
    expect(text).not.toContain('trace_id');
    expect(text).toContain('# TYPE meli_proxy_requests_total counter\n');
    expect(lineOf(text, BUCKET_25MS)).toBe(`${BUCKET_25MS} 1`);
  });
});

describe('OpenMetrics of serve --workers N', () => {
  it('sums the buckets and keeps, per bucket, the newest exemplar of any worker', async () => {
    // Two processes with their own time origins: what counts is the epoch time of each request.
    const a = metricsAt(1_765_000_000_000);
    const b = metricsAt(1_764_999_990_000);
    a.requestStarted();
    a.requestFinished(methodIndex('GET'), 0, 200, 20, 15, 100, TRACE_A, 0);
    b.requestStarted();
    b.requestFinished(methodIndex('GET'), 0, 200, 21, 3000, 100, TRACE_B, 11_000);
    // Worker order must not matter: the newer exemplar wins from either side.
    for (const order of [
      [a, b],
      [b, a],
    ]) {
      const cluster = new ClusterMetrics({});
      const answers = new Map(
        await Promise.all(order.map(async (m, i) => [i, await m.registry.getMetricsAsJSON()] as const)),
      );
      const text = await cluster.render(answers, [], 'openmetrics');
      expect(lineOf(text, BUCKET_25MS)).toBe(
        `${BUCKET_25MS} 2 # {trace_id="${TRACE_B}"} 0.021 1765000001.000`,
      );
      // Buckets only one worker has keep that worker's exemplar.
      const upstream =
        'meli_proxy_upstream_duration_seconds_bucket{route="/items/:id",status_class="2xx",le=';
      expect(lineOf(text, `${upstream}"0.025"}`)).toContain(`{trace_id="${TRACE_A}"} 0.015 1765000000.000`);
      expect(lineOf(text, `${upstream}"3"}`)).toContain(`{trace_id="${TRACE_B}"} 3 1765000001.000`);
      expect(text.endsWith('\n# EOF\n')).toBe(true);
      const plain = await cluster.render(answers, [], 'prometheus');
      expect(lineOf(plain, BUCKET_25MS)).toBe(`${BUCKET_25MS} 2`);
    }
  });

  it('keeps the exemplars of a worker that died in the retired part', async () => {
    const a = metricsAt(1_765_000_000_000);
    a.requestStarted();
    a.requestFinished(methodIndex('GET'), 0, 200, 20, 15, 100, TRACE_A, 0);
    const cluster = new ClusterMetrics({});
    await cluster.render(new Map([[1, await a.registry.getMetricsAsJSON()]]), [], 'openmetrics');
    await cluster.retire(1);
    const text = await cluster.render(new Map(), [], 'openmetrics');
    expect(lineOf(text, BUCKET_25MS)).toBe(`${BUCKET_25MS} 1 # {trace_id="${TRACE_A}"} 0.02 1765000000.000`);
  });
});
