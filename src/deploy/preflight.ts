/**
 * Before touching a cluster: is there a kubectl, and does the chosen context's API server answer?
 * Either missing is the user's to fix, so both are UsageErrors (exit 2) that say what to do.
 */
import { UsageError } from '../errors.js';
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { isRecord } from './manifests.js';

/** Throws UsageError when kubectl is missing or broken; resolves with its client version. */
export async function checkKubectl(run: RunKubectl): Promise<string> {
  // execaKubectl turns "not on PATH" into a UsageError itself.
  const result = await run({ args: ['version', '--client', '--output=json'], timeoutMs: 15_000 });
  if (result.exitCode !== 0) {
    throw new UsageError(`kubectl is on PATH but does not run (${firstErrorLine(result)}). Reinstall it.`);
  }
  try {
    const parsed: unknown = JSON.parse(result.stdout);
    if (
      isRecord(parsed) &&
      isRecord(parsed.clientVersion) &&
      typeof parsed.clientVersion.gitVersion === 'string'
    ) {
      return parsed.clientVersion.gitVersion;
    }
  } catch {
    // An unusual build: the version is only informative.
  }
  return 'unknown';
}

/**
 * Throws UsageError unless the context exists and its API server answers within 10 s.
 * `run` must already carry `--context` when one was chosen. Resolves with the context's name.
 */
export async function checkCluster(run: RunKubectl, context: string | undefined): Promise<string> {
  let name = context;
  if (name === undefined) {
    const current = await run({ args: ['config', 'current-context'], timeoutMs: 15_000 });
    name = current.stdout.trim();
    if (current.exitCode !== 0 || name === '') {
      throw new UsageError(
        'kubectl has no current context. Pass --context NAME (see `kubectl config get-contexts`) or run `kubectl config use-context NAME`.',
      );
    }
  }
  const result = await run({
    args: ['version', '--output=json', '--request-timeout=10s'],
    timeoutMs: 20_000,
  });
  let answered = false;
  if (result.exitCode === 0) {
    try {
      const parsed: unknown = JSON.parse(result.stdout);
      answered = isRecord(parsed) && isRecord(parsed.serverVersion);
    } catch {
      answered = false;
    }
  }
  if (!answered) {
    const why = result.timedOut ? 'no answer within 20 s' : firstErrorLine(result);
    throw new UsageError(
      `The cluster of kubectl context "${name}" does not answer (${why}). Check that it is running and that ` +
        `\`kubectl --context ${name} get namespaces\` works, or choose another context with --context.`,
    );
  }
  return name;
}
