/** Errors a user can cause: bad flags, settings or input. The CLI exits with status 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
  override name = 'UsageError';
}

/** Failures at run time that are not the user's input (upstream down, store unreachable): exit 1. */
export class RuntimeFailure extends Error {
  readonly exitCode = 1;
  override name = 'RuntimeFailure';
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError || error instanceof RuntimeFailure) return error.exitCode;
  if (error && typeof error === 'object' && 'exitCode' in error && typeof error.exitCode === 'number') {
    return error.exitCode;
  }
  return 1;
}
