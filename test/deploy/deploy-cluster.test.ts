/**
 * `meli-proxy deploy` against the stateful kubectl stand-in: what a cluster that already holds
 * things makes of it. A changed Secret value rolls exactly the workloads that read it; a
 * cluster-wide object owned by someone else stops the deploy before anything is applied, and
 * destroy leaves it alone; a missing ingress controller or metrics-server is reported with the
 * command that installs it; old generated ConfigMaps are pruned; status reports the store's health
 * as the proxy sees it.
 */
import { describe, expect, it } from 'vitest';
import { SECRET_CHECKSUM_ANNOTATION } from '../../src/deploy/rollout.js';
import { SECRET_KEYS } from '../../src/deploy/secrets.js';
import { apiService, type ClusterObject, DEFAULT_CLUSTER } from '../support/fake-kubectl.js';
import { runDeployCli } from './cli-harness.js';
import { DEPLOY_ENV, kubectlCommand, kubectlStandInForSuite } from './fake-cluster.js';
import { SKIP_RENDERING } from './manifests-helpers.js';

const ENV = DEPLOY_ENV;
const cluster = kubectlStandInForSuite();

function templateChecksum(name: string, kind = 'Deployment'): string | undefined {
  const object = cluster.fake.objects()[`${kind}/meli-proxy/${name}`] as
    | { spec: { template: { metadata?: { annotations?: Record<string, string> } } } }
    | undefined;
  return object?.spec.template.metadata?.annotations?.[SECRET_CHECKSUM_ANNOTATION];
}

const commands = () => cluster.fake.calls().map(kubectlCommand);

