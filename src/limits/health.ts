/**
 * Whether a background link answers (the shared counter store for CounterSync, the primary's
 * leases for LeaseClient), reported once per transition: the first failure marks it down and the
 * next success up again, each applied to the limiter and announced once.
 */
export type HealthListener = (healthy: boolean, error: Error | undefined) => void;

export class LinkHealth {
  private up = true;
  private error: Error | undefined;

  constructor(
    /** Applies a transition (to the limiter in use at that moment). */
    private readonly apply: (healthy: boolean) => void,
    private readonly onStateChange: HealthListener | undefined,
  ) {}

  get healthy(): boolean {
    return this.up;
  }

  get lastError(): Error | undefined {
    return this.error;
  }

  /** Records one outcome; a change of state is applied, then announced. */
  report(healthy: boolean, error: Error | undefined): void {
    if (!healthy) this.error = error;
    if (healthy === this.up) return;
    this.up = healthy;
    this.apply(healthy);
    try {
      this.onStateChange?.(healthy, error);
    } catch {
      // A logging callback must not break the loop that reports.
    }
  }
}
