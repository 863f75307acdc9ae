/**
 * Which install owns a cluster-scoped object. Names of ClusterRoles and their bindings carry the
 * namespace (customize.ts), but an APIService's name is fixed by the API it serves, and a cluster
 * may already run one (kube-prometheus-stack's prometheus-adapter serves custom.metrics.k8s.io).
 * Before applying, every cluster-scoped object the plan holds is looked up: one that exists and
 * does not carry our app.kubernetes.io/instance label belongs to someone else, and the deploy stops
 * instead of taking it over. `destroy` deletes only the cluster-scoped objects that are ours.
 */
import { RuntimeFailure, UsageError } from '../errors.js';
import { CLUSTER_SCOPED_KINDS, INSTANCE_LABEL } from './customize.js';
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { isRecord, type Manifest, refOf, toYaml } from './manifests.js';
import { type Plan, stageManifests } from './plan.js';

export interface ForeignObject {
  ref: string;
  /** Who owns it, as far as its labels tell. */
  owner: string;
}

function clusterObjects(plan: Plan): Manifest[] {
  // The namespace is ours by name: an existing one (made by hand, say) is deployed into.
  return plan.stages
    .flatMap(stageManifests)
    .filter((manifest) => CLUSTER_SCOPED_KINDS.has(manifest.kind) && manifest.kind !== 'Namespace');
}

function ownerOf(live: Record<string, unknown>): string {
  const metadata = isRecord(live.metadata) ? live.metadata : {};
  const labels = isRecord(metadata.labels) ? metadata.labels : {};
  const annotations = isRecord(metadata.annotations) ? metadata.annotations : {};
  if (typeof labels[INSTANCE_LABEL] === 'string' && labels['app.kubernetes.io/part-of'] === 'meli-proxy') {
    return `the meli-proxy install in namespace ${labels[INSTANCE_LABEL]}`;
  }
  const release = annotations['meta.helm.sh/release-name'];
  if (typeof release === 'string') {
    const namespace = annotations['meta.helm.sh/release-namespace'];
    return `Helm release ${release}${typeof namespace === 'string' ? ` in namespace ${namespace}` : ''}`;
  }
  const service = isRecord(live.spec) && isRecord(live.spec.service) ? live.spec.service : undefined;
  if (service && typeof service.name === 'string') {
    return `the Service ${String(service.namespace ?? '?')}/${service.name}`;
  }
  return 'something other than this install';
}

/** The live cluster-scoped objects of the plan that exist, keyed by `Kind/name`. */
async function liveClusterObjects(
  run: RunKubectl,
  plan: Plan,
): Promise<Map<string, Record<string, unknown>>> {
  const wanted = clusterObjects(plan);
  const found = new Map<string, Record<string, unknown>>();
  if (wanted.length === 0) return found;
  const result = await run({
    args: ['get', '--filename', '-', '--ignore-not-found', '--output', 'json'],
    input: toYaml(wanted),
    timeoutMs: 30_000,
  });
  if (result.exitCode !== 0) {
    throw new RuntimeFailure(`Cannot look up the cluster-wide objects: ${firstErrorLine(result)}`);
  }
  if (result.stdout.trim() === '') return found;
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout);
  } catch {
    throw new RuntimeFailure('kubectl get printed something other than JSON.');
  }
  const items = isRecord(parsed) && Array.isArray(parsed.items) ? parsed.items : [parsed];
  for (const item of items) {
    if (!isRecord(item) || typeof item.kind !== 'string' || !isRecord(item.metadata)) continue;
    found.set(`${item.kind}/${String(item.metadata.name)}`, item);
  }
  return found;
}

function ours(live: Record<string, unknown>, namespace: string): boolean {
  const metadata = isRecord(live.metadata) ? live.metadata : {};
  return isRecord(metadata.labels) && metadata.labels[INSTANCE_LABEL] === namespace;
}

/** The plan's cluster-scoped objects that exist and belong to someone else. */
export async function foreignObjects(run: RunKubectl, plan: Plan): Promise<ForeignObject[]> {
  const live = await liveClusterObjects(run, plan);
  const foreign: ForeignObject[] = [];
  for (const manifest of clusterObjects(plan)) {
    const object = live.get(refOf(manifest));
    if (object && !ours(object, plan.namespace))
      foreign.push({ ref: refOf(manifest), owner: ownerOf(object) });
  }
  return foreign;
}

/** Stops (exit 2) before anything is applied when the plan would take over someone else's object. */
export async function assertNothingForeign(run: RunKubectl, plan: Plan): Promise<void> {
  const foreign = await foreignObjects(run, plan);
  if (foreign.length === 0) return;
  const lines = foreign.map((item) => `  ${item.ref} belongs to ${item.owner}`);
  const apiService = foreign.some((item) => item.ref.startsWith('APIService/'));
  const hint = apiService
    ? 'The cluster already serves custom metrics. Deploy with --autoscaler keda (external metrics, no APIService), ' +
      'or add the rule in deploy/k8s/base/monitoring/prometheus-adapter-rules.yaml to the adapter that serves them ' +
      'and drop prometheus-adapter from your overlay (deploy/README.md, "Pluggable components").'
    : 'Deploy into another namespace, or remove the other install first.';
  throw new UsageError(
    `These cluster-wide objects exist and are not this install's; nothing was applied:\n${lines.join('\n')}\n${hint}`,
  );
}

/** The plan's cluster-scoped objects that exist and are ours (what destroy may delete). */
export async function ownedClusterRefs(run: RunKubectl, plan: Plan): Promise<Set<string>> {
  const live = await liveClusterObjects(run, plan);
  const owned = new Set<string>();
  for (const [ref, object] of live) if (ours(object, plan.namespace)) owned.add(ref);
  return owned;
}
