/**
 * `/metrics` of `serve --workers N`: every worker's metrics and the primary's, added up, such that
 * what only ever grows keeps growing.
 *
 * Prometheus reads any decrease of a counter as a reset to zero, and `rate()`/`increase()` then count
 * the whole new value as fresh increase: a spike as large as everything served so far. A plain sum
 * over the live workers decreases whenever one drops out, which happens in two ways, both handled:
 * - A worker does not answer this scrape in time: its last answer stands in for it (stale, but
 *   never less than what was already reported).
 * - A worker dies: the counters and histograms of its last answer move into a "retired" part that
 *   every later sum includes, while its replacement starts again from zero. What the dead worker
 *   counted after its last answer is lost, as it would be for a single process that dies; nothing is
 *   ever counted twice. Gauges of a dead worker (memory, connections) simply go.
 *
 * Histogram buckets carry exemplars (a traced request that fell in the bucket); prom-client's
 * aggregation drops them, so each bucket of the sum gets back the newest exemplar any part has.
 */
import { type Aggregator, AggregatorRegistry, type Registry } from 'prom-client';
import type { Exemplar } from './metrics-histogram.js';
import {
  type FamilyJson,
  type MetricsFormat,
  renderOpenMetrics,
  type SampleJson,
} from './metrics-openmetrics.js';

export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** Families whose samples only grow while a process lives. */
const MONOTONIC_TYPES = new Set(['counter', 'histogram']);

export class ClusterMetrics {
  private readonly lastAnswer = new Map<number, MetricsJson>();
  private retired: MetricsJson = [];

  /** `overrides`: families whose sum would mislead (a start time is the earliest, …). */
  constructor(private readonly overrides: Readonly<Record<string, Aggregator>>) {}

  /**
   * The Prometheus text for one scrape. `answers` has one entry per live worker: its metrics, or
   * undefined when it did not answer in time. `own` is the primary's registry.
   */
  async render(
    answers: ReadonlyMap<number, MetricsJson | undefined>,
    own: MetricsJson,
    format: MetricsFormat = 'prometheus',
  ): Promise<string> {
    const parts: MetricsJson[] = [own];
    for (const [worker, answer] of answers) {
      if (answer) this.lastAnswer.set(worker, answer);
      const part = answer ?? this.lastAnswer.get(worker);
      if (part) parts.push(part);
    }
    if (this.retired.length > 0) parts.push(this.retired);
    const sum = this.aggregate(parts);
    if (format === 'prometheus') return sum.metrics();
    return renderOpenMetrics(withNewestExemplars(await sum.getMetricsAsJSON(), parts));
  }

  /** A worker has exited: its counts so far stay in every later sum. */
  async retire(worker: number): Promise<void> {
    const last = this.lastAnswer.get(worker);
    this.lastAnswer.delete(worker);
    if (!last) return;
    // prom-client's typings declare `type` a numeric enum; at run time it is the text ('counter', …).
    const monotonic = last.filter((family) => MONOTONIC_TYPES.has(String(family.type)));
    if (monotonic.length === 0) return;
    const parts = this.retired.length > 0 ? [this.retired, monotonic] : [monotonic];
    this.retired = withNewestExemplars(await this.aggregate(parts).getMetricsAsJSON(), parts);
  }

  private aggregate(parts: MetricsJson[]): Registry {
    for (const part of parts) {
      for (const family of part) {
        const override = this.overrides[family.name];
        if (override) family.aggregator = override;
      }
    }
    return AggregatorRegistry.aggregate(parts);
  }
}

function sampleKey(family: string, sample: SampleJson): string {
  const labels = Object.keys(sample.labels)
    .sort()
    .map((name) => `${name}=${sample.labels[name]}`)
    .join(',');
  return `${family} ${sample.metricName ?? ''} ${labels}`;
}

/** `sum` with, on each sample, the newest exemplar that sample has in any of `parts`. */
function withNewestExemplars(sum: MetricsJson, parts: readonly MetricsJson[]): MetricsJson {
  const newest = new Map<string, Exemplar>();
  for (const part of parts) {
    for (const family of part as unknown as FamilyJson[]) {
      if (String(family.type) !== 'histogram') continue;
      for (const sample of family.values) {
        const exemplar = sample.exemplar;
        if (!exemplar) continue;
        const key = sampleKey(family.name, sample);
        const known = newest.get(key);
        if (!known || exemplar.timestamp > known.timestamp) newest.set(key, exemplar);
      }
    }
  }
  if (newest.size === 0) return sum;
  for (const family of sum as unknown as FamilyJson[]) {
    if (String(family.type) !== 'histogram') continue;
    for (const sample of family.values) {
      const exemplar = newest.get(sampleKey(family.name, sample));
      if (exemplar) sample.exemplar = exemplar;
    }
  }
  return sum;
}
