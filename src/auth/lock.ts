/**
 * A named lock shared by every process that may refresh the token, so that exactly one of them
 * spends a single-use refresh token. The DocumentStore cannot express it, hence this small
 * interface with one backend per store kind (token-backend.ts chooses):
 *   PostgreSQL  a transaction-scoped advisory lock (lock-postgres.ts)
 *   Redis       `SET key owner NX PX ttl`, released by a compare-and-delete script (lock-redis.ts)
 *   embedded    an in-process mutex (below), held by the cluster primary for all the workers of
 *               `serve --workers N` (lock-ipc.ts)
 * The lock saves work; it is not what keeps the stored token right: every save is a compare-and-set.
 */

export interface LockHandle {
  /** Gives the lock up. Safe to call twice; never throws. */
  release(): Promise<void>;
}

export interface LockOptions {
  /** How long to wait for a holder to let go before giving up. */
  waitMs: number;
  /** Bound on how long a holder that hangs keeps the lock; the holder must finish well before. */
  ttlMs: number;
}

export interface Lock {
  /** The lock, or undefined when it was not free within `waitMs`. Rejects when the backend fails. */
  acquire(name: string, options: LockOptions): Promise<LockHandle | undefined>;
  close(): Promise<void>;
}

interface Holder {
  owner: symbol;
  expiresAt: number;
}

/**
 * A mutex for one process (the cluster primary's serves its workers). Another process on the same
 * token file, say `auth refresh` while `serve` runs, is not excluded: the compare-and-set keeps the
 * file right, and the token manager recovers from an invalid_grant by reloading what was saved.
 */
export class InProcessLock implements Lock {
  private readonly holders = new Map<string, Holder>();
  private readonly wakers = new Map<string, Set<() => void>>();

  constructor(private readonly now: () => number = Date.now) {}

  async acquire(name: string, options: LockOptions): Promise<LockHandle | undefined> {
    const deadline = this.now() + options.waitMs;
    for (;;) {
      const now = this.now();
      const holder = this.holders.get(name);
      if (!holder || holder.expiresAt <= now) {
        const owner = Symbol(name);
        this.holders.set(name, { owner, expiresAt: now + options.ttlMs });
        return { release: async () => this.release(name, owner) };
      }
      if (now >= deadline) return undefined;
      await this.waitForRelease(name, Math.min(deadline, holder.expiresAt) - now);
    }
  }

  async close(): Promise<void> {
    this.holders.clear();
    for (const set of this.wakers.values()) for (const wake of set) wake();
  }

  private release(name: string, owner: symbol): void {
    if (this.holders.get(name)?.owner !== owner) return;
    this.holders.delete(name);
    for (const wake of this.wakers.get(name) ?? []) wake();
  }

  private waitForRelease(name: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.wakers.get(name);
      if (!set) {
        set = new Set();
        this.wakers.set(name, set);
      }
      const wake = (): void => {
        clearTimeout(timer);
        set.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(1, ms));
      set.add(wake);
    });
  }
}