describe.skipIf(SKIP_RENDERING)('deploy against a cluster that remembers', () => {
  it('rolls the workloads that read a changed Secret value, and only those, and says so', async () => {
    const first = await runDeployCli(['deploy', '--context', 'kind-test', '--timeout', '60s'], { env: ENV });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('Secret/meli-proxy-secrets created');
    const proxy = templateChecksum('meli-proxy');
    const grafana = templateChecksum('grafana');
    const postgres = templateChecksum('postgres', 'StatefulSet');
    expect(proxy).toMatch(/^[0-9a-f]{64}$/);
    expect(postgres).toMatch(/^[0-9a-f]{64}$/);

    // The same input again: nothing changes, nothing rolls.
    const same = await runDeployCli(['deploy', '--context', 'kind-test', '--timeout', '60s'], { env: ENV });
    expect(same.code).toBe(0);
    expect(same.stdout).toContain('Secret/meli-proxy-secrets unchanged: no pod restarts for it');
    expect(templateChecksum('meli-proxy')).toBe(proxy);
    expect(same.stdout).not.toContain('old replicas are pending termination');

    // A new admin token: the proxy rolls; the database and Grafana, which do not read it, do not.
    const changed = await runDeployCli(['deploy', '--context', 'kind-test', '--timeout', '60s'], {
      env: { ...ENV, MELI_PROXY_ADMIN_TOKEN: 'another-admin-token-9876543210' },
    });
    expect(changed.code).toBe(0);
    expect(changed.stdout).toContain(
      'Secret/meli-proxy-secrets changed (admin-token): rolls Deployment/meli-proxy',
    );
    expect(changed.stdout).not.toContain('another-admin-token');
    expect(templateChecksum('meli-proxy')).not.toBe(proxy);
    expect(templateChecksum('grafana')).toBe(grafana);
    expect(templateChecksum('postgres', 'StatefulSet')).toBe(postgres);
    // The stand-in counts pod-template changes as Kubernetes does: one rollout, of the proxy only.
    const generation = (key: string) =>
      (cluster.fake.objects()[key]?.metadata as { generation?: number } | undefined)?.generation;
    expect(generation('Deployment/meli-proxy/meli-proxy')).toBe(2);
    expect(generation('Deployment/meli-proxy/grafana')).toBe(1);
    expect(generation('StatefulSet/meli-proxy/postgres')).toBe(1);
  }, 180_000);

  it('stops before applying anything when the custom-metrics APIService belongs to someone else', async () => {
    const foreign = apiService('v1beta1.custom.metrics.k8s.io', true, {
      'app.kubernetes.io/name': 'prometheus-adapter',
    });
    foreign.metadata.annotations = {
      'meta.helm.sh/release-name': 'kube-prometheus-stack',
      'meta.helm.sh/release-namespace': 'monitoring',
    };
    cluster.fake.script([], [...DEFAULT_CLUSTER, foreign]);
    const run = await runDeployCli(['deploy', '--context', 'kind-test'], { env: ENV });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      'APIService/v1beta1.custom.metrics.k8s.io belongs to Helm release kube-prometheus-stack in namespace monitoring',
    );
    expect(run.stderr).toContain('--autoscaler keda');
    expect(commands().some((command) => command.startsWith('apply'))).toBe(false);

    // With KEDA there is no APIService to fight over (KEDA's CRD is there).
    cluster.fake.seed([
      {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: 'scaledobjects.keda.sh' },
      },
    ]);
    const keda = await runDeployCli(
      ['deploy', '--context', 'kind-test', '--autoscaler', 'keda', '--timeout', '60s'],
      {
        env: ENV,
      },
    );
    expect(keda.stderr).toBe('');
    expect(keda.code).toBe(0);
    expect(cluster.fake.objects()['ScaledObject/meli-proxy/meli-proxy']).toBeDefined();
    expect(cluster.fake.objects()['APIService//v1beta1.custom.metrics.k8s.io']).toEqual(foreign);

    // destroy with the default choices would name the APIService: it stays, being someone else's.
    const destroy = await runDeployCli(['deploy', 'destroy', '--yes', '--context', 'kind-test']);
    expect(destroy.code).toBe(0);
    expect(destroy.stdout).toContain('Leaving alone what is not this install');
    expect(destroy.stdout).toContain('APIService/v1beta1.custom.metrics.k8s.io');
    expect(cluster.fake.objects()['APIService//v1beta1.custom.metrics.k8s.io']).toEqual(foreign);
  }, 180_000);

  it('refuses to take over another install’s ClusterRole, and destroys only its own', async () => {
    const other: ClusterObject = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: {
        name: 'shop-prometheus-adapter-resource-reader',
        labels: { 'app.kubernetes.io/part-of': 'meli-proxy', 'app.kubernetes.io/instance': 'other' },
      },
    };
    cluster.fake.script([], [...DEFAULT_CLUSTER, other]);
    const run = await runDeployCli(['deploy', '--context', 'kind-test', '--namespace', 'shop'], { env: ENV });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      'ClusterRole/shop-prometheus-adapter-resource-reader belongs to the meli-proxy install in namespace other',
    );
    // A second install in another namespace gets cluster objects of its own and leaves the first's.
    const second = await runDeployCli(
      ['deploy', '--context', 'kind-test', '--namespace', 'team-b', '--timeout', '60s'],
      {
        env: ENV,
      },
    );
    expect(second.code).toBe(0);
    expect(
      Object.keys(cluster.fake.objects())
        .filter((key) => key.startsWith('ClusterRole/'))
        .sort(),
    ).toEqual([
      'ClusterRole//shop-prometheus-adapter-resource-reader',
      'ClusterRole//team-b-prometheus-adapter-auth-reader',
      'ClusterRole//team-b-prometheus-adapter-resource-reader',
    ]);
    const destroy = await runDeployCli([
      'deploy',
      'destroy',
      '--yes',
      '--context',
      'kind-test',
      '--namespace',
      'team-b',
    ]);
    expect(destroy.code).toBe(0);
    expect(Object.keys(cluster.fake.objects()).filter((key) => key.startsWith('ClusterRole'))).toEqual([
      'ClusterRole//shop-prometheus-adapter-resource-reader',
    ]);
  }, 180_000);

  it('names a missing ingress controller and metrics-server with their install commands (exit 2)', async () => {
    cluster.fake.script([], [apiService('v1beta1.metrics.k8s.io', false)]);
    const run = await runDeployCli(['deploy', '--context', 'kind-test'], { env: ENV });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('IngressClass nginx (ingress controller): missing');
    expect(run.stderr).toContain('install: helm upgrade --install ingress-nginx');
    expect(run.stderr).toContain(
      'metrics-server (CPU metrics for the autoscaler): not available (FailedDiscoveryCheck)',
    );
    expect(run.stderr).toContain('components.yaml');
    expect(commands().some((command) => command.startsWith('apply'))).toBe(false);

    const status = await runDeployCli(['deploy', 'status', '--context', 'kind-test']);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain('✖ IngressClass nginx (ingress controller): missing');
    expect(status.stderr).toContain('IngressClass nginx (ingress controller)');
  }, 120_000);

  it('prunes the ConfigMaps of earlier deploys, reports store health and prints where things are', async () => {
    const stale: ClusterObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'meli-proxy-config-aaaaaaaaaa',
        namespace: 'meli-proxy',
        labels: { 'app.kubernetes.io/part-of': 'meli-proxy' },
      },
    };
    const unrelated: ClusterObject = {
      ...stale,
      metadata: { ...stale.metadata, name: 'someone-elses-config' },
    };
    cluster.fake.script([], [...DEFAULT_CLUSTER, stale, unrelated]);
    const run = await runDeployCli(
      ['deploy', '--context', 'kind-test', '--expose-prometheus', '--timeout', '60s'],
      {
        env: ENV,
      },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      'Removed ConfigMaps of earlier deploys: ConfigMap/meli-proxy-config-aaaaaaaaaa',
    );
    expect(cluster.fake.objects()['ConfigMap/meli-proxy/someone-elses-config']).toBeDefined();
    expect(run.stdout).toMatch(
      /Grafana: +http:\/\/grafana\.meli-proxy\.localtest\.me\/ +\(user admin; password: kubectl/,
    );
    expect(run.stdout).toContain("jsonpath='{.data.grafana-admin-password}' | base64 -d");
    expect(run.stdout).toMatch(/Prometheus: http:\/\/prometheus\.meli-proxy\.localtest\.me\//);
    const auth = cluster.fake.objects()['Secret/meli-proxy/meli-proxy-prometheus-auth'] as unknown as {
      data: { auth: string };
    };
    expect(Buffer.from(auth.data.auth, 'base64').toString()).toMatch(/^admin:\{SHA\}[A-Za-z0-9+/]{27}=\n$/);

    const deployed = Object.values(cluster.fake.objects());
    cluster.fake.script(
      [
        {
          match: ['exec', 'deployment/meli-proxy'],
          stdout: JSON.stringify({
            status: 'ready',
            reasons: [],
            dependencies: { store: { healthy: false, reason: 'connect ECONNREFUSED 10.0.0.9:5432' } },
          }),
        },
      ],
      deployed,
    );
    const status = await runDeployCli(['deploy', 'status', '--context', 'kind-test']);
    expect(status.stdout).toContain(
      'Store, as the proxy sees it: unreachable: connect ECONNREFUSED 10.0.0.9:5432 (the proxy keeps serving)',
    );
    expect(status.stderr).toContain('store');
    expect(status.code).toBe(1);
  }, 180_000);

  it('deploy login: port-forwards to the database, logs in into it, switches injection on, restarts the proxy', async () => {
    const deployed = await runDeployCli(['deploy', '--context', 'kind-test', '--timeout', '60s'], {
      env: ENV,
    });
    expect(deployed.code).toBe(0);
    cluster.fake.script(
      [
        {
          match: ['port-forward', 'svc/postgres'],
          stdout: 'Forwarding from 127.0.0.1:54321 -> 5432\n',
          hang: true,
        },
      ],
      Object.values(cluster.fake.objects()),
    );
    const logins: NodeJS.ProcessEnv[] = [];
    const run = await runDeployCli(['deploy', 'login', '--context', 'kind-test'], {
      deps: {
        authLogin: async (env) => {
          logins.push(env);
          return 0;
        },
      },
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(logins).toHaveLength(1);
    const store = new URL(String(logins[0]!.MELI_PROXY_STORE));
    expect(`${store.hostname}:${store.port}${store.pathname}`).toBe('127.0.0.1:54321/meli_proxy');
    expect(logins[0]!.MELI_CLIENT_SECRET).toBe(ENV.MELI_CLIENT_SECRET);
    expect(Buffer.from(String(logins[0]!.MELI_PROXY_TOKEN_KEY), 'base64')).toHaveLength(32);
    const secret = cluster.fake.objects()['Secret/meli-proxy/meli-proxy-secrets'] as unknown as {
      data: Record<string, string>;
    };
    expect(Buffer.from(secret.data['inject-token']!, 'base64').toString()).toBe('on');
    expect(commands()).toContainEqual(
      expect.stringMatching(/^port-forward svc\/postgres :5432 --namespace meli-proxy$/),
    );
    expect(commands()).toContain('rollout restart deployment/meli-proxy --namespace meli-proxy');
    expect(run.stdout).toContain('token injection is on');

    // A failed login changes nothing in the cluster.
    cluster.fake.script(
      [
        {
          match: ['port-forward', 'svc/postgres'],
          stdout: 'Forwarding from 127.0.0.1:54321 -> 5432\n',
          hang: true,
        },
      ],
      Object.values(cluster.fake.objects()),
    );
    const failed = await runDeployCli(['deploy', 'login', '--context', 'kind-test'], {
      deps: { authLogin: async () => 1 },
    });
    expect(failed.code, failed.stderr).toBe(1);
    expect(commands().some((command) => command.startsWith('apply') || command.startsWith('rollout'))).toBe(
      false,
    );
  }, 180_000);

  it('says a kubectl apply that hangs timed out (not "no output"), and stops there', async () => {
    cluster.fake.script([{ match: ['apply'], stdinIncludes: 'kind: StatefulSet', hang: true }]);
    const run = await runDeployCli(['deploy', '--context', 'kind-test', '--timeout', '8s'], { env: ENV });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /kubectl apply in stage "storage and database" timed out after \d+s: the API server did not answer in time/,
    );
    expect(run.stdout).not.toContain('no output');
    expect(commands().some((command) => command.startsWith('rollout'))).toBe(false);
  }, 180_000);

  it('--dry-run names every key of the generated Secrets and the chosen components', async () => {
    const run = await runDeployCli(['deploy', '--dry-run', '--expose-prometheus', '--autoscaler', 'keda']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    for (const { key } of SECRET_KEYS) expect(run.stdout).toContain(`${key} (`);
    expect(run.stdout).toContain('Secret/meli-proxy-prometheus-auth  (made at deploy time, key: auth');
    expect(run.stdout).toContain('ScaledObject/meli-proxy');
    expect(run.stdout).not.toContain('HorizontalPodAutoscaler');
    expect(run.stdout).toContain(
      'Components: in-cluster database, bundled Prometheus, KEDA, Prometheus exposed.',
    );
  }, 120_000);

  it('refuses contradictory component flags (exit 2)', async () => {
    const both = await runDeployCli([
      'deploy',
      '--dry-run',
      '--prometheus',
      'operator',
      '--expose-prometheus',
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--expose-prometheus exposes the bundled Prometheus');
    const external = await runDeployCli(['deploy', '--dry-run', '--database', 'external']);
    expect(external.code).toBe(2);
    expect(external.stderr).toContain('--database external needs the database URL');
    const unknown = await runDeployCli(['deploy', '--dry-run', '--autoscaler', 'hpa']);
    expect(unknown.stderr).toContain('Invalid --autoscaler "hpa": expected one of prometheus-adapter, keda.');
  });
});
