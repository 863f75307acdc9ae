/**
 * The one door to kubectl. Everything in src/deploy calls a RunKubectl function: in production the
 * execa-backed one below, in tests any function that answers like kubectl would.
 */
import { execa } from 'execa';
import { UsageError } from '../errors.js';

export interface KubectlCall {
  args: readonly string[];
  /** Written to kubectl's stdin (manifests for `apply -f -`). */
  input?: string;
  /** Kill kubectl after this long; the result then has timedOut set. */
  timeoutMs?: number;
  /** Kill kubectl when aborted (the losing side of a race between two waits). */
  signal?: AbortSignal;
}

export interface KubectlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Killed by us (timeoutMs), as opposed to kubectl's own --timeout expiring. */
  timedOut: boolean;
  /** Killed because the signal aborted. */
  canceled: boolean;
}

export type RunKubectl = (call: KubectlCall) => Promise<KubectlResult>;

export const KUBECTL_MISSING_MESSAGE =
  'kubectl was not found on PATH. Install it (https://kubernetes.io/docs/tasks/tools/) or put its directory ' +
  'on PATH, then run this command again.';

/** Runs the `kubectl` found on PATH. Throws UsageError when there is none. */
export function execaKubectl(binary = 'kubectl'): RunKubectl {
  return async (call) => {
    const result = await execa(binary, [...call.args], {
      // Always a stdin, even empty: kubectl must never sit waiting on the terminal.
      input: call.input ?? '',
      timeout: call.timeoutMs,
      cancelSignal: call.signal,
      reject: false,
      stripFinalNewline: false,
    });
    if (result.code === 'ENOENT') throw new UsageError(KUBECTL_MISSING_MESSAGE);
    return {
      exitCode: typeof result.exitCode === 'number' ? result.exitCode : 1,
      stdout: String(result.stdout ?? ''),
      stderr: String(result.stderr ?? ''),
      timedOut: result.timedOut === true,
      canceled: result.isCanceled === true,
    };
  };
}

/** Adds `--context C` in front of every call. */
export function withContext(run: RunKubectl, context: string | undefined): RunKubectl {
  if (!context) return run;
  return (call) => run({ ...call, args: ['--context', context, ...call.args] });
}

/** The first meaningful line of kubectl's error output, for one-line messages. */
export function firstErrorLine(result: Pick<KubectlResult, 'stderr' | 'stdout'>): string {
  const lines = `${result.stderr}\n${result.stdout}`
    .split('\n')
    .map((text) => text.trim())
    .filter((text) => text.length > 0);
  // The line that says what went wrong, when one says so (apply also lists what it did apply);
  // klog's prefixed lines (`E1127 18:06:11.249 run.go:72] …`) say the same less readably.
  return (
    lines.find((text) => /^(error|Error from server|The connection to the server)\b/.test(text)) ??
    lines.find((text) => !/^[EWI]\d{4} /.test(text)) ??
    lines[0] ??
    'no output'
  );
}
