/**
 * OpenMetrics 1.0 text (https://prometheus.io/docs/specs/om/open_metrics_spec/) for scrapers that
 * ask for it in Accept, as Prometheus does: the same samples as the Prometheus text, plus the
 * exemplars of the latency histograms. Written here rather than by prom-client's OpenMetrics mode,
 * which renames counters in place on the registry (its Prometheus text would lose `_total`) and is
 * a per-registry setting, where the format is chosen per scrape.
 */
import type { Exemplar, Labels } from './metrics-histogram.js';

export type MetricsFormat = 'prometheus' | 'openmetrics';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

export function contentTypeOf(format: MetricsFormat): string {
  return format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE;
}

/** OpenMetrics versions whose text this renderer writes (0.0.1 is the same text, as Prometheus reads it). */
const OPENMETRICS_VERSIONS = new Set(['1.0.0', '0.0.1']);

/**
 * The format an Accept header prefers: OpenMetrics when it ranks it at least as high as plain text
 * (by q value), Prometheus text otherwise, and for no Accept or `*` alone.
 */
export function negotiateMetricsFormat(accept: string | undefined): MetricsFormat {
  if (!accept) return 'prometheus';
  let openMetrics = 0;
  let text = 0;
  for (const range of accept.split(',')) {
    const [mediaType = '', ...parameters] = range.split(';').map((part) => part.trim().toLowerCase());
    let q = 1;
    let version: string | undefined;
    for (const parameter of parameters) {
      const [key, value = ''] = parameter.split('=').map((part) => part.trim());
      if (key === 'q') q = Number.parseFloat(value);
      else if (key === 'version') version = value;
    }
    if (!(q > 0)) continue;
    if (mediaType === 'application/openmetrics-text') {
      if (version === undefined || OPENMETRICS_VERSIONS.has(version)) openMetrics = Math.max(openMetrics, q);
    } else if (mediaType === 'text/plain' || mediaType === 'text/*' || mediaType === '*/*') {
      if (version === undefined || version === '0.0.4') text = Math.max(text, q);
    }
  }
  return openMetrics > 0 && openMetrics >= text ? 'openmetrics' : 'prometheus';
}

/** A sample as prom-client's getMetricsAsJSON() gives it, with the exemplar our histograms add. */
export interface SampleJson {
  metricName?: string;
  labels: Partial<Labels>;
  value: number;
  exemplar?: Exemplar;
}

/** A metric family as prom-client's getMetricsAsJSON() gives it. */
export interface FamilyJson {
  name: string;
  help: string;
  /** Text at run time ('counter', …), though prom-client's typings declare a numeric enum. */
  type: unknown;
  values: readonly SampleJson[];
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function formatLabels(labels: Partial<Labels>): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(labels)) {
    if (value === undefined) continue;
    const text = typeof value === 'number' ? formatNumber(value) : value;
    parts.push(`${name}="${escapeLabelValue(text)}"`);
  }
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

const KNOWN_TYPES = new Set(['counter', 'gauge', 'histogram', 'summary']);

/** The OpenMetrics text of a set of families, ending with `# EOF`. */
export function renderOpenMetrics(families: readonly FamilyJson[]): string {
  const lines: string[] = [];
  for (const family of families) {
    const type = String(family.type);
    // A counter family is named without `_total`; its sample is `<family>_total`.
    const name =
      type === 'counter' && family.name.endsWith('_total') ? family.name.slice(0, -6) : family.name;
    lines.push(`# TYPE ${name} ${KNOWN_TYPES.has(type) ? type : 'unknown'}`);
    lines.push(`# HELP ${name} ${escapeHelp(family.help)}`);
    for (const sample of family.values) {
      const sampleName = type === 'counter' ? `${name}_total` : (sample.metricName ?? name);
      let line = `${sampleName}${formatLabels(sample.labels)} ${formatNumber(sample.value)}`;
      const exemplar = sample.exemplar;
      if (exemplar) {
        line += ` # ${formatLabels(exemplar.labelSet)} ${formatNumber(exemplar.value)} ${exemplar.timestamp.toFixed(3)}`;
      }
      lines.push(line);
    }
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}
