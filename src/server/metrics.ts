/**
 * Prometheus metrics. The hot path only bumps numbers in typed arrays; they are turned into
 * Prometheus samples when /metrics is scraped, because prom-client's labelled children re-hash
 * their labels on every call, where an array slot is one add (docs/architecture.md has why).
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { RuleStats } from '../limits/limiter.js';
import { ArrayHistogram, type Sample } from './metrics-histogram.js';
import { type MetricsFormat, renderOpenMetrics } from './metrics-openmetrics.js';
import { type MetricSources, type RuleCounters, registerSourceMetrics } from './metrics-sources.js';
import { UPSTREAM_ERROR_KINDS } from './upstream-errors.js';

export const WORKER_RESTARTS_METRIC = 'meli_proxy_worker_restarts_total';
export const WORKER_RESTARTS_HELP = 'Worker processes of `serve --workers N` that died and were replaced.';

/** Methods counted individually; anything else is reported as OTHER so labels stay bounded. */
export const COUNTED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER'] as const;
const METHOD_INDEX = new Map<string, number>(COUNTED_METHODS.map((method, index) => [method, index]));
const OTHER_METHOD = COUNTED_METHODS.length - 1;
/** Distinct status codes tracked; a 65th code seen is counted as status "other". */
const STATUS_SLOTS = 64;
/** `status_class` of upstream timings: the class of the status the upstream answered. */
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;

function statusClass(status: number): number {
  const hundreds = Math.floor(status / 100);
  return hundreds >= 1 && hundreds <= 5 ? hundreds - 1 : STATUS_CLASSES.length - 1;
}

/** Statuses the proxy answers by itself (rate limited, upstream failed or timed out). */
const ZERO_STATUSES = [429, 502, 504] as const;

export function methodIndex(method: string): number {
  return METHOD_INDEX.get(method) ?? OTHER_METHOD;
}

/** A prom-client compatible metric whose samples are computed at scrape time. */
class ScrapedMetric {
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly samples: () => Array<Sample>,
  ) {}

  async get(): Promise<{ name: string; help: string; type: string; values: Sample[]; aggregator: 'sum' }> {
    return { name: this.name, help: this.help, type: this.type, values: this.samples(), aggregator: 'sum' };
  }

  reset(): void {}
}

export interface MetricsOptions {
  /** Most route labels (the route table's capacity). */
  routeCapacity: number;
  routeLabel: (id: number) => string;
  /** Epoch milliseconds at performance.now() 0 (default performance.timeOrigin); tests set one. */
  timeOrigin?: number;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly statusIndex = new Int16Array(1000).fill(-1);
  private readonly statusCodes: number[] = [];
  private readonly requests: Float64Array;
  private readonly requestDuration: ArrayHistogram;
  /** By route and status class of the upstream's answer (see STATUS_CLASSES). */
  private readonly upstreamDuration: ArrayHistogram;
  private readonly responseBytes: Float64Array;
  private readonly timeOrigin: number;
  private inFlight = 0;
  private renderer: ((format: MetricsFormat) => Promise<string>) | undefined;
  private readonly rateLimited: Counter<'rule'>;
  private readonly shadowExceeded: Counter<'rule'>;
  private readonly upstreamErrors: Counter<'kind'>;
  private readonly storeErrors: Counter;
  private readonly storeHealthy: Gauge;
  private knownRules: () => readonly RuleStats[] = () => [];
  private ruleCounters: RuleCounters | undefined;

