/**
 * What the executor tells whoever is watching. Two views implement it: plain timestamped lines
 * (views/plain.ts) and the ink view for terminals (views/ink.tsx).
 */

export interface StageHeader {
  /** A stage id (deploy) or any unique key. */
  id: string;
  number: number;
  title: string;
}

export interface Failure {
  /** One or two lines: what failed and why. */
  message: string;
  /** `Kind/name` of the object that failed, when one did. */
  ref?: string | undefined;
  /** Its recent events, oldest first, already formatted. */
  events: string[];
  /** The tail of its pods' logs. */
  logs: string[];
  /** kubectl's own error output, when kubectl apply or delete refused something. */
  output?: string[];
}

export interface DeployReporter {
  start(title: string, stages: readonly StageHeader[]): void;
  stageStarted(id: string): void;
  /** Progress inside a stage ("applying 3 objects", "waiting for StatefulSet/postgres"). */
  note(id: string, text: string): void;
  stageDone(id: string, elapsedMs: number): void;
  stageFailed(id: string, elapsedMs: number, failure: Failure): void;
  /** Resolves once everything is on screen. */
  finish(ok: boolean, elapsedMs: number): Promise<void>;
}

/** `850ms`, `12.3s`, `2m05s`. */
export function formatElapsed(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.floor((ms % 60_000) / 1000);
  return `${minutes}m${String(seconds).padStart(2, '0')}s`;
}

/** A reporter that ignores everything (for callers that only want the result). */
export const silentReporter: DeployReporter = {
  start: () => undefined,
  stageStarted: () => undefined,
  note: () => undefined,
  stageDone: () => undefined,
  stageFailed: () => undefined,
  finish: async () => undefined,
};
