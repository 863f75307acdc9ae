/**
 * `deploy destroy`: deletes what the plan created, stage by stage in reverse order (ingress first,
 * namespace last), waiting for each deletion. Deleting the namespace also removes what it holds that
 * the manifests do not name, such as the PostgreSQL volume claims.
 */
import { UsageError } from '../errors.js';
import { isClusterScoped } from './customize.js';
import type { ExecuteResult } from './executor.js';
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { toYaml } from './manifests.js';
import { type Plan, type PlanStage, stageManifests } from './plan.js';
import type { DeployReporter } from './report.js';

/** Namespaces a cluster cannot do without: never deleted, whatever the manifests say. */
export const PROTECTED_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

export interface DestroyOptions {
  /** First line of the report; defaults to "Destroying namespace N". */
  title?: string;
  run: RunKubectl;
  plan: Plan;
  stageTimeoutMs: number;
  reporter: DeployReporter;
  now?: () => number;
}

/**
 * The plan without the cluster-scoped objects that are not this install's (another install's, or
 * a Helm release's APIService): destroy leaves them alone. `owned` holds the `Kind/name` of those
 * that are ours; the namespace is ours by name.
 */
export function onlyOwned(plan: Plan, owned: ReadonlySet<string>): { plan: Plan; kept: string[] } {
  const kept: string[] = [];
  const stages = plan.stages.map((stage) => ({
    ...stage,
    entries: stage.entries.filter((entry) => {
      if (!entry.manifest || entry.kind === 'Namespace' || !isClusterScoped(entry.manifest)) return true;
      if (owned.has(entry.ref)) return true;
      kept.push(entry.ref);
      return false;
    }),
  }));
  return { plan: { ...plan, stages }, kept };
}

/** The stages destroy goes through, in its order. */
export function destroyStages(plan: Plan): PlanStage[] {
  return plan.stages.filter((stage) => stage.applies && stage.entries.length > 0).reverse();
}

/** Deploying into, or destroying, a namespace the cluster needs would relabel or delete it. */
export function assertOwnNamespace(plan: Plan, action: 'deploy into' | 'destroy'): void {
  if (PROTECTED_NAMESPACES.includes(plan.namespace)) {
    throw new UsageError(
      `Refusing to ${action} namespace "${plan.namespace}": it belongs to the cluster. Use a namespace of its own (--namespace).`,
    );
  }
}

export async function destroyPlan(options: DestroyOptions): Promise<ExecuteResult> {
  const { run, plan, reporter } = options;
  const now = options.now ?? Date.now;
  assertOwnNamespace(plan, 'destroy');
  const stages = destroyStages(plan);
  const started = now();
  reporter.start(
    options.title ?? `Destroying namespace ${plan.namespace}`,
    stages.map((stage, index) => ({ id: stage.id, number: index + 1, title: stage.title })),
  );
  for (const stage of stages) {
    const stageStart = now();
    const seconds = `${Math.ceil(options.stageTimeoutMs / 1000)}s`;
    reporter.stageStarted(stage.id);
    const calls: Array<{ args: string[]; input?: string }> = [];
    const manifests = stageManifests(stage);
    if (manifests.length > 0) {
      calls.push({
        args: ['delete', '--filename', '-', '--ignore-not-found', '--wait=true', `--timeout=${seconds}`],
        input: toYaml(manifests),
      });
    }
    for (const entry of stage.entries.filter(
      (item) => item.manifest === undefined && item.kind === 'Secret',
    )) {
      calls.push({
        args: [
          'delete',
          'secret',
          entry.name,
          '--namespace',
          plan.namespace,
          '--ignore-not-found',
          `--timeout=${seconds}`,
        ],
      });
    }
    for (const call of calls) {
      reporter.note(stage.id, `deleting ${stage.entries.map((entry) => entry.ref).join(', ')}`);
      const result = await run({ ...call, timeoutMs: options.stageTimeoutMs + 10_000 });
      if (result.exitCode !== 0 || result.timedOut) {
        const failure = {
          message: `kubectl delete failed in stage "${stage.title}": ${result.timedOut ? 'timed out' : firstErrorLine(result)}`,
          events: [],
          logs: [],
          output: result.stderr
            .split('\n')
            .filter((line) => line.trim().length > 0)
            .slice(0, 12),
        };
        reporter.stageFailed(stage.id, now() - stageStart, failure);
        await reporter.finish(false, now() - started);
        return { ok: false, failedStage: stage.id, failure };
      }
    }
    reporter.stageDone(stage.id, now() - stageStart);
  }
  await reporter.finish(true, now() - started);
  return { ok: true };
}