  constructor(private readonly options: MetricsOptions) {
    const { routeCapacity, routeLabel } = options;
    this.requests = new Float64Array(COUNTED_METHODS.length * routeCapacity * STATUS_SLOTS);
    this.timeOrigin = options.timeOrigin ?? performance.timeOrigin;
    this.requestDuration = new ArrayHistogram(routeCapacity);
    this.upstreamDuration = new ArrayHistogram(routeCapacity * STATUS_CLASSES.length);
    this.responseBytes = new Float64Array(routeCapacity);
    collectDefaultMetrics({ register: this.registry, prefix: 'meli_proxy_' });

    this.registry.registerMetric(
      new ScrapedMetric(
        'meli_proxy_requests_total',
        'Requests answered on the proxy port, by method, route and status.',
        'counter',
        () => this.requestSamples(),
      ) as never,
    );
    this.registry.registerMetric(
      new ScrapedMetric(
        'meli_proxy_request_duration_seconds',
        'Time from receiving a request to the end of its response, by route.',
        'histogram',
        () =>
          this.requestDuration.samples('meli_proxy_request_duration_seconds', (id) => ({
            route: routeLabel(id),
          })),
      ) as never,
    );
    this.registry.registerMetric(
      new ScrapedMetric(
        'meli_proxy_upstream_duration_seconds',
        'Time from sending a request upstream to receiving its response headers, by route and status class.',
        'histogram',
        () =>
          this.upstreamDuration.samples('meli_proxy_upstream_duration_seconds', (series) => ({
            route: routeLabel(Math.floor(series / STATUS_CLASSES.length)),
            status_class: STATUS_CLASSES[series % STATUS_CLASSES.length]!,
          })),
      ) as never,
    );
    this.registry.registerMetric(
      new ScrapedMetric(
        'meli_proxy_response_bytes_total',
        'Body bytes sent to clients on the proxy port (forwarded and proxy-made answers), by route.',
        'counter',
        () => this.responseBytesSamples(),
      ) as never,
    );
    const readInFlight = (): number => this.inFlight;
    new Gauge({
      name: 'meli_proxy_in_flight_requests',
      help: 'Requests being forwarded right now.',
      registers: [this.registry],
      collect() {
        this.set(readInFlight());
      },
    });
    // Every rule in force has its series from 0 (rejections of enforced rules, exceedances of
    // shadow rules), so the first one is an increase for rate().
    const knownRules = (mode: RuleStats['mode']): string[] =>
      this.knownRules()
        .filter((rule) => rule.mode === mode)
        .map((rule) => rule.id);
    this.rateLimited = new Counter({
      name: 'meli_proxy_rate_limited_total',
      help: 'Requests rejected with 429, by the rule that rejected them.',
      labelNames: ['rule'],
      registers: [this.registry],
      collect() {
        for (const rule of knownRules('enforce')) this.inc({ rule }, 0);
      },
    });
    this.shadowExceeded = new Counter({
      name: 'meli_proxy_shadow_exceeded_total',
      help: 'Requests over the limit of a shadow-mode rule (let through), by rule.',
      labelNames: ['rule'],
      registers: [this.registry],
      collect() {
        for (const rule of knownRules('shadow')) this.inc({ rule }, 0);
      },
    });
    this.upstreamErrors = new Counter({
      name: 'meli_proxy_upstream_errors_total',
      help: 'Failures talking to the upstream, by kind (timeout, refused, reset, dns, tls, protocol, other).',
      labelNames: ['kind'],
      registers: [this.registry],
    });
    for (const kind of UPSTREAM_ERROR_KINDS) this.upstreamErrors.inc({ kind }, 0);
    this.storeErrors = new Counter({
      name: 'meli_proxy_store_errors_total',
      help: 'Failed operations against the shared store (counter sync, statistics, rules).',
      registers: [this.registry],
    });
    this.storeHealthy = new Gauge({
      name: 'meli_proxy_store_healthy',
      help: '1 while the shared store answers, 0 during an outage.',
      registers: [this.registry],
      // Across cluster workers: healthy only when every worker reaches the store.
      aggregator: 'min',
    });
    this.storeHealthy.set(1);
    // Restarts are counted by the primary of `serve --workers N`; a process on its own has none.
    new Counter({ name: WORKER_RESTARTS_METRIC, help: WORKER_RESTARTS_HELP, registers: [this.registry] });
  }

  /**
   * Connects the metrics read from the server's parts at scrape time (rules, limiter, pool,
   * statistics). Rules in force get their rejection series from 0.
   */
  watch(sources: MetricSources): void {
    this.knownRules = () => sources.ruleStats();
    this.ruleCounters = registerSourceMetrics(this.registry, sources);
  }

  /** The rule set is about to be replaced: its counts so far are kept, the next start from 0. */
  rulesReplaced(): void {
    this.ruleCounters?.rebase();
  }

  /** Per-rule totals since this process started, not reset by rule reloads (empty before watch()). */
  ruleTotals(): ReturnType<RuleCounters['read']> {
    return this.ruleCounters?.read() ?? new Map();
  }

  requestStarted(): void {
    this.inFlight++;
  }

  requestFinished(
    method: number,
    route: number,
    status: number,
    durationMs: number,
    upstreamHeadersMs: number,
    bytes = 0,
    traceId = '',
    endedAt = 0,
  ): void {
    this.inFlight--;
    this.countResponse(method, route, status, durationMs, bytes, traceId, endedAt);
    if (upstreamHeadersMs >= 0) {
      const series = route * STATUS_CLASSES.length + statusClass(status);
      this.upstreamDuration.observe(series, upstreamHeadersMs, traceId, this.timeOrigin + endedAt);
    }
  }

