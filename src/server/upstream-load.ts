/**
 * How busy the upstream pool is, for /metrics and /ready: requests holding a connection, requests
 * waiting for one, how long they waited, and what the slow-client defences cut.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ForwardCounters } from './forward-context.js';

export interface UpstreamLoad {
  /** Size of the pool (--upstream-connections). */
  connections: number;
  /** Requests holding an upstream connection now. */
  busy: number;
  /** Requests waiting for a free connection now; above 0 the pool is exhausted. */
  waiting: number;
  exhausted: boolean;
}

export function upstreamLoad(counters: ForwardCounters, connections: number): UpstreamLoad {
  const busy = counters.inFlight - counters.waiting;
  return { connections, busy, waiting: counters.waiting, exhausted: counters.waiting > 0 };
}

/** A counter whose value is a running total kept elsewhere, read at scrape time. */
function totalCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

export function registerUpstreamLoadMetrics(registry: Registry, counters: ForwardCounters): void {
  new Gauge({
    name: 'meli_proxy_upstream_waiting_requests',
    help: 'Requests waiting for a free upstream connection (the pool is exhausted while above 0).',
    registers: [registry],
    collect() {
      this.set(counters.waiting);
    },
  });
  new Gauge({
    name: 'meli_proxy_upstream_busy_connections',
    help: 'Upstream connections serving a request now.',
    registers: [registry],
    collect() {
      this.set(counters.inFlight - counters.waiting);
    },
  });
  totalCounter(
    registry,
    'meli_proxy_upstream_wait_seconds_total',
    'Time requests spent waiting for an upstream connection, summed; divide by meli_proxy_upstream_connections_taken_total for the mean.',
    () => counters.waitMsTotal / 1000,
  );
  totalCounter(
    registry,
    'meli_proxy_upstream_connections_taken_total',
    'Requests that got an upstream connection.',
    () => counters.connected,
  );
  totalCounter(
    registry,
    'meli_proxy_upstream_wait_timeouts_total',
    'Requests answered 503 because no upstream connection became free within --upstream-wait-timeout.',
    () => counters.waitTimeouts,
  );
  const stalls = new Counter({
    name: 'meli_proxy_client_stalls_total',
    help: 'Client connections cut by --client-stall-timeout, by direction (body: not sending, response: not reading).',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      stalls.reset();
      stalls.inc({ direction: 'body' }, counters.bodyStalls);
      stalls.inc({ direction: 'response' }, counters.readStalls);
    },
  });
  totalCounter(
    registry,
    'meli_proxy_client_slot_refusals_total',
    'Requests answered 503 because their client held --upstream-connections-per-client already.',
    () => counters.slotRefusals,
  );
}
