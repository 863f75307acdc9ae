/** Rendering the real overlays and looking things up in them, for the manifest tests. */

import { DEFAULT_CHOICES, type InstallChoices } from '../../src/deploy/choices.js';
import { execaKubectl } from '../../src/deploy/kubectl.js';
import { containersOf, isRecord, type Manifest, podSpecOf } from '../../src/deploy/manifests.js';
import { defaultManifestsDir, renderInstall } from '../../src/deploy/render.js';
import { findRealKubectl } from '../support/fake-kubectl.js';

export const KUBECTL = findRealKubectl();
/** Under CI a missing kubectl fails the suite; elsewhere the rendering tests are skipped. */
export const SKIP_RENDERING = KUBECTL === undefined && !process.env.CI;
export const OVERLAYS = ['local', 'production'] as const;

/** Renders an overlay the way `deploy` does (components, then the per-install adjustments). */
export function render(
  overlay: string,
  extra: { namespace?: string; image?: string; choices?: InstallChoices } = {},
): Promise<Manifest[]> {
  return renderInstall({
    manifestsDir: defaultManifestsDir(),
    overlay,
    run: execaKubectl(KUBECTL ?? 'kubectl'),
    choices: DEFAULT_CHOICES,
    ...extra,
  });
}

export function find(manifests: readonly Manifest[], kind: string, name: string): Manifest {
  const found = manifests.find((manifest) => manifest.kind === kind && manifest.metadata.name === name);
  if (!found) throw new Error(`no ${kind}/${name} in the rendering`);
  return found;
}

/** A generated ConfigMap by the name it has before kustomize appends the content hash. */
export function findConfigMap(manifests: readonly Manifest[], baseName: string): Manifest {
  const found = manifests.find(
    (manifest) =>
      manifest.kind === 'ConfigMap' && new RegExp(`^${baseName}-[a-z0-9]{10}$`).test(manifest.metadata.name),
  );
  if (!found) throw new Error(`no ConfigMap ${baseName}-<hash> in the rendering`);
  return found;
}

export function record(value: unknown): Record<string, unknown> {
  if (!isRecord(value)) throw new Error(`expected an object, got ${JSON.stringify(value)}`);
  return value;
}

export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

export function workloads(manifests: readonly Manifest[]): Manifest[] {
  return manifests.filter((manifest) => podSpecOf(manifest) !== undefined);
}

export function templateLabels(manifest: Manifest): Record<string, string> {
  const template = record(record(manifest.spec).template);
  const metadata = isRecord(template.metadata) ? template.metadata : {};
  return (isRecord(metadata.labels) ? metadata.labels : {}) as Record<string, string>;
}

export function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

export interface Probe {
  container: string;
  probe: 'startupProbe' | 'livenessProbe' | 'readinessProbe';
  path: string;
  port: number;
}

/** Every HTTP probe of a workload, with named ports resolved to numbers. */
export function httpProbes(manifest: Manifest): Probe[] {
  const probes: Probe[] = [];
  for (const container of containersOf(manifest)) {
    const ports = list(container.ports).map(record);
    for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
      const probe = container[kind];
      if (!isRecord(probe) || !isRecord(probe.httpGet)) continue;
      const port = probe.httpGet.port;
      const number =
        typeof port === 'number' ? port : ports.find((item) => item.name === port)?.containerPort;
      probes.push({
        container: container.name,
        probe: kind,
        path: String(probe.httpGet.path),
        port: Number(number),
      });
    }
  }
  return probes;
}

/** Loads the kubernetes-models class for an object (`apps/v1` + `Deployment` → apps/v1/Deployment). */
export async function modelFor(
  manifest: Manifest,
): Promise<(new (data: unknown) => { validate(): void }) | undefined> {
  let loaded: unknown;
  try {
    loaded = await import(/* @vite-ignore */ `kubernetes-models/${manifest.apiVersion}/${manifest.kind}`);
  } catch {
    return undefined;
  }
  const model = isRecord(loaded) ? loaded[manifest.kind] : undefined;
  return typeof model === 'function' ? (model as new (data: unknown) => { validate(): void }) : undefined;
}
