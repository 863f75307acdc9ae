/**
 * Renders an overlay with `kubectl kustomize`, optionally into another namespace and with another
 * proxy image. Rendering needs the kubectl binary but no cluster.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { UsageError } from '../errors.js';
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { containersOf, labelOf, type Manifest, parseManifests } from './manifests.js';
import { COMPONENT_LABEL } from './stages.js';

/** deploy/k8s of this package: two levels up from both src/deploy and dist/deploy. */
export function defaultManifestsDir(): string {
  return fileURLToPath(new URL('../../deploy/k8s', import.meta.url));
}

export interface RenderOptions {
  /** Holds base/ and overlays/<name>/. */
  manifestsDir: string;
  overlay: string;
  /** Moves every namespaced object (and references to the namespace) here. */
  namespace?: string | undefined;
  /** Replaces the proxy's image (in the proxy Deployment and wherever the same image is used). */
  image?: string | undefined;
  run: RunKubectl;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function overlayNames(manifestsDir: string): string[] {
  const dir = join(manifestsDir, 'overlays');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

export async function renderManifests(options: RenderOptions): Promise<Manifest[]> {
  const overlayDir = join(options.manifestsDir, 'overlays', options.overlay);
  if (!existsSync(join(overlayDir, 'kustomization.yaml'))) {
    const known = overlayNames(options.manifestsDir);
    throw new UsageError(
      `Unknown --overlay "${options.overlay}": no ${join(overlayDir, 'kustomization.yaml')}. ` +
        `Available overlays: ${known.length > 0 ? known.join(', ') : '(none)'}.`,
    );
  }
  if (options.namespace !== undefined && !DNS_LABEL.test(options.namespace)) {
    throw new UsageError(
      `Invalid --namespace "${options.namespace}": expected a DNS label (lower-case letters, digits and "-", at most 63 characters).`,
    );
  }

  let target = overlayDir;
  let wrapper: string | undefined;
  if (options.namespace !== undefined) {
    // A throw-away kustomization on top of the overlay: kustomize's own namespace transformer also
    // rewrites the Namespace object, RoleBinding subjects and the APIService's service reference.
    // Kustomize refuses absolute resource paths, hence the relative one.
    wrapper = mkdtempSync(join(tmpdir(), 'meli-proxy-kustomize-'));
    writeFileSync(
      join(wrapper, 'kustomization.yaml'),
      stringify({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        namespace: options.namespace,
        resources: [relative(wrapper, overlayDir)],
      }),
    );
    target = wrapper;
  }

  try {
    const result = await options.run({ args: ['kustomize', target] });
    if (result.exitCode !== 0) {
      throw new UsageError(
        `kubectl kustomize ${overlayDir} failed: ${firstErrorLine(result)}. Fix the kustomization and run again.`,
      );
    }
    const manifests = parseManifests(result.stdout, `the rendering of ${overlayDir}`);
    if (options.image !== undefined) setProxyImage(manifests, options.image);
    return manifests;
  } finally {
    if (wrapper) rmSync(wrapper, { recursive: true, force: true });
  }
}

/**
 * Points the proxy's containers at `image`: the first container of the Deployment labelled
 * component=proxy names the overlay's image, and every container using that same image (the
 * migration Job too) gets the new one.
 */
export function setProxyImage(manifests: Manifest[], image: string): void {
  if (!/^[^\s]+$/.test(image)) {
    throw new UsageError(
      `Invalid --image "${image}": expected an image reference such as registry/meli-proxy:1.2.3.`,
    );
  }
  const proxy = manifests.find(
    (manifest) => manifest.kind === 'Deployment' && labelOf(manifest, COMPONENT_LABEL) === 'proxy',
  );
  const current = proxy ? containersOf(proxy)[0]?.image : undefined;
  if (!current) {
    throw new UsageError(
      `--image: the manifests have no Deployment labelled ${COMPONENT_LABEL}=proxy whose image could be replaced.`,
    );
  }
  for (const manifest of manifests) {
    for (const container of containersOf(manifest)) {
      if (container.image === current) container.image = image;
    }
  }
}
