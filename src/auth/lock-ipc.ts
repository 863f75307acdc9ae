/**
 * The refresh lock of one host when `serve --workers N` runs on the embedded store: the cluster
 * primary holds the lock (an InProcessLock in its memory) and its workers take and give it back over
 * their IPC channel, so every worker of the host refreshes through one lock, as the rate-limit
 * leases already go through the primary. A worker that dies holding it frees it as it exits.
 */
import type { IpcPeer } from '../store/ipc-peer.js';
import { InProcessLock, type Lock, type LockHandle, type LockOptions } from './lock.js';

export const HOST_LOCK_OPS = {
  acquire: 'auth.lock.acquire',
  release: 'auth.lock.release',
} as const;

/** How much longer than its wait a worker gives the primary to answer an acquire. */
const ANSWER_MARGIN_MS = 5000;

/** What the primary needs of a worker: its channel, and word when it exits. */
export interface LockClient {
  once(event: 'exit', listener: () => void): unknown;
}

/** The primary's side: one lock for the host, served on each worker's channel. */
export class HostLock {
  private readonly lock = new InProcessLock();
  private nextId = 1;

  serve(peer: IpcPeer, worker: LockClient): void {
    const held = new Map<number, LockHandle>();
    peer
      .handle(HOST_LOCK_OPS.acquire, async (name: string, options: LockOptions) => {
        const handle = await this.lock.acquire(name, options);
        if (!handle) return undefined;
        const id = this.nextId++;
        held.set(id, handle);
        return id;
      })
      .handle(HOST_LOCK_OPS.release, async (id: number) => {
        const handle = held.get(id);
        held.delete(id);
        await handle?.release();
      });
    worker.once('exit', () => {
      for (const handle of held.values()) void handle.release();
      held.clear();
    });
  }
}

/** A worker's side: the host lock held by the primary. */
export class IpcLock implements Lock {
  constructor(private readonly primary: IpcPeer) {}

  async acquire(name: string, options: LockOptions): Promise<LockHandle | undefined> {
    const id = await this.primary.call<number | undefined>(
      HOST_LOCK_OPS.acquire,
      [name, options],
      options.waitMs + ANSWER_MARGIN_MS,
    );
    if (id === undefined) return undefined;
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        // Failing to give it back is harmless: the primary frees it after its TTL or at our exit.
        await this.primary.call(HOST_LOCK_OPS.release, [id]).catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {}
}
