/**
 * What `deploy` adjusts in the rendered objects, after kustomize, because it depends on the target
 * rather than on the overlay:
 *   - cluster-scoped objects (ClusterRoles and their bindings) are named after the namespace, so two
 *     installs never share one, and every object carries app.kubernetes.io/instance=<namespace>,
 *     which says which install owns it (see ownership.ts);
 *   - the Ingress hosts of Grafana and Prometheus, when given;
 *   - the Prometheus the autoscaler reads (prometheus-adapter's --prometheus-url, KEDA's trigger).
 */
import type { InstallChoices } from './choices.js';
import { containersOf, isRecord, type Manifest } from './manifests.js';

export const INSTANCE_LABEL = 'app.kubernetes.io/instance';

/** Kinds without a namespace that this project renders. */
export const CLUSTER_SCOPED_KINDS = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'APIService',
  'CustomResourceDefinition',
  'StorageClass',
  'PriorityClass',
  'IngressClass',
]);

/** Cluster-scoped kinds whose name is ours to choose (an APIService's name is fixed by its group). */
const RENAMED_KINDS = new Set(['ClusterRole', 'ClusterRoleBinding']);

export function isClusterScoped(manifest: Pick<Manifest, 'kind'>): boolean {
  return CLUSTER_SCOPED_KINDS.has(manifest.kind);
}

/** `<namespace>-<name>`, unless the name already starts with the namespace. */
function scopedName(namespace: string, name: string): string {
  return name.startsWith(`${namespace}-`) ? name : `${namespace}-${name}`;
}

export function scopeToInstall(manifests: Manifest[], namespace: string): void {
  const renamed = new Map<string, string>();
  for (const manifest of manifests) {
    if (!RENAMED_KINDS.has(manifest.kind)) continue;
    const name = scopedName(namespace, manifest.metadata.name);
    if (manifest.kind === 'ClusterRole') renamed.set(manifest.metadata.name, name);
    manifest.metadata.name = name;
  }
  for (const manifest of manifests) {
    if (manifest.kind === 'ClusterRoleBinding' && isRecord(manifest.roleRef)) {
      const role = manifest.roleRef.name;
      if (manifest.roleRef.kind === 'ClusterRole' && typeof role === 'string' && renamed.has(role)) {
        manifest.roleRef.name = renamed.get(role);
      }
    }
    manifest.metadata.labels = { ...manifest.metadata.labels, [INSTANCE_LABEL]: namespace };
  }
}

function setIngressHost(manifests: Manifest[], name: string, host: string): void {
  const ingress = manifests.find(
    (manifest) => manifest.kind === 'Ingress' && manifest.metadata.name === name,
  );
  if (!ingress || !isRecord(ingress.spec) || !Array.isArray(ingress.spec.rules)) return;
  for (const rule of ingress.spec.rules) if (isRecord(rule)) rule.host = host;
  if (Array.isArray(ingress.spec.tls)) {
    for (const tls of ingress.spec.tls) if (isRecord(tls)) tls.hosts = [host];
  }
}

function setPrometheusUrl(manifests: Manifest[], url: string, namespace: string): void {
  const base = url.replace(/\/+$/, '');
  for (const manifest of manifests) {
    if (manifest.kind === 'Deployment' && manifest.metadata.name === 'prometheus-adapter') {
      for (const container of containersOf(manifest)) {
        if (!Array.isArray(container.args)) continue;
        container.args = container.args.map((arg: unknown) =>
          typeof arg === 'string' && arg.startsWith('--prometheus-url=') ? `--prometheus-url=${base}/` : arg,
        );
      }
    }
    if (
      manifest.kind === 'ScaledObject' &&
      isRecord(manifest.spec) &&
      Array.isArray(manifest.spec.triggers)
    ) {
      for (const trigger of manifest.spec.triggers) {
        if (!isRecord(trigger) || trigger.type !== 'prometheus' || !isRecord(trigger.metadata)) continue;
        trigger.metadata.serverAddress = base;
        if (typeof trigger.metadata.query === 'string') {
          trigger.metadata.query = trigger.metadata.query.replace(
            /namespace="[^"]*"/,
            `namespace="${namespace}"`,
          );
        }
      }
    }
  }
}

export function applyChoices(manifests: Manifest[], choices: InstallChoices, namespace: string): void {
  if (choices.grafanaHost) setIngressHost(manifests, 'grafana', choices.grafanaHost);
  if (choices.prometheusHost) setIngressHost(manifests, 'prometheus', choices.prometheusHost);
  // KEDA's operator runs in its own namespace: the bundled Prometheus is named with ours.
  setPrometheusUrl(manifests, choices.prometheusUrl ?? `http://prometheus.${namespace}.svc:9090`, namespace);
}
