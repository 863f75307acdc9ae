/**
 * Removing the ConfigMaps earlier deploys left behind. kustomize names a generated ConfigMap after
 * its content (`meli-proxy-config-<hash>`), so each change of content leaves the previous one in
 * the cluster. After a successful deploy (every rollout done, so no pod reads an old one any more),
 * a ConfigMap of this install whose name is a generated name of the plan with another hash goes.
 */
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { isRecord } from './manifests.js';
import { type Plan, stageManifests } from './plan.js';

const HASHED = /^(.+)-[a-z0-9]{10}$/;

export interface PruneResult {
  deleted: string[];
  /** Why nothing could be pruned, when it could not (never fatal). */
  problem?: string;
}

export async function pruneConfigMaps(run: RunKubectl, plan: Plan): Promise<PruneResult> {
  const current = new Set(
    plan.stages
      .flatMap(stageManifests)
      .filter((manifest) => manifest.kind === 'ConfigMap')
      .map((manifest) => manifest.metadata.name),
  );
  const generatedBases = new Set([...current].map((name) => HASHED.exec(name)?.[1]).filter(Boolean));
  const listed = await run({
    args: [
      'get',
      'configmaps',
      '--namespace',
      plan.namespace,
      '--selector',
      'app.kubernetes.io/part-of=meli-proxy',
      '--output',
      'json',
    ],
    timeoutMs: 30_000,
  });
  if (listed.exitCode !== 0) return { deleted: [], problem: firstErrorLine(listed) };
  let items: unknown[] = [];
  try {
    const parsed: unknown = JSON.parse(listed.stdout);
    items = isRecord(parsed) && Array.isArray(parsed.items) ? parsed.items : [];
  } catch {
    return { deleted: [], problem: 'kubectl get printed something other than JSON' };
  }
  const stale = items
    .map((item) => (isRecord(item) && isRecord(item.metadata) ? String(item.metadata.name) : ''))
    .filter((name) => !current.has(name) && generatedBases.has(HASHED.exec(name)?.[1]));
  if (stale.length === 0) return { deleted: [] };
  const result = await run({
    args: ['delete', 'configmap', ...stale, '--namespace', plan.namespace, '--ignore-not-found'],
    timeoutMs: 60_000,
  });
  if (result.exitCode !== 0) return { deleted: [], problem: firstErrorLine(result) };
  return { deleted: stale.map((name) => `ConfigMap/${name}`) };
}
