/**
 * What /ready reports. Ready means "send me traffic": the server has started and is not draining.
 * Dependencies (the store) are reported beside it but never make the server unready: the proxy is
 * built to keep serving through a store outage (`--on-store-error`), and every replica shares the
 * same store, so tying readiness to it would take every pod out of its Service at once.
 */
export interface DependencyHealth {
  healthy: boolean;
  /** Why it is unhealthy; absent when healthy. */
  reason?: string;
}

export interface Readiness {
  ready: boolean;
  /** Why the server is not ready (empty when ready). */
  reasons: string[];
  /** Health of each dependency, by name, for operators and dashboards. */
  dependencies: Record<string, DependencyHealth>;
}

/** A named dependency check; it rejects (or resolves with a reason) when the dependency is unhealthy. */
export type DependencyCheck = () => Promise<string | undefined>;

const CHECK_TIMEOUT_MS = 2000;

function withTimeout(check: DependencyCheck): Promise<string | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(`check timed out after ${CHECK_TIMEOUT_MS} ms`), CHECK_TIMEOUT_MS);
    check().then(
      (reason) => {
        clearTimeout(timer);
        resolve(reason);
      },
      (error: unknown) => {
        clearTimeout(timer);
        resolve(error instanceof Error ? error.message : String(error));
      },
    );
  });
}

export class ServerState {
  private started = false;
  private draining = false;
  private readonly checks = new Map<string, DependencyCheck>();

  /** Bound so the forwarder can ask per response without a closure per request. */
  readonly isDraining = (): boolean => this.draining;

  /** Called once every listener is up: until then /ready answers 503. */
  markStarted(): void {
    this.started = true;
  }

  startDraining(): void {
    this.draining = true;
  }

  /** A dependency reported in /ready's body; it never decides readiness. */
  addDependency(name: string, check: DependencyCheck): void {
    this.checks.set(name, check);
  }

  async readiness(): Promise<Readiness> {
    const reasons: string[] = [];
    if (!this.started) reasons.push('starting: the server is not listening on every port yet');
    if (this.draining) reasons.push('draining: the server is shutting down');
    const names = [...this.checks.keys()];
    const results = await Promise.all([...this.checks.values()].map(withTimeout));
    const dependencies: Record<string, DependencyHealth> = {};
    results.forEach((reason, index) => {
      dependencies[names[index]!] = reason ? { healthy: false, reason } : { healthy: true };
    });
    return { ready: reasons.length === 0, reasons, dependencies };
  }
}
