/**
 * One timer for many deadlines. Forwarded requests that may stall (a body still arriving, a
 * response the client is not reading, a wait for an upstream connection) ask to be watched; one
 * interval timer checks them all, so no request allocates a timer of its own, and the timer runs
 * only while something is watched.
 */

export interface Watched {
  /**
   * Called on every sweep with the current time (ms, the sweep's clock): act on a passed deadline,
   * and return whether the item still needs watching.
   */
  checkDeadlines(now: number): boolean;
}

export interface SweepOptions {
  /** How often deadlines are checked, ms: a deadline is acted on at most this late. */
  intervalMs: number;
  /** The clock deadlines are measured on (default `performance.now`). */
  now?: () => number;
}

export class DeadlineSweep {
  private items: Watched[] = [];
  private timer: NodeJS.Timeout | undefined;
  readonly now: () => number;

  constructor(private readonly options: SweepOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Adds an item; the caller keeps it from being added twice while it is watched. */
  watch(item: Watched): void {
    this.items.push(item);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), this.options.intervalMs);
      this.timer.unref();
    }
  }

  get watching(): number {
    return this.items.length;
  }

  /** Checks every item once; those that need no more watching are dropped. */
  sweep(): void {
    const items = this.items;
    const count = items.length;
    const now = this.now();
    let kept = 0;
    for (let i = 0; i < count; i++) {
      const item = items[i]!;
      if (item.checkDeadlines(now)) items[kept++] = item;
    }
    // Items added while checking (a retry, a new request) stay for the next sweep.
    for (let i = count; i < items.length; i++) items[kept++] = items[i]!;
    items.length = kept;
    if (kept === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.items = [];
  }
}
