/**
 * Every metric family the proxy exports on `GET /metrics` (proxy port), in one list. The Grafana
 * dashboards in deploy/grafana/dashboards may query only these (test/monitoring/grafana.test.ts
 * parses their PromQL), and the live /metrics output must contain them (the server's tests).
 *
 * Counters are named with their `_total` suffix, as they appear in the exposition. A histogram
 * family `x` appears as the series `x_bucket`, `x_sum` and `x_count`: see exportedSeriesNames().
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface ExportedMetric {
  /** Family name as in `# TYPE <name> <type>`. */
  readonly name: string;
  readonly type: MetricType;
  /** Label names the proxy itself sets (Prometheus adds job/instance, and pod/namespace in Kubernetes). */
  readonly labels: readonly string[];
  /** When the family is present only under a setting; absent: always present. */
  readonly onlyWith?: 'inject-token';
}

/** The proxy's own metrics. */
export const PROXY_METRICS = [
  { name: 'meli_proxy_requests_total', type: 'counter', labels: ['method', 'route', 'status'] },
  { name: 'meli_proxy_request_duration_seconds', type: 'histogram', labels: ['route'] },
  { name: 'meli_proxy_upstream_duration_seconds', type: 'histogram', labels: ['route', 'status_class'] },
  { name: 'meli_proxy_response_bytes_total', type: 'counter', labels: ['route'] },
  { name: 'meli_proxy_in_flight_requests', type: 'gauge', labels: [] },
  { name: 'meli_proxy_rate_limited_total', type: 'counter', labels: ['rule'] },
  { name: 'meli_proxy_shadow_exceeded_total', type: 'counter', labels: ['rule'] },
  { name: 'meli_proxy_upstream_errors_total', type: 'counter', labels: ['kind'] },
  { name: 'meli_proxy_store_errors_total', type: 'counter', labels: [] },
  { name: 'meli_proxy_store_healthy', type: 'gauge', labels: [] },
  { name: 'meli_proxy_build_info', type: 'gauge', labels: ['version', 'commit', 'node_version'] },
  { name: 'meli_proxy_rule_matched_total', type: 'counter', labels: ['rule'] },
  { name: 'meli_proxy_rule_allowed_total', type: 'counter', labels: ['rule'] },
  { name: 'meli_proxy_rule_store_error_decisions_total', type: 'counter', labels: ['rule', 'decision'] },
  { name: 'meli_proxy_limiter_keys', type: 'gauge', labels: [] },
  { name: 'meli_proxy_limiter_max_keys', type: 'gauge', labels: [] },
  { name: 'meli_proxy_stats_rows_dropped_total', type: 'counter', labels: [] },
  { name: 'meli_proxy_upstream_connections', type: 'gauge', labels: ['state'] },
  { name: 'meli_proxy_upstream_requests', type: 'gauge', labels: ['state'] },
  { name: 'meli_proxy_worker_restarts_total', type: 'counter', labels: [] },
  { name: 'meli_proxy_token_refresh_total', type: 'counter', labels: ['result'], onlyWith: 'inject-token' },
  { name: 'meli_proxy_token_expires_in_seconds', type: 'gauge', labels: [], onlyWith: 'inject-token' },
] as const satisfies readonly ExportedMetric[];

/**
 * prom-client's default metrics (collectDefaultMetrics with prefix `meli_proxy_`) that the
 * dashboards may use. Only families prom-client 15 exports on Linux are listed.
 */
export const DEFAULT_METRICS = [
  { name: 'meli_proxy_process_cpu_seconds_total', type: 'counter', labels: [] },
  { name: 'meli_proxy_process_cpu_user_seconds_total', type: 'counter', labels: [] },
  { name: 'meli_proxy_process_cpu_system_seconds_total', type: 'counter', labels: [] },
  { name: 'meli_proxy_process_start_time_seconds', type: 'gauge', labels: [] },
  { name: 'meli_proxy_process_resident_memory_bytes', type: 'gauge', labels: [] },
  { name: 'meli_proxy_process_open_fds', type: 'gauge', labels: [] },
  { name: 'meli_proxy_process_max_fds', type: 'gauge', labels: [] },
  { name: 'meli_proxy_nodejs_eventloop_lag_seconds', type: 'gauge', labels: [] },
  { name: 'meli_proxy_nodejs_eventloop_lag_p99_seconds', type: 'gauge', labels: [] },
  { name: 'meli_proxy_nodejs_eventloop_lag_max_seconds', type: 'gauge', labels: [] },
  { name: 'meli_proxy_nodejs_heap_size_used_bytes', type: 'gauge', labels: [] },
  { name: 'meli_proxy_nodejs_heap_size_total_bytes', type: 'gauge', labels: [] },
  { name: 'meli_proxy_nodejs_active_handles_total', type: 'gauge', labels: [] },
  { name: 'meli_proxy_nodejs_gc_duration_seconds', type: 'histogram', labels: ['kind'] },
] as const satisfies readonly ExportedMetric[];

export const EXPORTED_METRICS: readonly ExportedMetric[] = [...PROXY_METRICS, ...DEFAULT_METRICS];

/** The series names a family appears under in the exposition (and in PromQL). */
export function seriesNamesOf(metric: ExportedMetric): string[] {
  if (metric.type === 'histogram') {
    return [`${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`];
  }
  return [metric.name];
}

/** Every series name a PromQL expression may reference. */
export function exportedSeriesNames(metrics: readonly ExportedMetric[] = EXPORTED_METRICS): Set<string> {
  return new Set(metrics.flatMap(seriesNamesOf));
}
