/**
 * The ordered deployment plan: rendered objects sorted into stages (see stages.ts), plus what each
 * stage waits for. Pure: no kubectl, no clock, so the ordering is tested as plain logic.
 */
import { type Manifest, refOf, selectorOf } from './manifests.js';
import {
  compareWithinStage,
  placeManifest,
  STAGE_IDS,
  STAGES,
  type StageDefinition,
  type StageId,
} from './stages.js';

export type WaitKind = 'rollout' | 'pods-ready' | 'job' | 'available' | 'address';

export interface Wait {
  kind: WaitKind;
  /** `Kind/name` of the object waited for. */
  ref: string;
  objectKind: string;
  name: string;
  /** Pod label selector, for `pods-ready` and for finding pods (events, logs) on failure. */
  selector: string | undefined;
}

export interface PlanEntry {
  ref: string;
  kind: string;
  name: string;
  /** The object to apply; undefined for objects made at deploy time (the Secret). */
  manifest: Manifest | undefined;
  /** Shown after the ref in the plan, e.g. why a generated object has no manifest. */
  note: string | undefined;
  /** Placed by the fallback rule: a kind the planner does not know. */
  unknownKind: boolean;
}

export interface PlanStage extends StageDefinition {
  /** 1-based position, as shown to the user. */
  number: number;
  entries: PlanEntry[];
  waits: Wait[];
}

export interface Plan {
  namespace: string;
  stages: PlanStage[];
}

export interface GeneratedObject {
  stage: StageId;
  kind: string;
  name: string;
  note: string;
}

const ROLLOUT_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet']);

/** The namespace the plan targets: the Namespace object's name, else the most used metadata.namespace. */
export function planNamespace(manifests: readonly Manifest[]): string {
  const namespaces = manifests.filter((manifest) => manifest.kind === 'Namespace');
  if (namespaces.length === 1) return namespaces[0]!.metadata.name;
  const counts = new Map<string, number>();
  for (const manifest of manifests) {
    const namespace = manifest.metadata.namespace;
    if (namespace) counts.set(namespace, (counts.get(namespace) ?? 0) + 1);
  }
  let best = 'default';
  let bestCount = 0;
  for (const [namespace, count] of counts) {
    if (count > bestCount) [best, bestCount] = [namespace, count];
  }
  return best;
}

function waitsOn(manifests: readonly Manifest[], readiness: boolean): Wait[] {
  const waits: Wait[] = [];
  for (const manifest of manifests) {
    const base = { ref: refOf(manifest), objectKind: manifest.kind, name: manifest.metadata.name };
    if (ROLLOUT_KINDS.has(manifest.kind)) {
      const selector = selectorOf(manifest);
      waits.push({ kind: 'rollout', ...base, selector });
      // A stage that exists to say "the database is ready" also waits for the pods' Ready condition.
      if (readiness && selector) waits.push({ kind: 'pods-ready', ...base, selector });
    } else if (manifest.kind === 'Job') {
      // The job controller labels its pods with job-name.
      waits.push({ kind: 'job', ...base, selector: `job-name=${manifest.metadata.name}` });
    } else if (manifest.kind === 'APIService') {
      // The autoscaler reads its metrics through it: useless until the API server can reach it.
      waits.push({ kind: 'available', ...base, selector: undefined });
    } else if (manifest.kind === 'Ingress') {
      // Until the controller gives it an address, nothing outside the cluster reaches it.
      waits.push({ kind: 'address', ...base, selector: undefined });
    }
  }
  return waits;
}

export function buildPlan(manifests: readonly Manifest[], generated: readonly GeneratedObject[] = []): Plan {
  const byStage = new Map<StageId, Array<{ manifest: Manifest; unknownKind: boolean }>>(
    STAGE_IDS.map((id) => [id, []]),
  );
  for (const manifest of manifests) {
    const placement = placeManifest(manifest);
    byStage.get(placement.stage)!.push({ manifest, unknownKind: placement.unknownKind });
  }
  for (const list of byStage.values()) list.sort((a, b) => compareWithinStage(a.manifest, b.manifest));

  const stages = STAGES.map((definition, index): PlanStage => {
    const placed = byStage.get(definition.id)!;
    const entries: PlanEntry[] = placed.map(({ manifest, unknownKind }) => ({
      ref: refOf(manifest),
      kind: manifest.kind,
      name: manifest.metadata.name,
      manifest,
      note: unknownKind ? `kind not known to the planner: applied in stage "${definition.title}"` : undefined,
      unknownKind,
    }));
    for (const object of generated.filter((item) => item.stage === definition.id)) {
      entries.push({
        ref: `${object.kind}/${object.name}`,
        kind: object.kind,
        name: object.name,
        manifest: undefined,
        note: object.note,
        unknownKind: false,
      });
    }
    const waitedStage = definition.waitsFor;
    const waits =
      waitedStage === undefined
        ? []
        : waitsOn(
            byStage.get(waitedStage)!.map((item) => item.manifest),
            waitedStage !== definition.id,
          );
    return { ...definition, number: index + 1, entries, waits };
  });
  return { namespace: planNamespace(manifests), stages };
}

/** The manifests a stage applies, in order. */
export function stageManifests(stage: PlanStage): Manifest[] {
  return stage.entries.flatMap((entry) => (entry.manifest ? [entry.manifest] : []));
}
