/**
 * Puts the scripted kubectl stand-in (fake-kubectl.mjs) on PATH for a test file: a temporary bin
 * directory with an executable `kubectl` that runs the script with this Node, and a scenario file
 * the test rewrites per case. Calls are read back from calls.jsonl.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FakeRule {
  match: string[];
  /** Only when stdin (the manifests of `apply -f -`) contains this. */
  stdinIncludes?: string;
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  delayMs?: number;
  honorTimeout?: boolean;
  hang?: boolean;
}

export interface FakeCall {
  /** As received, including a leading `--context NAME`. */
  args: string[];
  stdin: string;
  start: number;
}

export interface FakeKubectl {
  /** Directory holding the `kubectl` executable: put it first on PATH. */
  binDir: string;
  /** Environment the stand-in needs (FAKE_KUBECTL_DIR, FAKE_KUBECTL_REAL). */
  env: Record<string, string>;
  /**
   * Replaces the scenario and forgets earlier calls; the cluster starts over with what every
   * cluster needs (DEFAULT_CLUSTER) unless `cluster` says what it runs instead.
   */
  script(rules: FakeRule[], cluster?: ClusterObject[]): void;
  /** Adds or replaces objects in the cluster as it is now (keeps what deploys stored). */
  seed(objects: ClusterObject[]): void;
  /** The objects the cluster holds now, by `Kind/namespace/name` (namespace empty when cluster-wide). */
  objects(): Record<string, ClusterObject>;
  calls(): FakeCall[];
  remove(): void;
}

export interface ClusterObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [field: string]: unknown };
  [field: string]: unknown;
}

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'APIService',
  'IngressClass',
  'CustomResourceDefinition',
]);

export function clusterKey(object: ClusterObject): string {
  const namespace = CLUSTER_SCOPED.has(object.kind) ? '' : (object.metadata.namespace ?? 'default');
  return `${object.kind}/${namespace}/${object.metadata.name}`;
}

/** An APIService as the API server reports it, Available or not. */
export function apiService(
  name: string,
  available: boolean,
  labels: Record<string, string> = {},
): ClusterObject {
  return {
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name, labels },
    status: {
      conditions: [
        {
          type: 'Available',
          status: available ? 'True' : 'False',
          reason: available ? 'Passed' : 'FailedDiscoveryCheck',
        },
      ],
    },
  };
}

export function crd(name: string): ClusterObject {
  return { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name } };
}

/** What deploy's prerequisites need: ingress-nginx's IngressClass and a working metrics-server. */
export const DEFAULT_CLUSTER: ClusterObject[] = [
  { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nginx' } },
  apiService('v1beta1.metrics.k8s.io', true),
];

const SCRIPT = fileURLToPath(new URL('./fake-kubectl.mjs', import.meta.url));

/** The real kubectl for rendering, found on PATH before the stand-in shadows it. */
export function findRealKubectl(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir && existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  }
  return undefined;
}

export function createFakeKubectl(realKubectl = findRealKubectl()): FakeKubectl {
  const root = mkdtempSync(join(tmpdir(), 'meli-fake-kubectl-'));
  const binDir = join(root, 'bin');
  const stateDir = join(root, 'state');
  mkdirSync(binDir);
  mkdirSync(stateDir);
  const executable = join(binDir, 'kubectl');
  writeFileSync(executable, `#!/bin/sh\nexec "${process.execPath}" "${SCRIPT}" "$@"\n`);
  chmodSync(executable, 0o755);
  const callsFile = join(stateDir, 'calls.jsonl');
  const clusterFile = join(stateDir, 'cluster.json');
  const readCluster = (): Record<string, ClusterObject> =>
    existsSync(clusterFile)
      ? (JSON.parse(readFileSync(clusterFile, 'utf8')) as { objects: Record<string, ClusterObject> }).objects
      : {};
  const writeCluster = (objects: Record<string, ClusterObject>): void =>
    writeFileSync(clusterFile, JSON.stringify({ objects }));
  const fake: FakeKubectl = {
    binDir,
    env: { FAKE_KUBECTL_DIR: stateDir, ...(realKubectl ? { FAKE_KUBECTL_REAL: realKubectl } : {}) },
    script(rules, cluster = DEFAULT_CLUSTER) {
      writeFileSync(join(stateDir, 'scenario.json'), JSON.stringify({ rules }));
      writeFileSync(callsFile, '');
      writeCluster(Object.fromEntries(cluster.map((object) => [clusterKey(object), object])));
    },
    seed(objects) {
      writeCluster({
        ...readCluster(),
        ...Object.fromEntries(objects.map((object) => [clusterKey(object), object])),
      });
    },
    objects: readCluster,
    calls() {
      if (!existsSync(callsFile)) return [];
      return readFileSync(callsFile, 'utf8')
        .split('\n')
        .filter((line) => line.length > 0)
        .map((line) => JSON.parse(line) as FakeCall);
    },
    remove() {
      rmSync(root, { recursive: true, force: true });
    },
  };
  fake.script([]);
  return fake;
}
