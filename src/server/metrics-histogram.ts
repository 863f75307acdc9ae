/**
 * Latency histograms as typed arrays, turned into samples at scrape time. Each bucket also keeps
 * the newest request that fell in it (its trace id, value and time): the exemplar OpenMetrics
 * scrapes carry. Keeping it costs three stores per observation (a reference to the request's trace
 * id string, which exists anyway, and two numbers), nothing allocated, and no clock read: the
 * caller passes the time it already took to measure the duration.
 */
import { LATENCY_BOUNDS_SECONDS, LATENCY_BUCKETS, latencyBucket } from './stats/latency-buckets.js';

export type Labels = Record<string, string | number>;

/** An OpenMetrics exemplar as prom-client's JSON carries it (timestamp in seconds since the epoch). */
export interface Exemplar {
  labelSet: { trace_id: string };
  value: number;
  timestamp: number;
}

/** One exposition line: prom-client's own shape for samples of custom metrics. */
export interface Sample {
  metricName?: string;
  labels: Labels;
  value: number;
  exemplar?: Exemplar;
}

/** Cumulative histogram buckets per series, in one typed array, with one exemplar per bucket. */
export class ArrayHistogram {
  private readonly buckets: Float64Array;
  private readonly sums: Float64Array;
  private readonly exemplarTrace: string[];
  private readonly exemplarSeconds: Float64Array;
  /** Epoch milliseconds; 0 where no traced request fell yet. */
  private readonly exemplarAt: Float64Array;

  constructor(private readonly series: number) {
    this.buckets = new Float64Array(series * LATENCY_BUCKETS);
    this.sums = new Float64Array(series);
    this.exemplarTrace = new Array<string>(series * LATENCY_BUCKETS).fill('');
    this.exemplarSeconds = new Float64Array(series * LATENCY_BUCKETS);
    this.exemplarAt = new Float64Array(series * LATENCY_BUCKETS);
  }

  /**
   * `traceId`: the request's W3C trace id, '' when it has none (not forwarded); `atMs`: when it was
   * observed (epoch milliseconds), read only with a trace id.
   */
  observe(series: number, ms: number, traceId = '', atMs = 0): void {
    const slot = series * LATENCY_BUCKETS + latencyBucket(ms);
    this.buckets[slot] = this.buckets[slot]! + 1;
    this.sums[series] = this.sums[series]! + ms / 1000;
    if (traceId !== '') {
      this.exemplarTrace[slot] = traceId;
      this.exemplarSeconds[slot] = ms / 1000;
      this.exemplarAt[slot] = atMs;
    }
  }

  samples(name: string, labelsOf: (series: number) => Labels): Array<Sample> {
    const values: Array<Sample> = [];
    for (let series = 0; series < this.series; series++) {
      let cumulative = 0;
      const offset = series * LATENCY_BUCKETS;
      for (let i = 0; i < LATENCY_BUCKETS; i++) cumulative += this.buckets[offset + i]!;
      if (cumulative === 0) continue;
      const labels = labelsOf(series);
      let running = 0;
      for (let i = 0; i < LATENCY_BUCKETS; i++) {
        const slot = offset + i;
        running += this.buckets[slot]!;
        const le = i < LATENCY_BOUNDS_SECONDS.length ? LATENCY_BOUNDS_SECONDS[i]! : '+Inf';
        const sample: Sample = { metricName: `${name}_bucket`, labels: { ...labels, le }, value: running };
        if (this.exemplarAt[slot]! > 0) {
          sample.exemplar = {
            labelSet: { trace_id: this.exemplarTrace[slot]! },
            value: this.exemplarSeconds[slot]!,
            timestamp: this.exemplarAt[slot]! / 1000,
          };
        }
        values.push(sample);
      }
      values.push({ metricName: `${name}_sum`, labels, value: this.sums[series]! });
      values.push({ metricName: `${name}_count`, labels, value: cumulative });
    }
    return values;
  }
}
