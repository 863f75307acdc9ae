/**
 * Kubernetes objects as `kubectl kustomize` renders them: parsed from multi-document YAML, with just
 * enough typing to sort, wait on and describe them. Everything else in an object is passed through
 * to `kubectl apply` untouched.
 */
import { parseAllDocuments, stringify } from 'yaml';
import { UsageError } from '../errors.js';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `Kind/name`, how kubectl names an object on the command line and in messages. */
export function refOf(manifest: Pick<Manifest, 'kind' | 'metadata'>): string {
  return `${manifest.kind}/${manifest.metadata.name}`;
}

/** Parses rendered YAML; `source` names where it came from in error messages. */
export function parseManifests(text: string, source: string): Manifest[] {
  const manifests: Manifest[] = [];
  for (const document of parseAllDocuments(text)) {
    if (document.errors.length > 0) {
      throw new UsageError(`${source} is not valid YAML: ${document.errors[0]?.message ?? 'parse error'}`);
    }
    const value: unknown = document.toJS();
    if (value === null || value === undefined) continue;
    // `kind: List` (as `kubectl get -o yaml` prints) is flattened.
    if (isRecord(value) && value.kind === 'List' && Array.isArray(value.items)) {
      for (const item of value.items) manifests.push(asManifest(item, source));
      continue;
    }
    manifests.push(asManifest(value, source));
  }
  return manifests;
}

function asManifest(value: unknown, source: string): Manifest {
  if (
    !isRecord(value) ||
    typeof value.apiVersion !== 'string' ||
    typeof value.kind !== 'string' ||
    !isRecord(value.metadata) ||
    typeof value.metadata.name !== 'string'
  ) {
    throw new UsageError(`${source} holds a document without apiVersion, kind and metadata.name.`);
  }
  return value as Manifest;
}

/** Multi-document YAML for `kubectl apply -f -`. */
export function toYaml(manifests: readonly Manifest[]): string {
  return manifests.map((manifest) => stringify(manifest, { lineWidth: 0 })).join('---\n');
}

export function labelOf(manifest: Manifest, name: string): string | undefined {
  return manifest.metadata.labels?.[name];
}

/** The pod template's spec of a workload (Deployment, StatefulSet, DaemonSet, Job), if it has one. */
export function podSpecOf(manifest: Manifest): Record<string, unknown> | undefined {
  const spec = manifest.spec;
  if (!isRecord(spec)) return undefined;
  const template = spec.template;
  if (isRecord(template) && isRecord(template.spec)) return template.spec;
  return undefined;
}

export interface Container {
  name: string;
  image?: string;
  [field: string]: unknown;
}

export function containersOf(manifest: Manifest): Container[] {
  const pod = podSpecOf(manifest);
  if (!pod) return [];
  const lists = [pod.initContainers, pod.containers].filter(Array.isArray) as unknown[][];
  return lists.flat().filter((item): item is Container => isRecord(item) && typeof item.name === 'string');
}

/** `spec.selector.matchLabels` as a kubectl label selector (`a=b,c=d`), if the object has one. */
export function selectorOf(manifest: Manifest): string | undefined {
  const spec = manifest.spec;
  if (!isRecord(spec) || !isRecord(spec.selector) || !isRecord(spec.selector.matchLabels)) return undefined;
  const pairs = Object.entries(spec.selector.matchLabels)
    .filter((entry): entry is [string, string] => typeof entry[1] === 'string')
    .map(([key, value]) => `${key}=${value}`);
  return pairs.length > 0 ? pairs.join(',') : undefined;
}

export { isRecord };
