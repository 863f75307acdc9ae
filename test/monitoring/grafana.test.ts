/**
 * The Grafana provisioning in deploy/grafana: dashboards parse, carry uid/title/panels, query only
 * metrics the proxy exports (EXPORTED_METRICS), use the provisioned datasource, and cover the
 * topics operators need; the provisioning files point at the dashboards folder.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  DEFAULT_METRICS,
  EXPORTED_METRICS,
  exportedSeriesNames,
  PROXY_METRICS,
} from '../../src/server/metric-names.js';
import { REPO_ROOT } from '../support/proxy.js';
import { metricNamesIn } from './promql.js';

const GRAFANA = path.join(REPO_ROOT, 'deploy/grafana');
/** Grafana's reference to the dashboard's datasource variable (a Grafana placeholder, not JS). */
const DATASOURCE_VARIABLE = '$' + '{datasource}';
const DASHBOARDS = path.join(GRAFANA, 'dashboards');

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  gridPos?: { h: number; w: number; x: number; y: number };
  panels?: Panel[];
}
interface Dashboard {
  uid?: string;
  title?: string;
  panels?: Panel[];
  tags?: string[];
  templating?: { list?: Array<{ name: string; type: string; query?: unknown; definition?: string }> };
}

const files = readdirSync(DASHBOARDS)
  .filter((file) => file.endsWith('.json'))
  .sort();
const dashboards = files.map((file) => ({
  file,
  dashboard: JSON.parse(readFileSync(path.join(DASHBOARDS, file), 'utf8')) as Dashboard,
}));

/** Panels, with those nested in collapsed rows. */
function allPanels(dashboard: Dashboard): Panel[] {
  return (dashboard.panels ?? []).flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

/** Every PromQL expression: panel targets and query variables. */
function expressions(dashboard: Dashboard): Array<{ where: string; expr: string }> {
  const found: Array<{ where: string; expr: string }> = [];
  for (const panel of allPanels(dashboard)) {
    for (const target of panel.targets ?? []) {
      if (target.expr) found.push({ where: `panel "${panel.title}" ${target.refId}`, expr: target.expr });
    }
  }
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type === 'query' && variable.definition) {
      const inner = /^label_values\((.*)\)$/.exec(variable.definition.trim());
      const selector = inner ? inner[1]!.replace(/,\s*[A-Za-z_][A-Za-z0-9_]*\s*$/, '') : variable.definition;
      found.push({ where: `variable $${variable.name}`, expr: selector });
    }
  }
  return found;
}

describe('PromQL metric-name extraction (the tool the checks below rely on)', () => {
  it('finds metric names and ignores functions, labels, durations, keywords and Grafana variables', () => {
    expect(
      metricNamesIn(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana variable, on purpose
        'histogram_quantile(0.99, sum by (le, route) (rate(meli_proxy_request_duration_seconds_bucket{route=~"$route", pod=~"${pod}"}[$__rate_interval])))',
      ),
    ).toEqual(['meli_proxy_request_duration_seconds_bucket']);
    expect(
      metricNamesIn(
        'sum by (pod) (rate(a_total[5m])) / ignoring(pod) group_left sum(rate(b_total{x="by (y)"}[5m] offset 1h)) > bool 1e-9',
      ).sort(),
    ).toEqual(['a_total', 'b_total']);
    expect(metricNamesIn('max(up) or vector(0)')).toEqual(['up']);
    expect(metricNamesIn('sum(rate(meli_proxy_requests_total{status=~"5.."}[1m])) without (method)')).toEqual(
      ['meli_proxy_requests_total'],
    );
  });
});

describe('EXPORTED_METRICS', () => {
  it('names are unique, prefixed meli_proxy_, and counters end in _total', () => {
    const names = EXPORTED_METRICS.map((metric) => metric.name);
    expect(new Set(names).size).toBe(names.length);
    for (const metric of EXPORTED_METRICS) {
      expect(metric.name).toMatch(/^meli_proxy_[a-z0-9_]+$/);
      if (metric.type === 'counter') expect(metric.name, metric.name).toMatch(/_total$/);
      else expect(metric.name, metric.name).not.toMatch(/_bucket$|_count$|_sum$/);
    }
    // prom-client names some default gauges *_total (active handles); ours never do.
    for (const metric of PROXY_METRICS) {
      if (metric.type !== 'counter') expect(metric.name, metric.name).not.toMatch(/_total$/);
    }
  });

  it('the default metrics listed are ones prom-client exports, with the same type', async () => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'meli_proxy_' });
    const actual = new Map(
      (await registry.getMetricsAsJSON()).map((metric) => [metric.name, String(metric.type)]),
    );
    for (const metric of DEFAULT_METRICS) expect(actual.get(metric.name), metric.name).toBe(metric.type);
  });

  it('lists the metrics the design promises', () => {
    const names = new Set(EXPORTED_METRICS.map((metric) => metric.name));
    for (const name of [
      'meli_proxy_requests_total',
      'meli_proxy_request_duration_seconds',
      'meli_proxy_upstream_duration_seconds',
      'meli_proxy_in_flight_requests',
      'meli_proxy_rate_limited_total',
      'meli_proxy_shadow_exceeded_total',
      'meli_proxy_upstream_errors_total',
      'meli_proxy_store_errors_total',
      'meli_proxy_store_healthy',
      'meli_proxy_token_refresh_total',
      'meli_proxy_token_expires_in_seconds',
      'meli_proxy_process_cpu_seconds_total',
      'meli_proxy_process_resident_memory_bytes',
      'meli_proxy_nodejs_eventloop_lag_seconds',
    ]) {
      expect(names, name).toContain(name);
    }
  });
});

