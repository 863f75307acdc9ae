/**
 * Rolling workloads when the Secret they read changes. A pod reads a Secret's values once, at start
 * (environment variables), so a new admin token or client secret reaches nobody until the pods are
 * replaced. Each workload's pod template carries a checksum of exactly the Secret keys it reads:
 * when one of those values changes, the template changes and Kubernetes rolls the workload, as a
 * Helm chart's checksum annotation does. A workload whose keys did not change keeps its pods (the
 * database is not restarted because the admin token changed).
 * ConfigMaps need nothing of the kind: kustomize names them after their content, so a change renames
 * the ConfigMap in the pod template.
 */
import { createHash } from 'node:crypto';
import { containersOf, isRecord, type Manifest, podSpecOf, refOf } from './manifests.js';
import { SECRET_NAME } from './secrets.js';

export const SECRET_CHECKSUM_ANNOTATION = 'meli-proxy.io/secret-checksum';

/** The keys of the Secret a workload reads; `all` when it mounts or imports the whole Secret. */
export function secretKeysOf(manifest: Manifest): string[] | 'all' {
  const keys = new Set<string>();
  for (const container of containersOf(manifest)) {
    for (const env of Array.isArray(container.env) ? container.env : []) {
      const ref = isRecord(env) && isRecord(env.valueFrom) ? env.valueFrom.secretKeyRef : undefined;
      if (isRecord(ref) && ref.name === SECRET_NAME && typeof ref.key === 'string') keys.add(ref.key);
    }
    for (const from of Array.isArray(container.envFrom) ? container.envFrom : []) {
      if (isRecord(from) && isRecord(from.secretRef) && from.secretRef.name === SECRET_NAME) return 'all';
    }
  }
  const volumes = podSpecOf(manifest)?.volumes;
  for (const volume of Array.isArray(volumes) ? volumes : []) {
    if (isRecord(volume) && isRecord(volume.secret) && volume.secret.secretName === SECRET_NAME) return 'all';
  }
  return [...keys].sort();
}

function keysRead(manifest: Manifest, data: Readonly<Record<string, string>>): string[] {
  const keys = secretKeysOf(manifest);
  return keys === 'all' ? Object.keys(data).sort() : keys;
}

/** sha256 over the keys read and their values (an absent key counts as absent, not as empty). */
export function secretChecksum(keys: readonly string[], data: Readonly<Record<string, string>>): string {
  const hash = createHash('sha256');
  for (const key of keys) {
    const value = data[key];
    hash.update(
      value === undefined ? `${key}\u0000absent\u0000` : `${key}\u0000${value.length}:${value}\u0000`,
    );
  }
  return hash.digest('hex');
}

/** Copies of the manifests, with the checksum annotation on every pod template that reads the Secret. */
export function withSecretChecksums(
  manifests: readonly Manifest[],
  data: Readonly<Record<string, string>>,
): Manifest[] {
  return manifests.map((manifest) => {
    if (manifest.kind === 'Job' || podSpecOf(manifest) === undefined) return manifest;
    const keys = keysRead(manifest, data);
    if (keys.length === 0) return manifest;
    const copy = structuredClone(manifest);
    const template = (copy.spec as Record<string, unknown>).template as Record<string, unknown>;
    const metadata = isRecord(template.metadata) ? template.metadata : {};
    const annotations = isRecord(metadata.annotations) ? metadata.annotations : {};
    template.metadata = {
      ...metadata,
      annotations: { ...annotations, [SECRET_CHECKSUM_ANNOTATION]: secretChecksum(keys, data) },
    };
    return copy;
  });
}

/** Names of the keys whose value differs (added, removed or changed); values are never returned. */
export function changedKeys(
  before: Readonly<Record<string, string>>,
  after: Readonly<Record<string, string>>,
): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((key) => before[key] !== after[key]).sort();
}

/** The long-running workloads that read one of the changed keys: these roll. */
export function workloadsToRoll(
  manifests: readonly Manifest[],
  changed: readonly string[],
  data: Readonly<Record<string, string>>,
): string[] {
  return manifests
    .filter((manifest) => manifest.kind !== 'Job' && podSpecOf(manifest) !== undefined)
    .filter((manifest) => keysRead(manifest, data).some((key) => changed.includes(key)))
    .map(refOf);
}
