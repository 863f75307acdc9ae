/**
 * Every overlay with every combination of components renders, and every object in every rendering
 * passes strict validation against the Kubernetes OpenAPI models (unknown fields are errors). Each
 * component does what it says: an external database leaves no PostgreSQL, KEDA replaces the
 * autoscaler and the adapter with the overlay's replica bounds, prometheus-operator replaces the
 * bundled Prometheus and Grafana, an exposed Prometheus sits behind basic auth. Cluster-wide objects
 * are named per install, and every object says which install owns it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  describeChoices,
  everyCombination,
  type InstallChoices,
  OPERATOR_PROMETHEUS_URL,
} from '../../src/deploy/choices.js';
import { INSTANCE_LABEL } from '../../src/deploy/customize.js';
import { containersOf, type Manifest, podSpecOf } from '../../src/deploy/manifests.js';
import { PROMETHEUS_AUTH_SECRET } from '../../src/deploy/secrets.js';
import {
  find,
  list,
  modelFor,
  OVERLAYS,
  record,
  render,
  SKIP_RENDERING,
  templateLabels,
  workloads,
} from './manifests-helpers.js';
import { strictProblems } from './strict-schema.js';

interface Rendering {
  name: string;
  overlay: string;
  choices: InstallChoices;
  manifests: Manifest[];
}

const renderings: Rendering[] = [];
const of = (overlay: string, pick: (choices: InstallChoices) => boolean): Rendering[] =>
  renderings.filter((item) => item.overlay === overlay && pick(item.choices));

/** Renders a few at a time: each is one `kubectl kustomize` process. */
async function renderAll(): Promise<void> {
  const jobs = OVERLAYS.flatMap((overlay) => everyCombination().map((choices) => ({ overlay, choices })));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      renderings.push({
        name: `${job.overlay}: ${describeChoices(job.choices)}`,
        ...job,
        manifests: await render(job.overlay, { choices: job.choices }),
      });
    }
  };
  await Promise.all([worker(), worker(), worker()]);
}

const names = (manifests: readonly Manifest[], kind: string): string[] =>
  manifests.filter((manifest) => manifest.kind === kind).map((manifest) => manifest.metadata.name);