describe('Grafana dashboards', () => {
  it('there are dashboards, each with a unique uid and title, tagged meli-proxy', () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
    const uids = dashboards.map(({ dashboard }) => dashboard.uid);
    const titles = dashboards.map(({ dashboard }) => dashboard.title);
    for (const { file, dashboard } of dashboards) {
      expect(dashboard.uid, file).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
      expect(dashboard.title, file).toBeTruthy();
      expect(dashboard.tags, file).toContain('meli-proxy');
      expect(Array.isArray(dashboard.panels) && dashboard.panels.length > 0, `${file} has panels`).toBe(true);
    }
    expect(new Set(uids).size).toBe(uids.length);
    expect(new Set(titles).size).toBe(titles.length);
  });

  it('panels have unique ids, a title, a type and a place on the 24-column grid without overlaps', () => {
    for (const { file, dashboard } of dashboards) {
      const panels = allPanels(dashboard);
      const ids = panels.map((panel) => panel.id);
      expect(new Set(ids).size, `${file}: panel ids are unique`).toBe(ids.length);
      const cells = new Set<string>();
      for (const panel of panels) {
        expect(panel.title, `${file} panel ${panel.id}`).toBeTruthy();
        expect(panel.type, `${file} panel ${panel.id}`).toBeTruthy();
        const grid = panel.gridPos!;
        expect(grid, `${file} "${panel.title}" gridPos`).toBeDefined();
        expect(grid.x + grid.w, `${file} "${panel.title}" fits 24 columns`).toBeLessThanOrEqual(24);
        for (let y = grid.y; y < grid.y + grid.h; y++) {
          for (let x = grid.x; x < grid.x + grid.w; x++) {
            const cell = `${x},${y}`;
            expect(cells.has(cell), `${file} "${panel.title}" overlaps another panel at ${cell}`).toBe(false);
            cells.add(cell);
          }
        }
      }
    }
  });

  it('every query panel has targets with an expression and uses the datasource variable', () => {
    for (const { file, dashboard } of dashboards) {
      const variables = new Map(
        (dashboard.templating?.list ?? []).map((variable) => [variable.name, variable]),
      );
      expect(variables.get('datasource')?.type, `${file} has a datasource variable`).toBe('datasource');
      expect(variables.get('datasource')?.query).toBe('prometheus');
      for (const panel of allPanels(dashboard)) {
        if (panel.type === 'row' || panel.type === 'text') continue;
        expect(panel.datasource, `${file} "${panel.title}"`).toEqual({
          type: 'prometheus',
          uid: DATASOURCE_VARIABLE,
        });
        expect(panel.targets?.length, `${file} "${panel.title}" has targets`).toBeGreaterThan(0);
        for (const target of panel.targets ?? []) {
          expect(target.expr?.trim(), `${file} "${panel.title}" ${target.refId}`).toBeTruthy();
          expect(target.datasource?.uid).toBe(DATASOURCE_VARIABLE);
        }
      }
    }
  });

  it('every PromQL expression queries only metrics the proxy exports (EXPORTED_METRICS)', () => {
    const exported = exportedSeriesNames();
    const unknown: string[] = [];
    let checked = 0;
    for (const { file, dashboard } of dashboards) {
      for (const { where, expr } of expressions(dashboard)) {
        const names = metricNamesIn(expr);
        expect(names.length, `${file} ${where} references a metric: ${expr}`).toBeGreaterThan(0);
        for (const name of names) if (!exported.has(name)) unknown.push(`${file} ${where}: ${name}`);
        checked++;
      }
    }
    expect(unknown, 'metrics not in src/server/metric-names.ts').toEqual([]);
    expect(checked).toBeGreaterThan(30);
  });

  it('label filters and groupings use labels the metric has (or pod/le, added by Prometheus)', () => {
    const labels = new Map<string, Set<string>>();
    for (const metric of EXPORTED_METRICS) {
      const set = new Set([...metric.labels, 'pod', 'namespace', 'instance', 'job', 'app']);
      for (const suffix of ['', '_bucket', '_sum', '_count']) labels.set(metric.name + suffix, set);
      labels.get(`${metric.name}_bucket`)!.add('le');
    }
    const problems: string[] = [];
    for (const { file, dashboard } of dashboards) {
      for (const { where, expr } of expressions(dashboard)) {
        for (const selector of expr.matchAll(/([a-z_:][a-z0-9_:]*)\{([^}]*)\}/g)) {
          const known = labels.get(selector[1]!);
          if (!known) continue;
          for (const matcher of selector[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
            if (!known.has(matcher[1]!))
              problems.push(`${file} ${where}: ${selector[1]} has no label "${matcher[1]}"`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('covers traffic, latency, errors, rate limiting by rule, per-pod load and token health', () => {
    const everything = dashboards.map(({ dashboard }) => ({
      titles: allPanels(dashboard)
        .map((panel) => panel.title ?? '')
        .join(' | ')
        .toLowerCase(),
      exprs: expressions(dashboard)
        .map(({ expr }) => expr)
        .join('\n'),
    }));
    const some = (predicate: (item: { titles: string; exprs: string }) => boolean) =>
      everything.some(predicate);
    expect(some((d) => /requests\/s/.test(d.titles) && d.exprs.includes('meli_proxy_requests_total'))).toBe(
      true,
    );
    expect(some((d) => d.exprs.includes('histogram_quantile(0.99') && /latency/.test(d.titles))).toBe(true);
    expect(
      some((d) => d.exprs.includes('meli_proxy_upstream_errors_total') && d.exprs.includes('status=~"5.."')),
    ).toBe(true);
    expect(some((d) => /sum by \(rule\) \(rate\(meli_proxy_rate_limited_total/.test(d.exprs))).toBe(true);
    expect(some((d) => /sum by \(rule\) \(rate\(meli_proxy_shadow_exceeded_total/.test(d.exprs))).toBe(true);
    expect(
      some((d) => /by \(pod\)/.test(d.exprs) && d.exprs.includes('meli_proxy_process_cpu_seconds_total')),
    ).toBe(true);
    expect(
      some(
        (d) =>
          d.exprs.includes('meli_proxy_token_expires_in_seconds') &&
          d.exprs.includes('meli_proxy_token_refresh_total'),
      ),
    ).toBe(true);
  });
});

describe('Grafana provisioning', () => {
  it('the dashboard provider loads the folder the dashboards are mounted at', () => {
    const provider = parseYaml(
      readFileSync(path.join(GRAFANA, 'provisioning/dashboards/meli-proxy.yaml'), 'utf8'),
    ) as {
      apiVersion: number;
      providers: Array<{ type: string; options: { path: string } }>;
    };
    expect(provider.apiVersion).toBe(1);
    expect(provider.providers[0]?.type).toBe('file');
    const mountedAt = provider.providers[0]!.options.path;
    const compose = readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
    expect(compose).toContain(`./deploy/grafana/dashboards:${mountedAt}`);
  });

  it('the datasource is Prometheus, the default, with the uid the dashboards default to', () => {
    const config = parseYaml(
      readFileSync(path.join(GRAFANA, 'provisioning/datasources/prometheus.yaml'), 'utf8'),
    ) as {
      datasources: Array<{ type: string; uid: string; isDefault: boolean }>;
    };
    const prometheus = config.datasources.find((item) => item.type === 'prometheus');
    expect(prometheus?.isDefault).toBe(true);
    for (const { file, dashboard } of dashboards) {
      const variable = dashboard.templating?.list?.find((item) => item.name === 'datasource') as
        | { current?: { value?: string } }
        | undefined;
      expect(variable?.current?.value, file).toBe(prometheus?.uid);
    }
  });

  it('the kustomization ships every dashboard file', () => {
    const kustomization = parseYaml(readFileSync(path.join(GRAFANA, 'kustomization.yaml'), 'utf8')) as {
      configMapGenerator: Array<{ name: string; files: string[] }>;
    };
    const listed = kustomization.configMapGenerator
      .find((generator) => generator.name === 'grafana-dashboards')!
      .files.map((entry) => entry.split('=')[1]);
    expect(listed.sort()).toEqual(files.map((file) => `dashboards/${file}`));
  });
});
