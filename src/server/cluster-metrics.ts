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
 */
import { type Aggregator, AggregatorRegistry, type Registry } from 'prom-client';

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
  async render(answers: ReadonlyMap<number, MetricsJson | undefined>, own: MetricsJson): Promise<string> {
    const parts: MetricsJson[] = [own];
    for (const [worker, answer] of answers) {
      if (answer) this.lastAnswer.set(worker, answer);
      const part = answer ?? this.lastAnswer.get(worker);
      if (part) parts.push(part);
    }
    if (this.retired.length > 0) parts.push(this.retired);
    return this.aggregate(parts).metrics();
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
    this.retired = await this.aggregate(parts).getMetricsAsJSON();
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
