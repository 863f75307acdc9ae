/**
 * The deployment stages, in dependency order, and the rule that puts each rendered object in one.
 *
 *   1 namespace      Namespace (and cluster-wide prerequisites: CRDs, StorageClasses, PriorityClasses)
 *   2 config         ConfigMaps, Secrets, ServiceAccounts, RBAC, quotas, network policies
 *   3 database       PostgreSQL's StatefulSet, Service and volume claims
 *   4 database-ready waits for stage 3's workloads: rollout complete, pods Ready
 *   5 migrate        the schema migration Job; waits until it completes (or fails)
 *   6 proxy          the proxy Deployment and its Services; waits for the rollout
 *   7 monitoring     HorizontalPodAutoscaler, PodDisruptionBudget, Prometheus, prometheus-adapter,
 *                    Grafana; waits for their rollouts
 *   7 monitoring     … and the custom-metrics APIService Available
 *   8 ingress        Ingresses; waits until the controller gives each an address
 *
 * How an object is placed, first rule that applies:
 *   a. kinds that never depend on a workload (stages 1 and 2) go by kind alone;
 *   b. otherwise the `app.kubernetes.io/component` label: database, migration, proxy,
 *      monitoring | autoscaling, ingress;
 *   c. otherwise the kind's usual stage (StatefulSet → database, Job → migrate, Deployment → proxy, …);
 *   d. anything else (a custom resource, a kind this table does not know) goes to `monitoring`
 *      (UNKNOWN_KIND_STAGE): by then CRDs from stage 1 are established and the proxy runs, and nothing
 *      earlier can depend on a kind we cannot name. It is applied, never dropped, and the plan marks it.
 */
import { labelOf, type Manifest } from './manifests.js';

export const STAGE_IDS = [
  'namespace',
  'config',
  'database',
  'database-ready',
  'migrate',
  'proxy',
  'monitoring',
  'ingress',
] as const;

export type StageId = (typeof STAGE_IDS)[number];

export interface StageDefinition {
  id: StageId;
  title: string;
  /** Whose workloads this stage waits for: its own, another stage's (database-ready), or none. */
  waitsFor: StageId | undefined;
  /** Objects go in here (false for a stage that only waits). */
  applies: boolean;
}

export const STAGES: readonly StageDefinition[] = [
  { id: 'namespace', title: 'namespace', waitsFor: undefined, applies: true },
  { id: 'config', title: 'config and secrets', waitsFor: undefined, applies: true },
  // Applying the database and waiting for it are two stages so the plan shows the wait.
  { id: 'database', title: 'storage and database', waitsFor: undefined, applies: true },
  { id: 'database-ready', title: 'database ready', waitsFor: 'database', applies: false },
  { id: 'migrate', title: 'migration job complete', waitsFor: 'migrate', applies: true },
  { id: 'proxy', title: 'proxy rollout ready', waitsFor: 'proxy', applies: true },
  { id: 'monitoring', title: 'autoscaling and monitoring', waitsFor: 'monitoring', applies: true },
  { id: 'ingress', title: 'ingress', waitsFor: 'ingress', applies: true },
];

export const UNKNOWN_KIND_STAGE: StageId = 'monitoring';

export const COMPONENT_LABEL = 'app.kubernetes.io/component';

/** Rule a: placed by kind whatever their labels say. */
const FOUNDATION_KINDS: Readonly<Record<string, StageId>> = {
  Namespace: 'namespace',
  CustomResourceDefinition: 'namespace',
  StorageClass: 'namespace',
  PriorityClass: 'namespace',
  RuntimeClass: 'namespace',
  ConfigMap: 'config',
  Secret: 'config',
  ServiceAccount: 'config',
  Role: 'config',
  RoleBinding: 'config',
  ClusterRole: 'config',
  ClusterRoleBinding: 'config',
  NetworkPolicy: 'config',
  LimitRange: 'config',
  ResourceQuota: 'config',
};

/** Rule b. */
const COMPONENT_STAGES: Readonly<Record<string, StageId>> = {
  database: 'database',
  migration: 'migrate',
  proxy: 'proxy',
  monitoring: 'monitoring',
  autoscaling: 'monitoring',
  ingress: 'ingress',
};

/** Rule c. */
const KIND_STAGES: Readonly<Record<string, StageId>> = {
  PersistentVolume: 'database',
  PersistentVolumeClaim: 'database',
  StatefulSet: 'database',
  Job: 'migrate',
  Deployment: 'proxy',
  DaemonSet: 'proxy',
  ReplicaSet: 'proxy',
  Pod: 'proxy',
  Service: 'proxy',
  HorizontalPodAutoscaler: 'monitoring',
  PodDisruptionBudget: 'monitoring',
  APIService: 'monitoring',
  CronJob: 'monitoring',
  Ingress: 'ingress',
  IngressClass: 'ingress',
};

export interface Placement {
  stage: StageId;
  /** True when rule d placed it: the kind is unknown to this table. */
  unknownKind: boolean;
}

export function placeManifest(manifest: Manifest): Placement {
  const foundation = FOUNDATION_KINDS[manifest.kind];
  if (foundation) return { stage: foundation, unknownKind: false };
  const component = labelOf(manifest, COMPONENT_LABEL);
  const byComponent = component === undefined ? undefined : COMPONENT_STAGES[component];
  const byKind = KIND_STAGES[manifest.kind];
  if (byComponent) return { stage: byComponent, unknownKind: false };
  if (byKind) return { stage: byKind, unknownKind: false };
  return { stage: UNKNOWN_KIND_STAGE, unknownKind: true };
}

/** Inside a stage, objects are applied in this order (then by name), like Helm's install order. */
const KIND_ORDER = [
  'Namespace',
  'CustomResourceDefinition',
  'StorageClass',
  'PriorityClass',
  'ServiceAccount',
  'Secret',
  'ConfigMap',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'Service',
  'StatefulSet',
  'Deployment',
  'DaemonSet',
  'Job',
  'APIService',
  'HorizontalPodAutoscaler',
  'PodDisruptionBudget',
  'IngressClass',
  'Ingress',
];

export function compareWithinStage(a: Manifest, b: Manifest): number {
  const rank = (kind: string): number => {
    const index = KIND_ORDER.indexOf(kind);
    return index === -1 ? KIND_ORDER.length : index;
  };
  return (
    rank(a.kind) - rank(b.kind) ||
    a.kind.localeCompare(b.kind) ||
    a.metadata.name.localeCompare(b.metadata.name)
  );
}

export function stageDefinition(id: StageId): StageDefinition {
  const found = STAGES.find((stage) => stage.id === id);
  if (!found) throw new Error(`unknown stage ${id}`);
  return found;
}
