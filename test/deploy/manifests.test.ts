/**
 * The Kubernetes manifests, offline: both overlays render with `kubectl kustomize`, every object is
 * valid against the Kubernetes schemas (kubernetes-models), and the objects agree with each other
 * and with the app (names, ports, selectors, secrets, config file, grace periods).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { containersOf, isRecord, type Manifest, podSpecOf, selectorOf } from '../../src/deploy/manifests.js';
import { buildPlan } from '../../src/deploy/plan.js';
import { buildSecret, SECRET_NAME } from '../../src/deploy/secrets.js';
import { REPO_ROOT } from '../support/proxy.js';
import {
  find,
  findConfigMap,
  httpProbes,
  list,
  matches,
  modelFor,
  OVERLAYS,
  record,
  render,
  SKIP_RENDERING,
  templateLabels,
  workloads,
} from './manifests-helpers.js';

const rendered = new Map<string, Manifest[]>();
const get = (name: string): Manifest[] => rendered.get(name)!;

describe.skipIf(SKIP_RENDERING)('kubernetes manifests', () => {
  beforeAll(async () => {
    for (const overlay of OVERLAYS) rendered.set(overlay, await render(overlay));
    rendered.set(
      'moved',
      await render('production', { namespace: 'shop-proxy', image: 'registry.test/meli:9.9.9' }),
    );
  });

  describe.each([...OVERLAYS, 'moved'])('%s', (name) => {
    it('renders and every object passes its Kubernetes schema (kubernetes-models)', async () => {
      const manifests = get(name);
      expect(manifests.length).toBeGreaterThan(20);
      const problems: string[] = [];
      for (const manifest of manifests) {
        const Model = await modelFor(manifest);
        if (!Model) {
          problems.push(`${manifest.apiVersion} ${manifest.kind}: no kubernetes-models class`);
          continue;
        }
        try {
          new Model(manifest).validate();
        } catch (error) {
          problems.push(`${manifest.kind}/${manifest.metadata.name}: ${(error as Error).message}`);
        }
      }
      expect(problems).toEqual([]);
    });

    it('commits no Secret: the only one is made at deploy time', () => {
      expect(get(name).filter((manifest) => manifest.kind === 'Secret')).toEqual([]);
    });

    it('every secretKeyRef names a key the deploy-time Secret has (or is optional)', () => {
      const made = Object.keys(record(buildSecret('ns', {}, undefined, () => 'x'.repeat(32)).manifest.data));
      for (const workload of workloads(get(name))) {
        for (const container of containersOf(workload)) {
          for (const env of list(container.env).map(record)) {
            const ref = isRecord(env.valueFrom) ? env.valueFrom.secretKeyRef : undefined;
            if (!isRecord(ref)) continue;
            expect(ref.name, `${workload.metadata.name}/${env.name}`).toBe(SECRET_NAME);
            if (ref.optional !== true)
              expect(made, `${workload.metadata.name}/${env.name}`).toContain(ref.key);
          }
        }
      }
    });

    it('every ConfigMap a pod mounts is in the rendering', () => {
      const configMaps = new Set(
        get(name)
          .filter((m) => m.kind === 'ConfigMap')
          .map((m) => m.metadata.name),
      );
      for (const workload of workloads(get(name))) {
        for (const volume of list(podSpecOf(workload)!.volumes).map(record)) {
          if (isRecord(volume.configMap)) expect(configMaps).toContain(volume.configMap.name);
        }
      }
    });

    it('every Service selects pods that have the port it targets', () => {
      for (const service of get(name).filter((manifest) => manifest.kind === 'Service')) {
        const spec = record(service.spec);
        const selector = record(spec.selector) as Record<string, string>;
        const targets = workloads(get(name)).filter((workload) =>
          matches(selector, templateLabels(workload)),
        );
        expect(targets.length, `Service/${service.metadata.name} selects nothing`).toBeGreaterThan(0);
        for (const port of list(spec.ports).map(record)) {
          for (const target of targets) {
            const names = containersOf(target).flatMap((c) => list(c.ports).map((p) => record(p).name));
            const numbers = containersOf(target).flatMap((c) =>
              list(c.ports).map((p) => record(p).containerPort),
            );
            expect(
              [...names, ...numbers],
              `Service/${service.metadata.name} → ${String(port.targetPort)}`,
            ).toContain(port.targetPort);
          }
        }
      }
    });

    it('every pod passes the namespace\'s "restricted" Pod Security level', () => {
      const namespace = get(name).find((manifest) => manifest.kind === 'Namespace')!;
      expect(namespace.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
      for (const workload of workloads(get(name))) {
        const pod = podSpecOf(workload)!;
        const podSecurity = record(pod.securityContext);
        expect(podSecurity.runAsNonRoot, workload.metadata.name).toBe(true);
        expect(record(podSecurity.seccompProfile).type).toBe('RuntimeDefault');
        for (const container of containersOf(workload)) {
          const security = record(container.securityContext);
          const where = `${workload.metadata.name}/${container.name}`;
          expect(security.allowPrivilegeEscalation, where).toBe(false);
          expect(security.readOnlyRootFilesystem, where).toBe(true);
          expect(record(security.capabilities).drop, where).toEqual(['ALL']);
          expect(record(record(container.resources).requests).memory, where).toBeDefined();
          expect(record(record(container.resources).limits).memory, where).toBeDefined();
        }
      }
    });

    it('binds every role to a service account that exists, in the deployed namespace', () => {
      const manifests = get(name);
      const namespace = buildPlan(manifests).namespace;
      for (const binding of manifests.filter(
        (m) => m.kind === 'RoleBinding' || m.kind === 'ClusterRoleBinding',
      )) {
        for (const subject of list(binding.subjects).map(record)) {
          expect(subject.namespace, binding.metadata.name).toBe(namespace);
          find(manifests, 'ServiceAccount', String(subject.name));
        }
      }
      const apiService = find(manifests, 'APIService', 'v1beta1.custom.metrics.k8s.io');
      const backend = record(record(apiService.spec).service);
      expect(backend.namespace).toBe(namespace);
      const service = find(manifests, 'Service', String(backend.name));
      expect(list(record(service.spec).ports).map((p) => record(p).port)).toContain(backend.port);
    });
  });

  describe('the proxy Deployment', () => {
    const proxy = () => find(get('production'), 'Deployment', 'meli-proxy');
    const container = () => containersOf(proxy())[0]!;

    it('probes /health for startup and liveness, /ready for readiness, on the http port', () => {
      const probes = Object.fromEntries(httpProbes(proxy()).map((probe) => [probe.probe, probe]));
      expect(probes.startupProbe).toMatchObject({ path: '/health', port: 8080 });
      expect(probes.livenessProbe).toMatchObject({ path: '/health', port: 8080 });
      expect(probes.readinessProbe).toMatchObject({ path: '/ready', port: 8080 });
    });

    it('runs non-root, read-only, without a service-account token, with requests and limits', () => {
      const pod = podSpecOf(proxy())!;
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(record(pod.securityContext).runAsUser).toBe(1000);
      const resources = record(container().resources);
      expect(Object.keys(record(resources.requests)).sort()).toEqual(['cpu', 'memory']);
      expect(Object.keys(record(resources.limits)).sort()).toEqual(['cpu', 'memory']);
    });

    it('spreads replicas over nodes and zones', () => {
      const constraints = list(podSpecOf(proxy())!.topologySpreadConstraints).map(record);
      expect(constraints.map((c) => c.topologyKey).sort()).toEqual([
        'kubernetes.io/hostname',
        'topology.kubernetes.io/zone',
      ]);
      for (const constraint of constraints) {
        expect(
          matches(
            record(record(constraint.labelSelector).matchLabels) as Record<string, string>,
            templateLabels(proxy()),
          ),
        ).toBe(true);
      }
    });

    it('gives the drain its time: grace period ≥ preStop delay + shutdownGrace + margin', () => {
      const command = list(record(record(record(container().lifecycle).preStop).exec).command);
      expect(command[0]).toBe('sleep');
      const preStopMs = Number(command[1]) * 1000;
      const configMap = findConfigMap(get('production'), 'meli-proxy-config');
      const config = parseYaml(String(record(configMap.data)['meli-proxy.yaml'])) as Record<string, unknown>;
      const shutdownGraceMs = loadConfig({
        env: {},
        flags: { shutdownGrace: config.shutdownGrace },
      }).shutdownGrace;
      const graceMs = Number(podSpecOf(proxy())!.terminationGracePeriodSeconds) * 1000;
      expect(preStopMs).toBeGreaterThanOrEqual(3000);
      expect(graceMs).toBeGreaterThanOrEqual(preStopMs + shutdownGraceMs + 5000);
    });

    it('reads the config file from the ConfigMap, and the real config loader accepts it', () => {
      const env = list(container().env).map(record);
      const path = env.find((item) => item.name === 'MELI_PROXY_CONFIG')?.value;
      const mount = list(container().volumeMounts)
        .map(record)
        .find((item) => String(path).startsWith(`${String(item.mountPath)}/`));
      expect(mount, 'MELI_PROXY_CONFIG is under a mounted volume').toBeDefined();
      const configMap = findConfigMap(get('production'), 'meli-proxy-config');
      const file = String(path).slice(String(mount!.mountPath).length + 1);
      const text = String(record(configMap.data)[file]);
      const dir = join(REPO_ROOT, 'deploy/k8s/base/config');
      const config = loadConfig({
        file: join(dir, 'meli-proxy.yaml'),
        env: { MELI_PROXY_ADMIN_TOKEN: 'a'.repeat(32) },
        flags: {},
      });
      expect(readFileSync(join(dir, 'meli-proxy.yaml'), 'utf8')).toBe(text);
      expect(config.host).toBe('0.0.0.0');
      const ports = list(container().ports).map(record);
      expect(ports.find((port) => port.name === 'http')?.containerPort).toBe(config.port);
      expect(ports.find((port) => port.name === 'admin')?.containerPort).toBe(config.adminPort);
      const annotations = record(record(record(proxy().spec).template).metadata).annotations as Record<
        string,
        string
      >;
      expect(Number(annotations['prometheus.io/port'])).toBe(config.port);
    });

    it('takes the store URL and the admin token from the Secret', () => {
      const env = Object.fromEntries(list(container().env).map((item) => [record(item).name, record(item)]));
      expect(record(record(env.MELI_PROXY_STORE?.valueFrom).secretKeyRef).key).toBe('database-url');
      expect(record(record(env.MELI_PROXY_ADMIN_TOKEN?.valueFrom).secretKeyRef).key).toBe('admin-token');
      expect(record(record(env.MELI_CLIENT_SECRET?.valueFrom).secretKeyRef)).toMatchObject({
        key: 'client-secret',
        optional: true,
      });
    });

    it('leaves the replica count to the autoscaler', () => {
      expect(record(proxy().spec).replicas).toBeUndefined();
    });
  });

  describe('database and migration', () => {
    it('PostgreSQL: StatefulSet with a volume claim, pg_isready readiness and liveness', () => {
      const postgres = find(get('local'), 'StatefulSet', 'postgres');
      const spec = record(postgres.spec);
      expect(list(spec.volumeClaimTemplates)).toHaveLength(1);
      const container = containersOf(postgres)[0]!;
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        expect(list(record(record(container[probe]).exec).command).join(' '), probe).toContain('pg_isready');
      }
      expect(find(get('local'), 'Service', String(spec.serviceName))).toBeDefined();
    });

    it('the Job runs `meli-proxy migrate` on the proxy image with the database URL', () => {
      const manifests = get('production');
      const job = find(manifests, 'Job', 'meli-proxy-migrate');
      const migrate = containersOf(job)[0]!;
      const proxy = containersOf(find(manifests, 'Deployment', 'meli-proxy'))[0]!;
      expect(migrate.args).toEqual(['migrate']);
      expect(migrate.image).toBe(proxy.image);
      const store = list(migrate.env)
        .map(record)
        .find((item) => item.name === 'MELI_PROXY_STORE');
      expect(record(record(store?.valueFrom).secretKeyRef).key).toBe('database-url');
      expect(record(podSpecOf(job)!).restartPolicy).toBe('Never');
    });
  });

  describe('autoscaling', () => {
    it('HPA autoscaling/v2 scales the proxy on CPU and on requests per second per pod', () => {
      const manifests = get('production');
      const hpa = find(manifests, 'HorizontalPodAutoscaler', 'meli-proxy');
      expect(hpa.apiVersion).toBe('autoscaling/v2');
      const spec = record(hpa.spec);
      expect(record(spec.scaleTargetRef)).toMatchObject({ kind: 'Deployment', name: 'meli-proxy' });
      const metrics = list(spec.metrics).map(record);
      expect(metrics.map((metric) => metric.type)).toEqual(['Resource', 'Pods']);
      expect(record(metrics[0]!.resource).name).toBe('cpu');
      const podsMetric = String(record(record(metrics[1]!.pods).metric).name);

      // prometheus-adapter's rule produces exactly that metric from the proxy's counter.
      const adapterConfig = findConfigMap(manifests, 'prometheus-adapter-config');
      const rules = list(record(parseYaml(String(record(adapterConfig.data)['config.yaml']))).rules).map(
        record,
      );
      const rule = rules.find((item) => record(item.name).as === podsMetric);
      expect(rule, `an adapter rule serving ${podsMetric}`).toBeDefined();
      expect(String(rule!.seriesQuery)).toMatch(/^meli_proxy_requests_total\{/);
      expect(Object.keys(record(record(rule!.resources).overrides)).sort()).toEqual(['namespace', 'pod']);
      expect(String(rule!.metricsQuery)).toContain('rate(');
    });

    it('production keeps at least three replicas and more than local', () => {
      const min = (overlay: string) =>
        record(find(get(overlay), 'HorizontalPodAutoscaler', 'meli-proxy').spec);
      expect(min('production').minReplicas).toBeGreaterThanOrEqual(3);
      expect(Number(min('production').maxReplicas)).toBeGreaterThan(Number(min('local').maxReplicas));
    });

    it('the PodDisruptionBudget covers the proxy pods', () => {
      const manifests = get('production');
      const pdb = find(manifests, 'PodDisruptionBudget', 'meli-proxy');
      const selector = record(record(pdb.spec).selector).matchLabels as Record<string, string>;
      expect(matches(selector, templateLabels(find(manifests, 'Deployment', 'meli-proxy')))).toBe(true);
      expect(matches(selector, templateLabels(find(manifests, 'Job', 'meli-proxy-migrate')))).toBe(false);
    });
  });

  describe('monitoring', () => {
    it('Prometheus scrapes pods by annotation and labels series with namespace and pod', () => {
      const config = record(
        parseYaml(String(record(findConfigMap(get('local'), 'prometheus-config').data)['prometheus.yml'])),
      );
      const job = record(list(config.scrape_configs)[0]);
      expect(record(list(job.kubernetes_sd_configs)[0]).role).toBe('pod');
      const relabel = list(job.relabel_configs).map(record);
      const sources = (label: string) => relabel.filter((item) => list(item.source_labels).includes(label));
      expect(sources('__meta_kubernetes_pod_annotation_prometheus_io_scrape')[0]).toMatchObject({
        action: 'keep',
      });
      expect(sources('__meta_kubernetes_pod_annotation_prometheus_io_path')[0]).toMatchObject({
        target_label: '__metrics_path__',
      });
      expect(sources('__meta_kubernetes_pod_annotation_prometheus_io_port')[0]).toMatchObject({
        target_label: '__address__',
      });
      expect(sources('__meta_kubernetes_namespace')[0]).toMatchObject({ target_label: 'namespace' });
      expect(sources('__meta_kubernetes_pod_name')[0]).toMatchObject({ target_label: 'pod' });
    });

    it('Grafana gets the provisioned datasource and the dashboards folder', () => {
      const manifests = get('local');
      const datasources = record(
        parseYaml(String(record(findConfigMap(manifests, 'grafana-datasources').data)['prometheus.yaml'])),
      );
      expect(record(list(datasources.datasources)[0])).toMatchObject({
        type: 'prometheus',
        url: 'http://prometheus:9090',
      });
      find(manifests, 'Service', 'prometheus');
      const providers = record(
        parseYaml(
          String(record(findConfigMap(manifests, 'grafana-dashboard-providers').data)['meli-proxy.yaml']),
        ),
      );
      const dashboardsPath = String(record(record(list(providers.providers)[0]).options).path);
      const grafana = containersOf(find(manifests, 'Deployment', 'grafana'))[0]!;
      const mounts = list(grafana.volumeMounts).map(record);
      expect(mounts.find((mount) => mount.mountPath === dashboardsPath)?.name).toBe('dashboards');
      expect(mounts.map((mount) => mount.mountPath)).toContain('/etc/grafana/provisioning/datasources');
    });

    it('every dashboard in deploy/grafana/dashboards is listed in deploy/grafana/kustomization.yaml', () => {
      let onDisk: string[] = [];
      try {
        onDisk = readdirSync(join(REPO_ROOT, 'deploy/grafana/dashboards')).filter((file) =>
          file.endsWith('.json'),
        );
      } catch {
        onDisk = [];
      }
      const kustomization = record(
        parseYaml(readFileSync(join(REPO_ROOT, 'deploy/grafana/kustomization.yaml'), 'utf8')),
      );
      const generator = list(kustomization.configMapGenerator)
        .map(record)
        .find((item) => item.name === 'grafana-dashboards');
      const listed = list(generator?.files).map((file) =>
        String(file)
          .split('=')
          .pop()!
          .replace(/^dashboards\//, ''),
      );
      expect(listed.sort(), 'add each dashboards/*.json to the grafana-dashboards generator').toEqual(
        onDisk.sort(),
      );
    });
  });

  describe('ingress', () => {
    it('class nginx, routing to the proxy Service by port name; hosts set per overlay', () => {
      for (const overlay of OVERLAYS) {
        const manifests = get(overlay);
        const ingress = find(manifests, 'Ingress', 'meli-proxy');
        const spec = record(ingress.spec);
        expect(spec.ingressClassName).toBe('nginx');
        for (const rule of list(spec.rules).map(record)) {
          for (const path of list(record(rule.http).paths).map(record)) {
            const backend = record(record(path.backend).service);
            const service = find(manifests, 'Service', String(backend.name));
            const portNames = list(record(service.spec).ports).map((port) => record(port).name);
            expect(portNames).toContain(record(backend.port).name);
          }
        }
      }
      const hosts = (overlay: string) =>
        list(record(find(get(overlay), 'Ingress', 'meli-proxy').spec).rules).map((rule) => record(rule).host);
      expect(hosts('local')).toEqual(['meli-proxy.localtest.me']);
      expect(hosts('production')).toEqual(['meli-proxy.example.com']);
      expect(list(record(find(get('production'), 'Ingress', 'meli-proxy').spec).tls)).toHaveLength(1);
    });
  });

  describe('deploy --namespace and --image', () => {
    it('moves every reference to the namespace and leaves no trace of the default one', () => {
      const moved = get('moved');
      expect(buildPlan(moved).namespace).toBe('shop-proxy');
      expect(find(moved, 'Namespace', 'shop-proxy')).toBeDefined();
      for (const manifest of moved) {
        if (manifest.metadata.namespace !== undefined) expect(manifest.metadata.namespace).toBe('shop-proxy');
      }
      const text = JSON.stringify(moved);
      expect(text).not.toMatch(/"namespace":"meli-proxy"/);
    });

    it("replaces the proxy's image in the Deployment and the Job only", () => {
      const moved = get('moved');
      const images = (kind: string, name: string) =>
        containersOf(find(moved, kind, name)).map((c) => c.image);
      expect(images('Deployment', 'meli-proxy')).toEqual(['registry.test/meli:9.9.9']);
      expect(images('Job', 'meli-proxy-migrate')).toEqual(['registry.test/meli:9.9.9']);
      expect(images('StatefulSet', 'postgres')).toEqual(
        containersOf(find(get('production'), 'StatefulSet', 'postgres')).map((c) => c.image),
      );
    });
  });

  it('every workload selector matches its own pod template', () => {
    for (const overlay of OVERLAYS) {
      for (const workload of workloads(get(overlay)).filter((w) => w.kind !== 'Job')) {
        const selector = selectorOf(workload);
        expect(selector, workload.metadata.name).toBeDefined();
        const pairs = Object.fromEntries(
          selector!.split(',').map((pair) => pair.split('=') as [string, string]),
        );
        expect(matches(pairs, templateLabels(workload))).toBe(true);
      }
    }
  });
});

describe('committed files', () => {
  it('hold no Secret object under deploy/', () => {
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
      );
    const offenders = walk(join(REPO_ROOT, 'deploy'))
      .filter((file) => /\.ya?ml$/.test(file))
      .filter((file) => /^kind:\s*Secret\s*$/m.test(readFileSync(file, 'utf8')));
    expect(offenders).toEqual([]);
  });

  it('kubernetes-models validation catches a broken object (the check is real)', async () => {
    const broken: Manifest = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x' },
      spec: {
        selector: {},
        template: { spec: { containers: [{ name: 'c', ports: [{ containerPort: 'http' }] }] } },
      },
    };
    const Model = await modelFor(broken);
    expect(() => new Model!(broken).validate()).toThrow(/containerPort/);
    expect(isRecord(broken)).toBe(true);
  });
});
