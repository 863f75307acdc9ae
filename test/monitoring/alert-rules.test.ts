/**
 * The alerting and SLO rules of deploy/prometheus/rules: valid for Prometheus (`promtool check
 * rules`), behaving as their unit tests say (`promtool test rules`), every alert documented and
 * tested both ways, every series they read exported by the proxy, and shipped identically to the
 * bundled Prometheus (compose, k8s) and to prometheus-operator.
 *
 * Missing promtool: a loud skip locally, a failure under CI=true.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PROMETHEUS_RULE_FILE, RULES_DIR, renderPrometheusRule } from '../../scripts/prometheus-rule.js';
import { exportedSeriesNames } from '../../src/server/metric-names.js';
import { REPO_ROOT } from '../support/proxy.js';
import { metricNamesIn } from './promql.js';

const PROMETHEUS_DIR = path.join(REPO_ROOT, 'deploy/prometheus');
const TESTS_DIR = path.join(PROMETHEUS_DIR, 'tests');

function promtoolPath(): string | undefined {
  for (const dir of ['/usr/bin', ...(process.env.PATH ?? '').split(path.delimiter)]) {
    const candidate = path.join(dir, 'promtool');
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

function requirePromtool(): string | undefined {
  const found = promtoolPath();
  if (found) return found;
  const message =
    'promtool is not installed: test/monitoring/alert-rules.test.ts needs it (apt-get install prometheus)';
  if (process.env.CI === 'true') throw new Error(message);
  const bar = '!'.repeat(Math.min(100, message.length + 10));
  console.warn(`\n${bar}\n!!!  SKIPPED: ${message}\n${bar}\n`);
  return undefined;
}

const PROMTOOL = requirePromtool();

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: Array<{ name: string; rules: Rule[] }>;
}
interface UnitTestFile {
  rule_files: string[];
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
}

const ruleFiles = readdirSync(RULES_DIR)
  .filter((file) => file.endsWith('.yml'))
  .sort();
const rules = ruleFiles.flatMap((file) =>
  (parse(readFileSync(path.join(RULES_DIR, file), 'utf8')) as RuleFile).groups.flatMap(
    (group) => group.rules,
  ),
);
const alerts = rules.filter((rule) => rule.alert);
const testFiles = readdirSync(TESTS_DIR)
  .filter((file) => file.endsWith('.test.yml'))
  .sort();

describe.skipIf(!PROMTOOL)('alert and SLO rules with promtool', () => {
  it('promtool check rules accepts every rule file', async () => {
    const result = await execa(
      PROMTOOL!,
      ['check', 'rules', ...ruleFiles.map((file) => path.join(RULES_DIR, file))],
      {
        reject: false,
      },
    );
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).toBe(0);
  });

  it('promtool test rules passes every unit test file', async () => {
    const result = await execa(PROMTOOL!, ['test', 'rules', ...testFiles], { cwd: TESTS_DIR, reject: false });
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(testFiles.length).toBeGreaterThanOrEqual(3);
  }, 180_000);

  it('promtool check config accepts the compose Prometheus with its rule files', async () => {
    const result = await execa(PROMTOOL!, ['check', 'config', path.join(PROMETHEUS_DIR, 'prometheus.yml')], {
      reject: false,
    });
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain(`${ruleFiles.length} rule files found`);
  });

  it('the PrometheusRule holds rules promtool accepts', async () => {
    const resource = parse(readFileSync(PROMETHEUS_RULE_FILE, 'utf8')) as { spec: RuleFile };
    const dir = mkdtempSync(path.join(tmpdir(), 'meli-rules-'));
    try {
      const file = path.join(dir, 'spec.yml');
      writeFileSync(file, JSON.stringify(resource.spec));
      const result = await execa(PROMTOOL!, ['check', 'rules', file], { reject: false });
      expect(result.exitCode, `${result.stdout}\n${result.stderr}`).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('alert and SLO rules as shipped', () => {
  it('every alert has a severity, a summary, a description and a runbook section that exists', () => {
    const runbook = readFileSync(path.join(REPO_ROOT, 'deploy/RUNBOOK.md'), 'utf8');
    const anchors = new Set(
      [...runbook.matchAll(/^#{2,3} (.+)$/gm)].map((match) =>
        match[1]!
          .trim()
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    expect(alerts.length).toBeGreaterThanOrEqual(12);
    for (const alert of alerts) {
      expect(['critical', 'warning'], alert.alert).toContain(alert.labels?.severity);
      expect(alert.annotations?.summary, alert.alert).toBeTruthy();
      expect(alert.annotations?.description, alert.alert).toBeTruthy();
      const url = alert.annotations?.runbook_url ?? '';
      expect(url, alert.alert).toMatch(/^deploy\/RUNBOOK\.md#/);
      expect(anchors, `${alert.alert}: no section "${url}" in deploy/RUNBOOK.md`).toContain(
        url.split('#')[1],
      );
    }
  });

  it('every alert has a unit test where it fires and one where it does not', () => {
    const fires = new Set<string>();
    const silent = new Set<string>();
    for (const file of testFiles) {
      const unit = parse(readFileSync(path.join(TESTS_DIR, file), 'utf8')) as UnitTestFile;
      expect(unit.rule_files.map((rule) => path.basename(rule)).sort(), file).toEqual(ruleFiles);
      for (const test of unit.tests) {
        for (const check of test.alert_rule_test ?? []) {
          (check.exp_alerts.length > 0 ? fires : silent).add(check.alertname);
        }
      }
    }
    const names = alerts.map((alert) => alert.alert!);
    expect(
      names.filter((name) => !fires.has(name)),
      'alerts never shown firing',
    ).toEqual([]);
    expect(
      names.filter((name) => !silent.has(name)),
      'alerts never shown silent',
    ).toEqual([]);
  });

  it('reads only series the proxy exports, its own recording rules, or named outside sources', () => {
    const exported = exportedSeriesNames();
    const recorded = new Set(rules.flatMap((rule) => (rule.record ? [rule.record] : [])));
    // Prometheus' own `up`, and kube-state-metrics for the Deployment and the autoscaler.
    const outside = (name: string) => name === 'up' || name.startsWith('kube_');
    const unknown = rules.flatMap((rule) =>
      metricNamesIn(rule.expr)
        .filter((name) => !exported.has(name) && !recorded.has(name) && !outside(name))
        .map((name) => `${rule.alert ?? rule.record}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('the PrometheusRule for prometheus-operator is rendered from the rule files (npm run rules)', () => {
    expect(readFileSync(PROMETHEUS_RULE_FILE, 'utf8'), 'run `npm run rules`').toBe(renderPrometheusRule());
  });

  it('the bundled Prometheus loads every rule file, in compose and in Kubernetes', () => {
    const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as {
      services: { prometheus: { volumes: string[] } };
    };
    expect(compose.services.prometheus.volumes).toContain(
      './deploy/prometheus/rules:/etc/prometheus/rules:ro',
    );
    for (const config of ['deploy/prometheus/prometheus.yml', 'deploy/k8s/base/monitoring/prometheus.yml']) {
      const parsed = parse(readFileSync(path.join(REPO_ROOT, config), 'utf8')) as { rule_files: string[] };
      expect(parsed.rule_files, config).toEqual(['rules/*.yml']);
    }
    const kustomization = parse(readFileSync(path.join(PROMETHEUS_DIR, 'kustomization.yaml'), 'utf8')) as {
      configMapGenerator: Array<{ name: string; files: string[] }>;
    };
    const generated = kustomization.configMapGenerator.find((item) => item.name === 'prometheus-rules');
    expect(generated?.files.map((entry) => entry.split('=')[1]).sort()).toEqual(
      ruleFiles.map((file) => `rules/${file}`),
    );
    const deployment = readFileSync(
      path.join(REPO_ROOT, 'deploy/k8s/base/monitoring/prometheus.yaml'),
      'utf8',
    );
    for (const file of ruleFiles) expect(deployment).toContain(`path: rules/${file}`);
  });
});
