/**
 * The parts of an install an operator may swap for what the cluster already runs, chosen with
 * `deploy` flags and realised as kustomize components (deploy/k8s/components):
 *   --database external        a PostgreSQL outside the cluster (MELI_PROXY_DATABASE_URL)
 *   --prometheus operator      the cluster's prometheus-operator scrapes the proxy (PodMonitor)
 *   --autoscaler keda          KEDA's ScaledObject instead of prometheus-adapter and the HPA
 *   --expose-prometheus        the bundled Prometheus on its own Ingress host, behind basic auth
 */
import { UsageError } from '../errors.js';

export const DATABASES = ['in-cluster', 'external'] as const;
export const PROMETHEUSES = ['bundled', 'operator'] as const;
export const AUTOSCALERS = ['prometheus-adapter', 'keda'] as const;

export type DatabaseChoice = (typeof DATABASES)[number];
export type PrometheusChoice = (typeof PROMETHEUSES)[number];
export type AutoscalerChoice = (typeof AUTOSCALERS)[number];

export interface InstallChoices {
  database: DatabaseChoice;
  prometheus: PrometheusChoice;
  autoscaler: AutoscalerChoice;
  exposePrometheus: boolean;
  /** Where the autoscaler reads metrics; undefined means the bundled Prometheus. */
  prometheusUrl: string | undefined;
  grafanaHost: string | undefined;
  prometheusHost: string | undefined;
}

export interface ChoiceFlags {
  database?: string | undefined;
  prometheus?: string | undefined;
  autoscaler?: string | undefined;
  exposePrometheus?: boolean | undefined;
  prometheusUrl?: string | undefined;
  grafanaHost?: string | undefined;
  prometheusHost?: string | undefined;
}

/** The usual address of kube-prometheus-stack's Prometheus. */
export const OPERATOR_PROMETHEUS_URL = 'http://prometheus-operated.monitoring.svc:9090';

const HOST = /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

function oneOf<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`Invalid ${flag} "${value}": expected one of ${allowed.join(', ')}.`);
}

function host(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!HOST.test(value)) {
    throw new UsageError(`Invalid ${flag} "${value}": expected a DNS host name such as grafana.example.com.`);
  }
  return value;
}

/** Validates the flags; an external database is the default when MELI_PROXY_DATABASE_URL is set. */
export function parseChoices(flags: ChoiceFlags, env: NodeJS.ProcessEnv): InstallChoices {
  const urlGiven = Boolean(env.MELI_PROXY_DATABASE_URL || env.MELI_PROXY_DATABASE_URL_FILE);
  const database = oneOf('--database', flags.database, DATABASES, urlGiven ? 'external' : 'in-cluster');
  if (database === 'external' && !urlGiven) {
    throw new UsageError(
      '--database external needs the database URL: set MELI_PROXY_DATABASE_URL (or MELI_PROXY_DATABASE_URL_FILE).',
    );
  }
  if (database === 'in-cluster' && urlGiven) {
    throw new UsageError(
      'MELI_PROXY_DATABASE_URL is set but --database in-cluster was chosen: unset it, or drop --database to use that database.',
    );
  }
  const prometheus = oneOf('--prometheus', flags.prometheus, PROMETHEUSES, 'bundled');
  const autoscaler = oneOf('--autoscaler', flags.autoscaler, AUTOSCALERS, 'prometheus-adapter');
  const exposePrometheus = flags.exposePrometheus === true;
  if (exposePrometheus && prometheus === 'operator') {
    throw new UsageError(
      '--expose-prometheus exposes the bundled Prometheus, which --prometheus operator leaves out.',
    );
  }
  let prometheusUrl = flags.prometheusUrl;
  if (prometheusUrl !== undefined && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(prometheusUrl)) {
    throw new UsageError(`Invalid --prometheus-url "${prometheusUrl}": expected an http:// or https:// URL.`);
  }
  if (prometheusUrl === undefined && prometheus === 'operator') prometheusUrl = OPERATOR_PROMETHEUS_URL;
  return {
    database,
    prometheus,
    autoscaler,
    exposePrometheus,
    prometheusUrl,
    grafanaHost: host('--grafana-host', flags.grafanaHost),
    prometheusHost: host('--prometheus-host', flags.prometheusHost),
  };
}

export const DEFAULT_CHOICES: InstallChoices = parseChoices({}, {});

/** The components that realise the choices, in the order they must be applied. */
export function componentsFor(choices: InstallChoices): string[] {
  const components: string[] = [];
  if (choices.database === 'external') components.push('external-database');
  // keda copies the replica bounds from the autoscaler that keda-replaces-adapter then removes.
  if (choices.autoscaler === 'keda') components.push('keda', 'keda-replaces-adapter');
  if (choices.prometheus === 'operator') components.push('prometheus-operator');
  if (choices.exposePrometheus) components.push('prometheus-ingress');
  return components;
}

/** Every combination of choices that gives a different rendering (for tests and documentation). */
export function everyCombination(): InstallChoices[] {
  const all: InstallChoices[] = [];
  for (const database of DATABASES) {
    for (const prometheus of PROMETHEUSES) {
      for (const autoscaler of AUTOSCALERS) {
        for (const exposePrometheus of [false, true]) {
          if (exposePrometheus && prometheus === 'operator') continue;
          all.push({
            ...DEFAULT_CHOICES,
            database,
            prometheus,
            autoscaler,
            exposePrometheus,
            prometheusUrl: prometheus === 'operator' ? OPERATOR_PROMETHEUS_URL : undefined,
          });
        }
      }
    }
  }
  return all;
}

/** "external database, KEDA", for titles and test names. */
export function describeChoices(choices: InstallChoices): string {
  const parts = [
    choices.database === 'external' ? 'external database' : 'in-cluster database',
    choices.prometheus === 'operator' ? 'prometheus-operator' : 'bundled Prometheus',
    choices.autoscaler === 'keda' ? 'KEDA' : 'prometheus-adapter',
  ];
  if (choices.exposePrometheus) parts.push('Prometheus exposed');
  return parts.join(', ');
}
