/** Stage ordering as pure logic: no kubectl, no cluster. */
import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/deploy/manifests.js';
import { buildPlan, planNamespace, stageManifests } from '../../src/deploy/plan.js';
import { placeManifest, STAGE_IDS, STAGES, UNKNOWN_KIND_STAGE } from '../../src/deploy/stages.js';

function object(
  kind: string,
  name: string,
  extra: Partial<Manifest> & { component?: string } = {},
): Manifest {
  const { component, ...rest } = extra;
  return {
    apiVersion: 'v1',
    kind,
    metadata: {
      name,
      namespace: kind === 'Namespace' ? undefined : 'shop',
      labels: component ? { 'app.kubernetes.io/component': component } : {},
    },
    ...rest,
  };
}

function workload(kind: string, name: string, component?: string): Manifest {
  return object(kind, name, {
    apiVersion: kind === 'Job' ? 'batch/v1' : 'apps/v1',
    component,
    spec: { selector: { matchLabels: { app: name } }, template: { spec: { containers: [] } } },
  });
}

/** Deliberately shuffled: the plan must not depend on input order. */
const SHUFFLED: Manifest[] = [
  object('Ingress', 'web', { component: 'ingress' }),
  object('HorizontalPodAutoscaler', 'proxy', { component: 'autoscaling' }),
  workload('Deployment', 'prometheus', 'monitoring'),
  workload('Deployment', 'proxy', 'proxy'),
  object('Service', 'proxy', { component: 'proxy' }),
  workload('Job', 'migrate', 'migration'),
  workload('StatefulSet', 'postgres', 'database'),
  object('Service', 'postgres', { component: 'database' }),
  object('ConfigMap', 'settings', { component: 'proxy' }),
  object('PodDisruptionBudget', 'proxy', { component: 'autoscaling' }),
  object('ClusterRole', 'reader', { component: 'autoscaling' }),
  object('ServiceAccount', 'prometheus', { component: 'monitoring' }),
  object('Namespace', 'shop'),
];

function stageOf(plan: ReturnType<typeof buildPlan>, ref: string): string | undefined {
  return plan.stages.find((stage) => stage.entries.some((entry) => entry.ref === ref))?.id;
}

describe('stages', () => {
  it('are the documented eight, in dependency order', () => {
    expect(STAGES.map((stage) => stage.id)).toEqual([
      'namespace',
      'config',
      'database',
      'database-ready',
      'migrate',
      'proxy',
      'monitoring',
      'ingress',
    ]);
    expect(STAGE_IDS).toEqual(STAGES.map((stage) => stage.id));
  });

  it('places configuration kinds by kind whatever their component label says', () => {
    expect(placeManifest(object('ConfigMap', 'x', { component: 'proxy' })).stage).toBe('config');
    expect(placeManifest(object('ClusterRoleBinding', 'x', { component: 'autoscaling' })).stage).toBe(
      'config',
    );
    expect(placeManifest(object('CustomResourceDefinition', 'x')).stage).toBe('namespace');
  });

  it('places workloads by component label first, then by kind', () => {
    expect(placeManifest(object('Service', 'db', { component: 'database' })).stage).toBe('database');
    expect(placeManifest(object('Service', 'plain')).stage).toBe('proxy');
    expect(placeManifest(workload('Deployment', 'grafana', 'monitoring')).stage).toBe('monitoring');
    expect(placeManifest(workload('StatefulSet', 'cache')).stage).toBe('database');
    expect(placeManifest(workload('Job', 'once')).stage).toBe('migrate');
    expect(placeManifest(object('PodDisruptionBudget', 'x')).stage).toBe('monitoring');
    expect(placeManifest(object('Ingress', 'x')).stage).toBe('ingress');
  });

  it('puts a kind it does not know in the documented stage and marks it', () => {
    const unknown = object('ServiceMonitor', 'proxy');
    expect(placeManifest(unknown)).toEqual({ stage: UNKNOWN_KIND_STAGE, unknownKind: true });
    expect(UNKNOWN_KIND_STAGE).toBe('monitoring');
    // A recognised component label is an explicit placement, not a guess.
    expect(placeManifest(object('ServiceMonitor', 'proxy', { component: 'ingress' }))).toEqual({
      stage: 'ingress',
      unknownKind: false,
    });
  });
});

