/**
 * Waiting for one object with kubectl, within what is left of the stage's time:
 *   rollout     kubectl rollout status <Kind>/<name>
 *   pods-ready  kubectl wait --for=condition=Ready pod -l <selector>
 *   available   kubectl wait --for=condition=Available apiservice/<name>
 *   address     kubectl wait --for=jsonpath={.status.loadBalancer.ingress} ingress/<name>
 *   job         kubectl wait --for=condition=complete job/<name>, raced against
 *               kubectl wait --for=condition=failed job/<name>, so a failed Job stops the deploy at
 *               once instead of after the whole timeout.
 * kubectl gets the remaining time as its own --timeout; we also kill it a little later (killGraceMs)
 * in case it hangs (a stuck API connection), so a stage never outlives its budget by much.
 */
import { firstErrorLine, type KubectlResult, type RunKubectl } from './kubectl.js';
import { isRecord } from './manifests.js';
import type { Wait } from './plan.js';
import { formatElapsed } from './report.js';

export interface WaitContext {
  run: RunKubectl;
  namespace: string;
  /** Epoch ms by which the stage must be done. */
  deadline: number;
  /** The stage timeout, for messages. */
  stageTimeoutMs: number;
  killGraceMs: number;
  now: () => number;
}

export type WaitOutcome = { ok: true } | { ok: false; reason: 'timeout' | 'failed'; message: string };

export function describeWait(wait: Wait): string {
  switch (wait.kind) {
    case 'rollout':
      return `rollout of ${wait.ref}`;
    case 'pods-ready':
      return `pods of ${wait.ref} Ready`;
    case 'job':
      return `${wait.ref} to complete`;
    case 'available':
      return `${wait.ref} Available`;
    case 'address':
      return `${wait.ref} to get an address`;
  }
}

/** What usually keeps a wait from ending, said after a timeout. */
function timeoutHint(wait: Wait): string {
  switch (wait.kind) {
    case 'address':
      return ' The ingress controller gives the address: check that it runs (`deploy status` lists it).';
    case 'available':
      return ' The API server cannot reach the adapter yet: check its pods and Prometheus.';
    default:
      return ' Raise --timeout if it is only slow.';
  }
}

function timeoutOutcome(wait: Wait, context: WaitContext, detail?: string): WaitOutcome {
  const suffix = detail ? ` (kubectl: ${detail})` : '';
  return {
    ok: false,
    reason: 'timeout',
    message: `Timed out after ${formatElapsed(context.stageTimeoutMs)} waiting for ${describeWait(wait)}${suffix}.${timeoutHint(wait)}`,
  };
}

/** kubectl's own --timeout expiring looks like this on stderr. */
function kubectlTimedOut(result: KubectlResult): boolean {
  return /timed out|deadline exceeded|exceeded its progress deadline/i.test(
    `${result.stderr}\n${result.stdout}`,
  );
}

function judge(wait: Wait, context: WaitContext, result: KubectlResult): WaitOutcome {
  if (result.exitCode === 0 && !result.timedOut) return { ok: true };
  if (result.timedOut) return timeoutOutcome(wait, context);
  if (kubectlTimedOut(result)) return timeoutOutcome(wait, context, firstErrorLine(result));
  return { ok: false, reason: 'failed', message: `${describeWait(wait)} failed: ${firstErrorLine(result)}` };
}

async function jobFailureDetail(run: RunKubectl, namespace: string, name: string): Promise<string> {
  const result = await run({ args: ['get', 'job', name, '--namespace', namespace, '--output', 'json'] });
  if (result.exitCode !== 0) return '';
  try {
    const job: unknown = JSON.parse(result.stdout);
    const conditions =
      isRecord(job) && isRecord(job.status) && Array.isArray(job.status.conditions)
        ? job.status.conditions
        : [];
    const failed = conditions.find((condition) => isRecord(condition) && condition.type === 'Failed');
    if (isRecord(failed)) {
      const reason = typeof failed.reason === 'string' ? failed.reason : 'Failed';
      const message = typeof failed.message === 'string' ? `: ${failed.message}` : '';
      return ` (${reason}${message})`;
    }
  } catch {
    // No detail then.
  }
  return '';
}

async function waitForJob(
  wait: Wait,
  context: WaitContext,
  seconds: string,
  killAfter: number,
): Promise<WaitOutcome> {
  const { run, namespace } = context;
  const controller = new AbortController();
  const waitFor = (condition: string) =>
    run({
      args: [
        'wait',
        `--for=condition=${condition}`,
        `job/${wait.name}`,
        '--namespace',
        namespace,
        `--timeout=${seconds}`,
      ],
      timeoutMs: killAfter,
      signal: controller.signal,
    });
  const complete = waitFor('complete');
  const failed = waitFor('failed');
  try {
    const first = await Promise.race([
      complete.then((result) => ({ condition: 'complete' as const, result })),
      failed.then((result) => ({ condition: 'failed' as const, result })),
    ]);
    if (first.condition === 'failed' && first.result.exitCode === 0) {
      const detail = await jobFailureDetail(run, namespace, wait.name);
      return { ok: false, reason: 'failed', message: `${wait.ref} failed${detail}.` };
    }
    // Either the complete-wait answered, or the failed-wait gave up (timeout, error): the
    // complete-wait decides.
    const result = first.condition === 'complete' ? first.result : await complete;
    return judge(wait, context, result);
  } finally {
    controller.abort();
    await Promise.allSettled([complete, failed]);
  }
}

export async function runWait(wait: Wait, context: WaitContext): Promise<WaitOutcome> {
  const remaining = context.deadline - context.now();
  if (remaining <= 0) return timeoutOutcome(wait, context);
  const seconds = `${Math.max(1, Math.ceil(remaining / 1000))}s`;
  const killAfter = remaining + context.killGraceMs;
  const { run, namespace } = context;
  switch (wait.kind) {
    case 'rollout': {
      const result = await run({
        args: [
          'rollout',
          'status',
          `${wait.objectKind.toLowerCase()}/${wait.name}`,
          '--namespace',
          namespace,
          `--timeout=${seconds}`,
        ],
        timeoutMs: killAfter,
      });
      return judge(wait, context, result);
    }
    case 'pods-ready': {
      const result = await run({
        args: [
          'wait',
          '--for=condition=Ready',
          'pod',
          '--selector',
          wait.selector ?? '',
          '--namespace',
          namespace,
          `--timeout=${seconds}`,
        ],
        timeoutMs: killAfter,
      });
      return judge(wait, context, result);
    }
    case 'job':
      return waitForJob(wait, context, seconds, killAfter);
    case 'available':
    case 'address': {
      const condition =
        wait.kind === 'available'
          ? '--for=condition=Available'
          : '--for=jsonpath={.status.loadBalancer.ingress}';
      const result = await run({
        args: [
          'wait',
          condition,
          `${wait.objectKind.toLowerCase()}/${wait.name}`,
          '--namespace',
          namespace,
          `--timeout=${seconds}`,
        ],
        timeoutMs: killAfter,
      });
      return judge(wait, context, result);
    }
  }
}
