/**
 * Prometheus metrics. The hot path only bumps numbers in typed arrays; they are folded into
 * prom-client metrics when /metrics is scraped, because prom-client's labelled children re-hash
 * their labels on every call.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/** Methods counted individually; anything else is reported as OTHER so labels stay bounded. */
export const COUNTED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER'] as const;
const METHOD_INDEX = new Map<string, number>(COUNTED_METHODS.map((method, index) => [method, index]));
const OTHER_METHOD = COUNTED_METHODS.length - 1;
const STATUS_SLOTS = 600;

export function methodIndex(method: string): number {
  return METHOD_INDEX.get(method) ?? OTHER_METHOD;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly pendingRequests = new Float64Array(COUNTED_METHODS.length * STATUS_SLOTS);
  private inFlight = 0;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'meli_proxy_' });
    const pending = this.pendingRequests;
    new Counter({
      name: 'meli_proxy_requests_total',
      help: 'Requests answered on the proxy port, by method and response status.',
      labelNames: ['method', 'status'] as const,
      registers: [this.registry],
      collect() {
        for (let slot = 0; slot < pending.length; slot++) {
          const count = pending[slot]!;
          if (count === 0) continue;
          pending[slot] = 0;
          const method = COUNTED_METHODS[Math.floor(slot / STATUS_SLOTS)]!;
          this.inc({ method, status: String(slot % STATUS_SLOTS) }, count);
        }
      },
    });
    const readInFlight = (): number => this.inFlight;
    new Gauge({
      name: 'meli_proxy_in_flight_requests',
      help: 'Requests being forwarded right now.',
      registers: [this.registry],
      collect() {
        this.set(readInFlight());
      },
    });
  }

  requestStarted(): void {
    this.inFlight++;
  }

  requestFinished(method: number, status: number): void {
    this.inFlight--;
    this.countResponse(method, status);
  }

  /** Counts a response the proxy answered itself (reserved endpoints, refusals). */
  countResponse(method: number, status: number): void {
    if (status < 100 || status >= STATUS_SLOTS) status = 0;
    const slot = method * STATUS_SLOTS + status;
    this.pendingRequests[slot] = (this.pendingRequests[slot] ?? 0) + 1;
  }

  get inFlightRequests(): number {
    return this.inFlight;
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
