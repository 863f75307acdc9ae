/**
 * The sum behind `/metrics` of `serve --workers N` (src/server/cluster-metrics.ts), on real
 * prom-client registries: counters and histograms never go down when a worker misses a scrape or
 * dies, gauges of a dead worker go, and the min-aggregated families stay minima.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ClusterMetrics, type MetricsJson } from '../../src/server/cluster-metrics.js';

function workerRegistry() {
  const registry = new Registry();
  const requests = new Counter({
    name: 'requests_total',
    help: 'h',
    labelNames: ['status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'duration_seconds',
    help: 'h',
    buckets: [0.1, 1],
    registers: [registry],
  });
  const inFlight = new Gauge({ name: 'in_flight', help: 'h', registers: [registry] });
  const started = new Gauge({ name: 'start_time_seconds', help: 'h', registers: [registry] });
  return { registry, requests, duration, inFlight, started };
}

/** The value of one sample line (`name{labels} value`) in Prometheus text, or undefined. */
function sample(text: string, line: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

async function answers(
  ...workers: Array<[number, Registry | undefined]>
): Promise<Map<number, MetricsJson | undefined>> {
  const map = new Map<number, MetricsJson | undefined>();
  for (const [index, registry] of workers)
    map.set(index, registry ? await registry.getMetricsAsJSON() : undefined);
  return map;
}

describe('ClusterMetrics', () => {
  it('sums the workers, keeps a silent worker at its last answer, and keeps a dead worker’s counts', async () => {
    const metrics = new ClusterMetrics({ start_time_seconds: 'min' });
    const own = await new Registry().getMetricsAsJSON();
    const a = workerRegistry();
    const b = workerRegistry();
    a.requests.inc({ status: '200' }, 5);
    b.requests.inc({ status: '200' }, 7);
    b.requests.inc({ status: '429' }, 2);
    a.duration.observe(0.05);
    b.duration.observe(0.5);
    a.inFlight.set(3);
    b.inFlight.set(4);
    a.started.set(200);
    b.started.set(100);

    let text = await metrics.render(await answers([1, a.registry], [2, b.registry]), own);
    expect(sample(text, 'requests_total{status="200"}')).toBe(12);
    expect(sample(text, 'requests_total{status="429"}')).toBe(2);
    expect(sample(text, 'duration_seconds_count')).toBe(2);
    expect(sample(text, 'duration_seconds_bucket{le="0.1"}')).toBe(1);
    expect(sample(text, 'in_flight')).toBe(7);
    expect(sample(text, 'start_time_seconds')).toBe(100);

    // Worker 2 misses this scrape: its last answer stands in, so nothing goes down.
    a.requests.inc({ status: '200' }, 1);
    text = await metrics.render(await answers([1, a.registry], [2, undefined]), own);
    expect(sample(text, 'requests_total{status="200"}')).toBe(13);
    expect(sample(text, 'requests_total{status="429"}')).toBe(2);

    // Worker 2 dies and a new worker 2 starts from zero: its counts stay, its gauges go.
    await metrics.retire(2);
    const b2 = workerRegistry();
    b2.requests.inc({ status: '200' }, 1);
    b2.inFlight.set(1);
    b2.started.set(300);
    text = await metrics.render(await answers([1, a.registry], [2, b2.registry]), own);
    expect(sample(text, 'requests_total{status="200"}')).toBe(14);
    expect(sample(text, 'requests_total{status="429"}')).toBe(2);
    expect(sample(text, 'duration_seconds_count')).toBe(2);
    expect(sample(text, 'duration_seconds_bucket{le="1"}')).toBe(2);
    expect(sample(text, 'in_flight')).toBe(4);
    expect(sample(text, 'start_time_seconds')).toBe(200);

    // A second death adds up with the first.
    await metrics.retire(2);
    text = await metrics.render(await answers([1, a.registry]), own);
    expect(sample(text, 'requests_total{status="200"}')).toBe(14);
    expect(sample(text, 'in_flight')).toBe(3);
  });

  it('forgets nothing for a worker that never answered (nothing was reported for it)', async () => {
    const metrics = new ClusterMetrics({});
    await metrics.retire(5);
    const a = workerRegistry();
    a.requests.inc({ status: '200' }, 3);
    const text = await metrics.render(await answers([1, a.registry], [2, undefined]), []);
    expect(sample(text, 'requests_total{status="200"}')).toBe(3);
  });
});