  /**
   * Counts a response (forwarded, or answered by the proxy itself). `traceId`: the W3C trace of a
   * forwarded request, kept as its duration bucket's exemplar ('' for the proxy's own answers), with
   * `endedAt`, the performance.now() that ended the request's duration.
   */
  countResponse(
    method: number,
    route: number,
    status: number,
    durationMs: number,
    bytes = 0,
    traceId = '',
    endedAt = 0,
  ): void {
    const slot = (method * this.options.routeCapacity + route) * STATUS_SLOTS + this.statusSlot(status);
    this.requests[slot] = this.requests[slot]! + 1;
    this.requestDuration.observe(route, durationMs, traceId, this.timeOrigin + endedAt);
    if (bytes > 0) this.responseBytes[route] = this.responseBytes[route]! + bytes;
  }

  rateLimitedBy(rule: string): void {
    this.rateLimited.inc({ rule });
  }

  shadowExceededBy(rule: string): void {
    this.shadowExceeded.inc({ rule });
  }

  upstreamError(kind: string): void {
    this.upstreamErrors.inc({ kind });
  }

  storeError(): void {
    this.storeErrors.inc();
  }

  setStoreHealthy(healthy: boolean): void {
    this.storeHealthy.set(healthy ? 1 : 0);
  }

  get inFlightRequests(): number {
    return this.inFlight;
  }

  /** The exposition: Prometheus text (the default), or OpenMetrics with exemplars when asked for. */
  async render(format: MetricsFormat = 'prometheus'): Promise<string> {
    if (this.renderer) return this.renderer(format);
    if (format === 'openmetrics') return renderOpenMetrics(await this.registry.getMetricsAsJSON());
    return this.registry.metrics();
  }

  /**
   * In a cluster worker: /metrics answers with the metrics of every worker added up (the primary
   * gathers them, see server/cluster.ts), so a scrape of any worker sees the whole server.
   */
  renderThrough(render: (format: MetricsFormat) => Promise<string>): void {
    this.renderer = render;
  }

  private statusSlot(status: number): number {
    if (status < 0 || status >= 1000) status = 0;
    const known = this.statusIndex[status]!;
    if (known !== -1) return known;
    if (this.statusCodes.length >= STATUS_SLOTS - 1) return STATUS_SLOTS - 1;
    const slot = this.statusCodes.length;
    this.statusCodes.push(status);
    this.statusIndex[status] = slot;
    return slot;
  }

  private requestSamples(): Array<Sample> {
    const values: Array<Sample> = [];
    const routes = this.options.routeCapacity;
    for (let block = 0; block < this.requests.length; block += STATUS_SLOTS) {
      let seen = false;
      const route = Math.floor(block / STATUS_SLOTS) % routes;
      const method = Math.floor(block / STATUS_SLOTS / routes);
      for (let statusSlot = 0; statusSlot < STATUS_SLOTS; statusSlot++) {
        const count = this.requests[block + statusSlot]!;
        if (count === 0) continue;
        seen = true;
        values.push(this.requestSample(method, route, this.statusLabel(statusSlot), count));
      }
      if (!seen) continue;
      // The answers the proxy makes itself exist from 0 wherever traffic goes, so the first one
      // is an increase for rate() and the error panels read 0 rather than nothing.
      for (const status of ZERO_STATUSES) {
        const slot = this.statusIndex[status]!;
        if (slot === -1 || this.requests[block + slot] === 0) {
          values.push(this.requestSample(method, route, String(status), 0));
        }
      }
    }
    return values;
  }

  private responseBytesSamples(): Array<Sample> {
    const values: Array<Sample> = [];
    const seen = new Set<number>();
    for (let slot = 0; slot < this.requests.length; slot++) {
      if (this.requests[slot] === 0) continue;
      const route = Math.floor(slot / STATUS_SLOTS) % this.options.routeCapacity;
      if (seen.has(route)) continue;
      seen.add(route);
      values.push({ labels: { route: this.options.routeLabel(route) }, value: this.responseBytes[route]! });
    }
    return values;
  }

  private statusLabel(statusSlot: number): string {
    return statusSlot < this.statusCodes.length ? String(this.statusCodes[statusSlot]) : 'other';
  }

  private requestSample(method: number, route: number, status: string, value: number): Sample {
    return {
      labels: { method: COUNTED_METHODS[method]!, route: this.options.routeLabel(route), status },
      value,
    };
  }
}
