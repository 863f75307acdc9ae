/**
 * `deploy status`: each stage of the plan with the health of its objects in the cluster, from one
 * `kubectl get --filename -` over the rendered manifests (plus a look for the generated Secret).
 */
import { RuntimeFailure } from '../errors.js';
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { isRecord, type Manifest, toYaml } from './manifests.js';
import { type Plan, stageManifests } from './plan.js';

export type Health = 'ready' | 'present' | 'progressing' | 'missing' | 'failed';

export interface ObjectStatus {
  ref: string;
  health: Health;
  detail: string;
}

export interface StageStatus {
  id: string;
  number: number;
  title: string;
  health: Health;
  objects: ObjectStatus[];
}

/** Worst first: a stage is as healthy as its least healthy object. */
const SEVERITY: readonly Health[] = ['failed', 'missing', 'progressing', 'present', 'ready'];

export function worst(healths: readonly Health[]): Health {
  for (const health of SEVERITY) if (healths.includes(health)) return health;
  return 'ready';
}

type Live = Record<string, unknown>;

function record(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

function num(value: unknown, fallback = 0): number {
  return typeof value === 'number' ? value : fallback;
}

function condition(live: Live, type: string): Record<string, unknown> | undefined {
  const conditions = record(live.status).conditions;
  if (!Array.isArray(conditions)) return undefined;
  const found = conditions.find((item) => isRecord(item) && item.type === type);
  return isRecord(found) ? found : undefined;
}

/** Health of one live object, judged the way `kubectl rollout status` would. */
export function healthOf(live: Live): { health: Health; detail: string } {
  const spec = record(live.spec);
  const status = record(live.status);
  const generationSeen = num(status.observedGeneration, -1) >= num(record(live.metadata).generation, 0);
  switch (live.kind) {
    case 'Deployment': {
      const desired = num(spec.replicas, 1);
      const available = num(status.availableReplicas);
      const progressing = condition(live, 'Progressing');
      if (progressing?.reason === 'ProgressDeadlineExceeded') {
        return { health: 'failed', detail: `rollout stuck: ${String(progressing.message ?? '')}` };
      }
      const done = generationSeen && num(status.updatedReplicas) >= desired && available >= desired;
      return { health: done ? 'ready' : 'progressing', detail: `${available}/${desired} available` };
    }
    case 'StatefulSet': {
      const desired = num(spec.replicas, 1);
      const ready = num(status.readyReplicas);
      const updated = status.updateRevision === undefined || status.currentRevision === status.updateRevision;
      return {
        health: generationSeen && ready >= desired && updated ? 'ready' : 'progressing',
        detail: `${ready}/${desired} ready`,
      };
    }
    case 'DaemonSet': {
      const desired = num(status.desiredNumberScheduled);
      const ready = num(status.numberReady);
      return {
        health: generationSeen && ready >= desired ? 'ready' : 'progressing',
        detail: `${ready}/${desired} ready`,
      };
    }
    case 'Job': {
      if (condition(live, 'Complete')?.status === 'True') return { health: 'ready', detail: 'complete' };
      const failed = condition(live, 'Failed');
      if (failed?.status === 'True') return { health: 'failed', detail: String(failed.reason ?? 'failed') };
      return { health: 'progressing', detail: `${num(status.active)} running` };
    }
    case 'HorizontalPodAutoscaler': {
      const active = condition(live, 'ScalingActive');
      const replicas = `${num(status.currentReplicas)} replicas (want ${num(status.desiredReplicas)})`;
      if (active?.status === 'False')
        return { health: 'failed', detail: `${String(active.reason ?? '')}: ${replicas}` };
      return { health: 'ready', detail: replicas };
    }
    case 'APIService': {
      const available = condition(live, 'Available');
      return available?.status === 'True'
        ? { health: 'ready', detail: 'Available' }
        : { health: 'progressing', detail: `not Available: ${String(available?.reason ?? 'no status yet')}` };
    }
    case 'Ingress': {
      const addresses = record(record(live.status).loadBalancer).ingress;
      const list = Array.isArray(addresses) ? addresses.map(record) : [];
      const shown = list.map((item) => String(item.ip ?? item.hostname ?? '')).filter(Boolean);
      return shown.length > 0
        ? { health: 'ready', detail: `address ${shown.join(', ')}` }
        : { health: 'progressing', detail: 'no address yet (is the ingress controller running?)' };
    }
    case 'PersistentVolumeClaim':
      return status.phase === 'Bound'
        ? { health: 'ready', detail: 'Bound' }
        : { health: 'progressing', detail: String(status.phase ?? 'Pending') };
    default:
      return { health: 'present', detail: '' };
  }
}

function key(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${namespace ?? ''}/${name}`;
}

async function liveObjects(run: RunKubectl, manifests: readonly Manifest[]): Promise<Map<string, Live>> {
  const found = new Map<string, Live>();
  if (manifests.length === 0) return found;
  const result = await run({
    args: ['get', '--filename', '-', '--ignore-not-found', '--output', 'json'],
    input: toYaml(manifests),
  });
  if (result.exitCode !== 0) {
    throw new RuntimeFailure(`kubectl get failed: ${firstErrorLine(result)}`);
  }
  if (result.stdout.trim() === '') return found;
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout);
  } catch {
    throw new RuntimeFailure('kubectl get printed something other than JSON.');
  }
  // One object comes back bare, several as a List.
  const items = isRecord(parsed) && Array.isArray(parsed.items) ? parsed.items : [parsed];
  for (const item of items) {
    if (!isRecord(item) || typeof item.kind !== 'string') continue;
    const metadata = record(item.metadata);
    const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : undefined;
    found.set(key(item.kind, namespace, String(metadata.name ?? '')), item);
  }
  return found;
}

async function secretExists(run: RunKubectl, namespace: string, name: string): Promise<boolean> {
  // `-o name` on purpose: the values are not needed to know the Secret is there.
  const result = await run({
    args: ['get', 'secret', name, '--namespace', namespace, '--ignore-not-found', '--output', 'name'],
  });
  return result.exitCode === 0 && result.stdout.trim() !== '';
}

export async function clusterStatus(run: RunKubectl, plan: Plan): Promise<StageStatus[]> {
  const manifests = plan.stages.flatMap(stageManifests);
  const live = await liveObjects(run, manifests);
  const statusOfManifest = (manifest: Manifest): ObjectStatus => {
    const ref = `${manifest.kind}/${manifest.metadata.name}`;
    const object = live.get(key(manifest.kind, manifest.metadata.namespace, manifest.metadata.name));
    if (!object && manifest.kind === 'Job' && record(manifest.spec).ttlSecondsAfterFinished !== undefined) {
      // Removed by its TTL once finished; a failed run stays long enough to be seen.
      return { ref, health: 'present', detail: 'removed after it finished (ttlSecondsAfterFinished)' };
    }
    if (!object) return { ref, health: 'missing', detail: 'not in the cluster' };
    return { ref, ...healthOf(object) };
  };
  const byRef = new Map(
    manifests.map((manifest) => [`${manifest.kind}/${manifest.metadata.name}`, manifest]),
  );

  const stages: StageStatus[] = [];
  for (const stage of plan.stages) {
    const objects: ObjectStatus[] = [];
    if (stage.applies) {
      for (const entry of stage.entries) {
        if (entry.manifest) {
          objects.push(statusOfManifest(entry.manifest));
        } else {
          const exists = await secretExists(run, plan.namespace, entry.name);
          objects.push({
            ref: entry.ref,
            health: exists ? 'present' : 'missing',
            detail: exists ? '' : 'not in the cluster',
          });
        }
      }
    } else {
      // A wait-only stage is as healthy as the workloads it waits for.
      for (const ref of new Set(stage.waits.map((wait) => wait.ref))) {
        const manifest = byRef.get(ref);
        if (manifest) objects.push(statusOfManifest(manifest));
      }
    }
    stages.push({
      id: stage.id,
      number: stage.number,
      title: stage.title,
      health: worst(objects.map((object) => object.health)),
      objects,
    });
  }
  return stages;
}
