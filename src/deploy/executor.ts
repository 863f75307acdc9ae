/**
 * Applies a plan stage by stage and waits for each stage before the next one starts. On the first
 * failure it stops, gathers the failing object's events and pod logs, reports them and returns.
 *
 * Objects are applied with server-side apply: client-side apply keeps a copy of every object in an
 * annotation limited to 256 KiB, which a ConfigMap of Grafana dashboards can exceed.
 */
import { collectDiagnostics, type DiagnosticTarget } from './diagnostics.js';
import { firstErrorLine, type KubectlResult, type RunKubectl } from './kubectl.js';
import { type Manifest, toYaml } from './manifests.js';
import { type Plan, type PlanEntry, type PlanStage, stageManifests, type Wait } from './plan.js';
import type { DeployReporter, Failure } from './report.js';
import { changedKeys, withSecretChecksums, workloadsToRoll } from './rollout.js';
import {
  buildPrometheusAuthSecret,
  buildSecret,
  describeSources,
  PROMETHEUS_AUTH_SECRET,
  readExistingSecret,
  SECRET_NAME,
  withSecretFiles,
} from './secrets.js';
import { describeWait, runWait, type WaitContext } from './waits.js';

export const FIELD_MANAGER = 'meli-proxy-deploy';
/** How long past kubectl's own --timeout we let it run before killing it. */
export const DEFAULT_KILL_GRACE_MS = 10_000;

export interface ExecuteOptions {
  /** First line of the report; defaults to "Deploying to namespace N". */
  title?: string;
  run: RunKubectl;
  plan: Plan;
  /** Budget of each stage (applying plus waiting). */
  stageTimeoutMs: number;
  reporter: DeployReporter;
  /** Source of MELI_PROXY_ADMIN_TOKEN, MELI_PROXY_DATABASE_URL, MELI_CLIENT_* for the Secret. */
  env: NodeJS.ProcessEnv;
  now?: () => number;
  killGraceMs?: number;
  /** Random values for generated secrets (tests make them predictable). */
  random?: () => string;
}

export interface ExecuteResult {
  ok: boolean;
  failedStage?: string;
  failure?: Failure;
}

class StageFailure extends Error {
  constructor(
    readonly failure: Failure,
    readonly target?: DiagnosticTarget,
  ) {
    super(failure.message);
  }
}

/** kubectl's stderr, at most a few lines, for apply/delete failures (no events to show there). */
function errorLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.trim().length > 0)
    .slice(0, 12);
}

function isGeneratedSecret(entry: PlanEntry): boolean {
  return entry.manifest === undefined && entry.kind === 'Secret' && entry.name === SECRET_NAME;
}

function isGeneratedAuthSecret(entry: PlanEntry): boolean {
  return entry.manifest === undefined && entry.kind === 'Secret' && entry.name === PROMETHEUS_AUTH_SECRET;
}

/** What one deploy learns in one stage and needs in a later one. */
interface RunState {
  /** The Secret's values as applied (in memory only): pod templates get their checksums. */
  secretData: Record<string, string> | undefined;
}

const APPLY_ARGS = [
  'apply',
  '--server-side',
  `--field-manager=${FIELD_MANAGER}`,
  '--force-conflicts',
  '--filename',
  '-',
];

/** `failed` for a refusal ("kubectl apply failed in stage X: <kubectl's line>"); `subject` for a timeout. */
function applyFailure(failed: string, subject: string, result: KubectlResult, budgetMs: number): string {
  // Killed by us: kubectl printed nothing worth showing, and "no output" would say nothing.
  if (result.timedOut) {
    return `${subject} timed out after ${Math.ceil(budgetMs / 1000)}s: the API server did not answer in time. Raise --timeout if it is only slow.`;
  }
  return `${failed}: ${firstErrorLine(result)}`;
}

function waitTarget(wait: Wait): DiagnosticTarget {
  return { objectKind: wait.objectKind, name: wait.name, selector: wait.selector };
}

async function applyStage(
  stage: PlanStage,
  options: ExecuteOptions,
  deadline: number,
  state: RunState,
): Promise<void> {
  const { run, plan, reporter } = options;
  const now = options.now ?? Date.now;
  const namespace = plan.namespace;
  const manifests = state.secretData
    ? withSecretChecksums(stageManifests(stage), state.secretData)
    : stageManifests(stage);
  const remaining = () => Math.max(1000, deadline - now());

  // A Job's pod template cannot change: the previous run is deleted (with its pods) before the new
  // one is applied. The migration is idempotent, so running it again is the point.
  for (const job of manifests.filter((manifest) => manifest.kind === 'Job')) {
    reporter.note(stage.id, `replacing Job/${job.metadata.name}`);
    const result = await run({
      args: [
        'delete',
        'job',
        job.metadata.name,
        '--namespace',
        job.metadata.namespace ?? namespace,
        '--ignore-not-found',
        '--cascade=foreground',
        '--wait=true',
        `--timeout=${Math.ceil(remaining() / 1000)}s`,
      ],
      timeoutMs: remaining(),
    });
    if (result.exitCode !== 0) {
      throw new StageFailure({
        message: `Could not delete the previous Job/${job.metadata.name}: ${firstErrorLine(result)}`,
        events: [],
        logs: [],
        output: errorLines(result.stderr),
      });
    }
  }

  if (manifests.length > 0) {
    reporter.note(
      stage.id,
      `applying ${manifests.map((manifest) => `${manifest.kind}/${manifest.metadata.name}`).join(', ')}`,
    );
    const budget = remaining();
    const result = await run({ args: APPLY_ARGS, input: toYaml(manifests), timeoutMs: budget });
    if (result.exitCode !== 0 || result.timedOut) {
      throw new StageFailure({
        message: applyFailure(
          `kubectl apply failed in stage "${stage.title}"`,
          `kubectl apply in stage "${stage.title}"`,
          result,
          budget,
        ),
        events: [],
        logs: [],
        output: errorLines(result.stderr),
      });
    }
  }

  for (const entry of stage.entries) {
    if (!isGeneratedSecret(entry)) continue;
    const existing = await readExistingSecret(run, namespace);
    const secret = buildSecret(namespace, withSecretFiles(options.env), existing, options.random);
    reporter.note(stage.id, `Secret/${SECRET_NAME}: ${describeSources(secret.sources)}`);
    await applySecret(secret.manifest, options, remaining());
    state.secretData = decode(secret.manifest);
    reporter.note(stage.id, rollNote(plan, existing, state.secretData));
  }
  for (const entry of stage.entries) {
    if (!isGeneratedAuthSecret(entry)) continue;
    const password = state.secretData?.['prometheus-password'];
    if (!password) continue;
    reporter.note(
      stage.id,
      `Secret/${PROMETHEUS_AUTH_SECRET}: user admin, the password of prometheus-password`,
    );
    await applySecret(buildPrometheusAuthSecret(namespace, password), options, remaining());
  }
}