describe('buildPlan', () => {
  it('sorts shuffled objects into stages and keeps every one of them', () => {
    const plan = buildPlan(SHUFFLED);
    expect(plan.namespace).toBe('shop');
    expect(plan.stages.flatMap((stage) => stage.entries.map((entry) => entry.ref)).sort()).toEqual(
      SHUFFLED.map((manifest) => `${manifest.kind}/${manifest.metadata.name}`).sort(),
    );
    expect(stageOf(plan, 'Namespace/shop')).toBe('namespace');
    expect(stageOf(plan, 'ConfigMap/settings')).toBe('config');
    expect(stageOf(plan, 'ServiceAccount/prometheus')).toBe('config');
    expect(stageOf(plan, 'ClusterRole/reader')).toBe('config');
    expect(stageOf(plan, 'StatefulSet/postgres')).toBe('database');
    expect(stageOf(plan, 'Service/postgres')).toBe('database');
    expect(stageOf(plan, 'Job/migrate')).toBe('migrate');
    expect(stageOf(plan, 'Deployment/proxy')).toBe('proxy');
    expect(stageOf(plan, 'Service/proxy')).toBe('proxy');
    expect(stageOf(plan, 'HorizontalPodAutoscaler/proxy')).toBe('monitoring');
    expect(stageOf(plan, 'PodDisruptionBudget/proxy')).toBe('monitoring');
    expect(stageOf(plan, 'Deployment/prometheus')).toBe('monitoring');
    expect(stageOf(plan, 'Ingress/web')).toBe('ingress');
  });

  it('is independent of the input order', () => {
    const forward = buildPlan(SHUFFLED);
    const backward = buildPlan([...SHUFFLED].reverse());
    const refs = (plan: typeof forward) =>
      plan.stages.map((stage) => stage.entries.map((entry) => entry.ref));
    expect(refs(backward)).toEqual(refs(forward));
  });

  it('orders objects inside a stage: Services before the workloads that use them', () => {
    const proxy = buildPlan(SHUFFLED).stages.find((stage) => stage.id === 'proxy')!;
    expect(proxy.entries.map((entry) => entry.ref)).toEqual(['Service/proxy', 'Deployment/proxy']);
  });

  it('keeps an unknown kind, in the unknown-kind stage, with a note saying so', () => {
    const plan = buildPlan([...SHUFFLED, object('Gizmo', 'thing')]);
    const entry = plan.stages.flatMap((stage) => stage.entries).find((item) => item.ref === 'Gizmo/thing');
    expect(entry).toBeDefined();
    expect(entry!.unknownKind).toBe(true);
    expect(entry!.note).toMatch(/not known to the planner/);
    expect(stageOf(plan, 'Gizmo/thing')).toBe(UNKNOWN_KIND_STAGE);
  });

  it('waits: database-ready waits for the database workloads (rollout, then pods Ready)', () => {
    const plan = buildPlan(SHUFFLED);
    const byId = Object.fromEntries(plan.stages.map((stage) => [stage.id, stage]));
    expect(byId.database!.waits).toEqual([]);
    expect(byId['database-ready']!.entries).toEqual([]);
    expect(byId['database-ready']!.waits.map((wait) => `${wait.kind} ${wait.ref} ${wait.selector}`)).toEqual([
      'rollout StatefulSet/postgres app=postgres',
      'pods-ready StatefulSet/postgres app=postgres',
    ]);
    expect(byId.migrate!.waits.map((wait) => `${wait.kind} ${wait.ref} ${wait.selector}`)).toEqual([
      'job Job/migrate job-name=migrate',
    ]);
    expect(byId.proxy!.waits.map((wait) => `${wait.kind} ${wait.ref}`)).toEqual(['rollout Deployment/proxy']);
    expect(byId.monitoring!.waits.map((wait) => `${wait.kind} ${wait.ref}`)).toEqual([
      'rollout Deployment/prometheus',
    ]);
    expect(byId.namespace!.waits).toEqual([]);
    // The ingress stage waits until the controller gives each Ingress an address.
    expect(byId.ingress!.waits.map((wait) => `${wait.kind} ${wait.ref}`)).toEqual(['address Ingress/web']);
  });

  it('adds generated objects (the Secret) to their stage without a manifest to apply', () => {
    const plan = buildPlan(SHUFFLED, [
      { stage: 'config', kind: 'Secret', name: 'creds', note: 'made at deploy time' },
    ]);
    const config = plan.stages.find((stage) => stage.id === 'config')!;
    const secret = config.entries.find((entry) => entry.ref === 'Secret/creds');
    expect(secret).toMatchObject({ manifest: undefined, note: 'made at deploy time' });
    expect(stageManifests(config).map((manifest) => manifest.kind)).not.toContain('Secret');
  });

  it('numbers stages from 1 and keeps empty ones (they show as nothing to do)', () => {
    const plan = buildPlan([object('Namespace', 'solo')]);
    expect(plan.stages.map((stage) => stage.number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(plan.stages.filter((stage) => stage.entries.length > 0).map((stage) => stage.id)).toEqual([
      'namespace',
    ]);
  });
});

describe('planNamespace', () => {
  it('takes the Namespace object, else the most used namespace, else default', () => {
    expect(planNamespace(SHUFFLED)).toBe('shop');
    expect(planNamespace([object('ConfigMap', 'a'), object('Service', 'b')])).toBe('shop');
    expect(planNamespace([{ apiVersion: 'v1', kind: 'ClusterRole', metadata: { name: 'x' } }])).toBe(
      'default',
    );
  });
});
