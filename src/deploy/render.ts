/**
 * Renders an overlay with `kubectl kustomize`, optionally into another namespace and with another
 * proxy image. Rendering needs the kubectl binary but no cluster.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { UsageError } from '../errors.js';
import { componentsFor, type InstallChoices } from './choices.js';
import { applyChoices, scopeToInstall } from './customize.js';
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { containersOf, isRecord, labelOf, type Manifest, parseManifests } from './manifests.js';
import { planNamespace } from './plan.js';
import { COMPONENT_LABEL } from './stages.js';

/** deploy/k8s of this package: two levels up from both src/deploy and dist/deploy. */
export function defaultManifestsDir(): string {
  return fileURLToPath(new URL('../../deploy/k8s', import.meta.url));
}

export interface RenderOptions {
  /** Holds base/, overlays/<name>/ and components/<name>/. */
  manifestsDir: string;
  overlay: string;
  /** Kustomize components (directories under components/) applied on top of the overlay, in order. */
  components?: readonly string[] | undefined;
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

  const components = options.components ?? [];
  for (const component of components) {
    if (!existsSync(join(options.manifestsDir, 'components', component, 'kustomization.yaml'))) {
      throw new UsageError(
        `Unknown component "${component}": no ${join(options.manifestsDir, 'components', component, 'kustomization.yaml')}.`,
      );
    }
  }

  let target = overlayDir;
  let wrapper: string | undefined;
  const namespace = options.namespace ?? (components.length > 0 ? overlayNamespace(overlayDir) : undefined);
  if (namespace !== undefined || components.length > 0) {
    // A throw-away kustomization on top of the overlay: kustomize's own namespace transformer also
    // rewrites the Namespace object, RoleBinding subjects and the APIService's service reference,
    // and gives the objects components add the deployed namespace. Components run in the order
    // given, each over the result of the previous one. Kustomize refuses absolute paths, hence
    // the relative ones.
    wrapper = mkdtempSync(join(tmpdir(), 'meli-proxy-kustomize-'));
    const dir = wrapper;
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      stringify({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        ...(namespace === undefined ? {} : { namespace }),
        resources: [relative(dir, overlayDir)],
        ...(components.length > 0
          ? {
              components: components.map((name) =>
                relative(dir, join(options.manifestsDir, 'components', name)),
              ),
            }
          : {}),
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

/** The `namespace:` an overlay's kustomization sets, if it sets one. */
function overlayNamespace(overlayDir: string): string | undefined {
  const parsed: unknown = parse(readFileSync(join(overlayDir, 'kustomization.yaml'), 'utf8'));
  return isRecord(parsed) && typeof parsed.namespace === 'string' ? parsed.namespace : undefined;
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

export interface InstallRenderOptions extends Omit<RenderOptions, 'components'> {
  choices: InstallChoices;
}

/**
 * What `deploy` applies: the overlay with the components the choices call for, adjusted for the
 * target namespace (see customize.ts).
 */
export async function renderInstall(options: InstallRenderOptions): Promise<Manifest[]> {
  const manifests = await renderManifests({ ...options, components: componentsFor(options.choices) });
  const namespace = planNamespace(manifests);
  applyChoices(manifests, options.choices, namespace);
  scopeToInstall(manifests, namespace);
  return manifests;
}