async function applySecret(manifest: Manifest, options: ExecuteOptions, budget: number): Promise<void> {
  const ref = `Secret/${manifest.metadata.name}`;
  const result = await options.run({ args: APPLY_ARGS, input: JSON.stringify(manifest), timeoutMs: budget });
  if (result.exitCode !== 0 || result.timedOut) {
    // kubectl's message names the object, never the data; still, only its first line is shown.
    throw new StageFailure({
      message: applyFailure(`Could not apply ${ref}`, `Applying ${ref}`, result, budget),
      ref,
      events: [],
      logs: [],
    });
  }
}

function decode(secret: Manifest): Record<string, string> {
  const data = (secret.data ?? {}) as Record<string, string>;
  return Object.fromEntries(
    Object.entries(data).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]),
  );
}

/** Says which workloads the Secret's changes roll (key names only, never values). */
function rollNote(
  plan: Plan,
  existing: Readonly<Record<string, string>> | undefined,
  data: Readonly<Record<string, string>>,
): string {
  if (existing === undefined) return `Secret/${SECRET_NAME} created`;
  const changed = changedKeys(existing, data);
  if (changed.length === 0) return `Secret/${SECRET_NAME} unchanged: no pod restarts for it`;
  const workloads = workloadsToRoll(plan.stages.flatMap(stageManifests), changed, data);
  const rolls =
    workloads.length > 0 ? `rolls ${workloads.join(', ')}` : 'no running workload reads these keys';
  return `Secret/${SECRET_NAME} changed (${changed.join(', ')}): ${rolls}`;
}

async function waitStage(stage: PlanStage, options: ExecuteOptions, deadline: number): Promise<void> {
  const context: WaitContext = {
    run: options.run,
    namespace: options.plan.namespace,
    deadline,
    stageTimeoutMs: options.stageTimeoutMs,
    killGraceMs: options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
    now: options.now ?? Date.now,
  };
  for (const wait of stage.waits) {
    options.reporter.note(stage.id, `waiting for ${describeWait(wait)}`);
    const outcome = await runWait(wait, context);
    if (!outcome.ok) {
      throw new StageFailure(
        { message: outcome.message, ref: wait.ref, events: [], logs: [] },
        waitTarget(wait),
      );
    }
  }
}

export async function executePlan(options: ExecuteOptions): Promise<ExecuteResult> {
  const { plan, reporter } = options;
  const now = options.now ?? Date.now;
  // Bad secret input (a short token, an unreadable *_FILE) is the user's to fix: refuse it before
  // anything is applied rather than half-way through.
  if (plan.stages.some((stage) => stage.entries.some((entry) => isGeneratedSecret(entry)))) {
    buildSecret(plan.namespace, withSecretFiles(options.env), undefined, options.random);
  }
  const started = now();
  const state: RunState = { secretData: undefined };
  reporter.start(
    options.title ?? `Deploying to namespace ${plan.namespace}`,
    plan.stages.map((stage) => ({ id: stage.id, number: stage.number, title: stage.title })),
  );
  for (const stage of plan.stages) {
    const stageStart = now();
    const deadline = stageStart + options.stageTimeoutMs;
    reporter.stageStarted(stage.id);
    try {
      if (stage.applies) await applyStage(stage, options, deadline, state);
      await waitStage(stage, options, deadline);
      reporter.stageDone(stage.id, now() - stageStart);
    } catch (error) {
      if (!(error instanceof StageFailure)) {
        // Unexpected: still leave the view in a finished state before the CLI reports the error.
        const message = error instanceof Error ? error.message : String(error);
        reporter.stageFailed(stage.id, now() - stageStart, { message, events: [], logs: [] });
        await reporter.finish(false, now() - started);
        throw error;
      }
      let failure = error.failure;
      if (error.target) {
        const diagnostics = await collectDiagnostics(options.run, plan.namespace, error.target);
        failure = { ...failure, ...diagnostics };
      }
      reporter.stageFailed(stage.id, now() - stageStart, failure);
      await reporter.finish(false, now() - started);
      return { ok: false, failedStage: stage.id, failure };
    }
  }
  await reporter.finish(true, now() - started);
  return { ok: true };
}
