/**
 * Errors a user can cause through the store settings. They carry a stable `code` and the exit
 * code the CLI should use, and their messages never contain credentials.
 */

/** The `--store` value (or a store file) is unusable as given: exit code 2. */
export class StoreConfigError extends Error {
  readonly code = 'STORE_CONFIG';
  readonly exitCode = 2;
  override name = 'StoreConfigError';
}

/** The PostgreSQL schema is behind this version; the user must migrate first: exit code 2. */
export class StoreNotMigratedError extends Error {
  readonly code = 'STORE_NOT_MIGRATED';
  readonly exitCode = 2;
  override name = 'StoreNotMigratedError';

  constructor(
    readonly displayUrl: string,
    readonly pending: readonly string[],
  ) {
    super(
      `The PostgreSQL store ${displayUrl} needs ${pending.length} migration(s) (${pending.join(', ')}). ` +
        `Run "meli-proxy migrate --store ${displayUrl}" (with the real password) or pass --migrate.`,
    );
  }
}

/** The store could not be reached while opening it: exit code 1 (a runtime failure). */
export class StoreUnavailableError extends Error {
  readonly code = 'STORE_UNAVAILABLE';
  readonly exitCode = 1;
  override name = 'StoreUnavailableError';
}

/** A one-line reason for any thrown value; network errors from dual-stack connects are aggregates. */
export function errorMessage(error: unknown): string {
  if (error instanceof AggregateError && !error.message) {
    return error.errors.map(errorMessage).join('; ') || 'unknown error';
  }
  if (error instanceof Error) return error.message || (error as NodeJS.ErrnoException).code || error.name;
  return String(error);
}