describe.skipIf(SKIP_RENDERING)('every overlay with every component combination', () => {
  beforeAll(renderAll, 240_000);

  it('renders all of them', () => {
    expect(renderings).toHaveLength(OVERLAYS.length * everyCombination().length);
    expect(new Set(renderings.map((item) => item.name)).size).toBe(renderings.length);
  });

  it("passes kubernetes-models' checks and strict validation: no unknown field anywhere", async () => {
    const problems: string[] = [];
    for (const rendering of renderings) {
      for (const manifest of rendering.manifests) {
        const Model = await modelFor(manifest);
        if (!Model) continue; // custom resources: checked strictly below
        try {
          new Model(manifest).validate();
        } catch (error) {
          problems.push(
            `${rendering.name} ${manifest.kind}/${manifest.metadata.name}: ${(error as Error).message}`,
          );
        }
      }
    }
    // One type-check over every rendering: every object, custom resources included.
    const all = renderings.flatMap((rendering) => rendering.manifests);
    for (const problem of strictProblems(all)) problems.push(`${problem.ref}: ${problem.message}`);
    expect(problems).toEqual([]);
  }, 120_000);

  it('gives every object the install label, and names cluster-wide RBAC after the namespace', () => {
    for (const { name, manifests } of renderings) {
      for (const manifest of manifests) {
        expect(manifest.metadata.labels?.[INSTANCE_LABEL], `${name} ${manifest.kind}`).toBe('meli-proxy');
      }
      for (const kind of ['ClusterRole', 'ClusterRoleBinding']) {
        for (const objectName of names(manifests, kind)) expect(objectName).toMatch(/^meli-proxy-/);
      }
      for (const binding of manifests.filter((m) => m.kind === 'ClusterRoleBinding')) {
        const role = record(binding.roleRef);
        if (String(role.name).startsWith('system:')) continue;
        expect(names(manifests, 'ClusterRole'), `${name} ${binding.metadata.name}`).toContain(role.name);
      }
    }
  });

  it('an external database leaves no PostgreSQL, volume or in-cluster database policy', () => {
    for (const { manifests } of of('production', (c) => c.database === 'external')) {
      expect(names(manifests, 'StatefulSet')).toEqual([]);
      expect(names(manifests, 'Service')).not.toContain('postgres');
      expect(names(manifests, 'NetworkPolicy')).not.toContain('postgres');
      const egress = find(manifests, 'NetworkPolicy', 'meli-proxy-external-database');
      expect(JSON.stringify(record(egress.spec).egress)).toContain('5432');
    }
    for (const { manifests } of of('production', (c) => c.database === 'in-cluster')) {
      expect(names(manifests, 'StatefulSet')).toEqual(['postgres']);
    }
  });

  it("KEDA replaces the autoscaler and the adapter, with the overlay's replica bounds", () => {
    for (const overlay of OVERLAYS) {
      const [adapter] = of(
        overlay,
        (c) => c.autoscaler === 'prometheus-adapter' && c.database === 'in-cluster',
      );
      const hpa = record(find(adapter!.manifests, 'HorizontalPodAutoscaler', 'meli-proxy').spec);
      for (const { manifests, choices } of of(overlay, (c) => c.autoscaler === 'keda')) {
        expect(names(manifests, 'HorizontalPodAutoscaler')).toEqual([]);
        expect(names(manifests, 'APIService')).toEqual([]);
        expect(names(manifests, 'ClusterRole')).toEqual([]);
        expect(names(manifests, 'Deployment')).not.toContain('prometheus-adapter');
        const scaled = record(find(manifests, 'ScaledObject', 'meli-proxy').spec);
        expect([scaled.minReplicaCount, scaled.maxReplicaCount]).toEqual([hpa.minReplicas, hpa.maxReplicas]);
        const trigger = list(scaled.triggers)
          .map(record)
          .find((item) => item.type === 'prometheus')!;
        expect(record(trigger.metadata).serverAddress).toBe(
          choices.prometheus === 'operator'
            ? OPERATOR_PROMETHEUS_URL
            : 'http://prometheus.meli-proxy.svc:9090',
        );
        expect(String(record(trigger.metadata).query)).toContain('namespace="meli-proxy"');
      }
    }
  });

  it("prometheus-operator replaces the bundled Prometheus and Grafana with a PodMonitor of the proxy's pods", () => {
    for (const { manifests, choices } of of('production', (c) => c.prometheus === 'operator')) {
      expect(names(manifests, 'Deployment').filter((n) => n === 'prometheus' || n === 'grafana')).toEqual([]);
      expect(names(manifests, 'Ingress')).toEqual(['meli-proxy']);
      const monitor = record(find(manifests, 'PodMonitor', 'meli-proxy').spec);
      const selector = record(record(monitor.selector).matchLabels) as Record<string, string>;
      const proxy = templateLabels(find(manifests, 'Deployment', 'meli-proxy'));
      expect(Object.entries(selector).every(([key, value]) => proxy[key] === value)).toBe(true);
      if (choices.autoscaler === 'prometheus-adapter') {
        const args = containersOf(find(manifests, 'Deployment', 'prometheus-adapter'))[0]!.args;
        expect(args).toContain(`--prometheus-url=${OPERATOR_PROMETHEUS_URL}/`);
      }
    }
  });

  it('Grafana is on its own Ingress host; Prometheus only when asked, behind basic auth', () => {
    for (const { manifests, choices } of of('production', (c) => c.prometheus === 'bundled')) {
      const grafana = record(find(manifests, 'Ingress', 'grafana').spec);
      expect(list(grafana.rules).map((rule) => record(rule).host)).toEqual([
        'grafana.meli-proxy.example.com',
      ]);
      if (!choices.exposePrometheus) {
        expect(names(manifests, 'Ingress')).not.toContain('prometheus');
        continue;
      }
      const prometheus = find(manifests, 'Ingress', 'prometheus');
      expect(prometheus.metadata.annotations).toMatchObject({
        'nginx.ingress.kubernetes.io/auth-type': 'basic',
        'nginx.ingress.kubernetes.io/auth-secret': PROMETHEUS_AUTH_SECRET,
      });
    }
  });

  it('denies by default and allows each part what it needs', () => {
    for (const { name, manifests } of renderings) {
      const policies = manifests.filter((manifest) => manifest.kind === 'NetworkPolicy');
      const deny = record(find(manifests, 'NetworkPolicy', 'default-deny').spec);
      expect(deny.podSelector, name).toEqual({});
      expect(deny.policyTypes).toEqual(['Ingress', 'Egress']);
      const egressPorts = (labels: Record<string, string>): number[] =>
        policies
          .filter((policy) => {
            const selector = record(record(policy.spec).podSelector).matchLabels as
              | Record<string, string>
              | undefined;
            return Object.entries(selector ?? {}).every(([key, value]) => labels[key] === value);
          })
          .flatMap((policy) => list(record(policy.spec).egress).flatMap((rule) => list(record(rule).ports)))
          .map((port) => Number(record(port).port));
      const proxyLabels = templateLabels(find(manifests, 'Deployment', 'meli-proxy'));
      expect(egressPorts(proxyLabels).sort(), name).toEqual(expect.arrayContaining([53, 443, 5432]));
      const job = templateLabels(find(manifests, 'Job', 'meli-proxy-migrate'));
      expect(egressPorts(job), name).toEqual(expect.arrayContaining([53, 5432]));
      for (const workload of workloads(manifests)) {
        expect(podSpecOf(workload), workload.metadata.name).toBeDefined();
      }
    }
  });

  it('the migration Job cleans itself up after it finishes', () => {
    for (const { manifests } of renderings) {
      expect(
        record(find(manifests, 'Job', 'meli-proxy-migrate').spec).ttlSecondsAfterFinished,
      ).toBeGreaterThan(0);
    }
  });
});

describe.skipIf(SKIP_RENDERING)('strict validation', () => {
  it('catches a misspelled field that the models’ own validate() lets through', async () => {
    const manifests = await render('local');
    const broken = structuredClone(manifests);
    const proxy = find(broken, 'Deployment', 'meli-proxy');
    const container = containersOf(proxy)[0]!;
    container.readinesProbe = container.readinessProbe;
    delete container.readinessProbe;
    // The models' own check lets it pass: that is why the strict one exists.
    const Model = (await modelFor(proxy))!;
    expect(() => new Model(proxy).validate()).not.toThrow();
    const problems = strictProblems([proxy]);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.ref).toBe('Deployment/meli-proxy');
    expect(problems[0]!.message).toContain('\'"readinesProbe"\' does not exist');
  }, 60_000);

  it('catches an unknown field in a custom resource (ScaledObject) too', async () => {
    const scaled: Manifest = {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name: 'x' },
      spec: { scaleTargetRef: { name: 'x' }, minReplicas: 2, triggers: [] },
    };
    const problems = strictProblems([scaled]);
    expect(problems.map((problem) => problem.message).join('\n')).toContain('minReplicas');
  }, 60_000);
});
