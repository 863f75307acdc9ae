/**
 * What the cluster must already run for the plan to work, checked before anything is applied and
 * shown by `deploy status`: the IngressClass the Ingresses name (an ingress controller),
 * metrics-server (the autoscaler's CPU target; without it the autoscaler never scales down), and
 * the custom resource definitions of the optional components (KEDA, prometheus-operator).
 * A missing one is reported with the command that installs it, instead of a wait that never ends.
 */
import { UsageError } from '../errors.js';
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { isRecord, type Manifest } from './manifests.js';
import { type Plan, stageManifests } from './plan.js';

export interface PrerequisiteStatus {
  name: string;
  ok: boolean;
  detail: string;
  /** How to install it, when missing. */
  install: string;
}

interface CustomKind {
  crd: string;
  what: string;
  install: string;
}

const CUSTOM_KINDS: Readonly<Record<string, CustomKind>> = {
  ScaledObject: {
    crd: 'scaledobjects.keda.sh',
    what: 'KEDA',
    install:
      'helm install keda keda --repo https://kedacore.github.io/charts --namespace keda --create-namespace',
  },
  PodMonitor: {
    crd: 'podmonitors.monitoring.coreos.com',
    what: 'prometheus-operator',
    install:
      'helm install kube-prometheus-stack kube-prometheus-stack --repo https://prometheus-community.github.io/helm-charts --namespace monitoring --create-namespace',
  },
};

const INGRESS_NGINX_INSTALL =
  'helm upgrade --install ingress-nginx ingress-nginx --repo https://kubernetes.github.io/ingress-nginx --namespace ingress-nginx --create-namespace';
const METRICS_SERVER_INSTALL =
  'kubectl apply -f https://github.com/kubernetes-sigs/metrics-server/releases/latest/download/components.yaml';

const LOOKUP_TIMEOUT_MS = 20_000;

async function exists(run: RunKubectl, args: string[]): Promise<{ found: boolean; error?: string }> {
  const result = await run({
    args: ['get', ...args, '--ignore-not-found', '--output', 'name'],
    timeoutMs: LOOKUP_TIMEOUT_MS,
  });
  if (result.exitCode !== 0 || result.timedOut) {
    return { found: false, error: result.timedOut ? 'no answer' : firstErrorLine(result) };
  }
  return { found: result.stdout.trim() !== '' };
}

/** An APIService's Available condition: "Available", or why not. */
export async function apiServiceAvailability(run: RunKubectl, name: string): Promise<string> {
  const result = await run({
    args: ['get', 'apiservice', name, '--ignore-not-found', '--output', 'json'],
    timeoutMs: LOOKUP_TIMEOUT_MS,
  });
  if (result.exitCode !== 0 || result.timedOut) return `not readable (${firstErrorLine(result)})`;
  if (result.stdout.trim() === '') return 'not installed';
  try {
    const parsed: unknown = JSON.parse(result.stdout);
    const conditions =
      isRecord(parsed) && isRecord(parsed.status) && Array.isArray(parsed.status.conditions)
        ? parsed.status.conditions
        : [];
    const available = conditions.find((item) => isRecord(item) && item.type === 'Available');
    if (isRecord(available) && available.status === 'True') return 'Available';
    const reason = isRecord(available)
      ? String(available.reason ?? available.message ?? 'unknown')
      : 'no status';
    return `not available (${reason})`;
  } catch {
    return 'not readable (not JSON)';
  }
}

function ingressClasses(manifests: readonly Manifest[]): string[] {
  const names = new Set<string>();
  for (const manifest of manifests) {
    if (manifest.kind !== 'Ingress' || !isRecord(manifest.spec)) continue;
    if (typeof manifest.spec.ingressClassName === 'string') names.add(manifest.spec.ingressClassName);
  }
  return [...names].sort();
}

export async function checkPrerequisites(run: RunKubectl, plan: Plan): Promise<PrerequisiteStatus[]> {
  const manifests = plan.stages.flatMap(stageManifests);
  const statuses: PrerequisiteStatus[] = [];
  for (const name of ingressClasses(manifests)) {
    const { found, error } = await exists(run, ['ingressclass', name]);
    statuses.push({
      name: `IngressClass ${name} (ingress controller)`,
      ok: found,
      detail: found ? 'present' : (error ?? 'missing'),
      install: INGRESS_NGINX_INSTALL,
    });
  }
  if (manifests.some((m) => m.kind === 'HorizontalPodAutoscaler' || m.kind === 'ScaledObject')) {
    const availability = await apiServiceAvailability(run, 'v1beta1.metrics.k8s.io');
    statuses.push({
      name: 'metrics-server (CPU metrics for the autoscaler)',
      ok: availability === 'Available',
      detail: availability,
      install: METRICS_SERVER_INSTALL,
    });
  }
  for (const kind of new Set(manifests.map((manifest) => manifest.kind))) {
    const custom = CUSTOM_KINDS[kind];
    if (!custom) continue;
    const { found, error } = await exists(run, ['customresourcedefinition', custom.crd]);
    statuses.push({
      name: `${custom.what} (${custom.crd})`,
      ok: found,
      detail: found ? 'present' : (error ?? 'missing'),
      install: custom.install,
    });
  }
  return statuses;
}

/** Stops (exit 2) with each missing prerequisite and its install command. */
export function assertPrerequisites(statuses: readonly PrerequisiteStatus[]): void {
  const missing = statuses.filter((status) => !status.ok);
  if (missing.length === 0) return;
  const lines = missing.map((status) => `  ${status.name}: ${status.detail}\n    install: ${status.install}`);
  throw new UsageError(
    `The cluster lacks what this deployment needs; nothing was applied:\n${lines.join('\n')}\n` +
      'Install it and run deploy again, or pass --skip-prerequisites to deploy anyway.',
  );
}
