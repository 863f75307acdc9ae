/** What /ready reports: the server is ready when it is not draining and every check passes. */
export interface Readiness {
  ready: boolean;
  reasons: string[];
}

/** A named dependency check; it rejects (or resolves with a reason) when the dependency is unhealthy. */
export type ReadinessCheck = () => Promise<string | undefined>;

const CHECK_TIMEOUT_MS = 2000;

function withTimeout(check: ReadinessCheck): Promise<string | undefined> {
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
  private draining = false;
  private readonly checks = new Map<string, ReadinessCheck>();

  /** Bound so the forwarder can ask per response without a closure per request. */
  readonly isDraining = (): boolean => this.draining;

  startDraining(): void {
    this.draining = true;
  }

  addCheck(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  async readiness(): Promise<Readiness> {
    const reasons: string[] = [];
    if (this.draining) reasons.push('draining: the server is shutting down');
    const names = [...this.checks.keys()];
    const results = await Promise.all([...this.checks.values()].map(withTimeout));
    results.forEach((reason, index) => {
      if (reason) reasons.push(`${names[index]}: ${reason}`);
    });
    return { ready: reasons.length === 0, reasons };
  }
}
