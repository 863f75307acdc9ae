/**
 * The refresh lock on Redis: `SET key owner NX PX ttl` to take it (retried with a short backoff
 * until `waitMs`), and a compare-and-delete script to give it back, so a holder whose TTL ran out
 * can never delete the lock of the next one. A crashed or hung holder's lock expires after `ttlMs`.
 *
 * Single Redis node (or a primary with replicas) semantics: after a failover the new primary may
 * not have the lock yet. The token manager's re-read under the lock and its invalid_grant recovery
 * keep that rare case from losing the token.
 */
import { randomUUID } from 'node:crypto';
import type { RedisConnection } from '../store/redis-client.js';
import type { Lock, LockHandle, LockOptions } from './lock.js';
import { TOKEN_COMMAND_TIMEOUT_MS } from './token-slot-redis.js';

/** Deletes the key only while it still holds this owner's value. */
const RELEASE_SCRIPT =
  "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

export function redisLockKey(name: string): string {
  return `meli-proxy:lock:${name}`;
}

/**
 * On an open connection it shares with the token's slot (which closes it): a lock that opened a
 * connection of its own on first use would stay broken if that one attempt timed out.
 */
export class RedisLock implements Lock {
  constructor(private readonly connection: RedisConnection) {}

  async acquire(name: string, options: LockOptions): Promise<LockHandle | undefined> {
    const key = redisLockKey(name);
    const owner = randomUUID();
    const deadline = Date.now() + options.waitMs;
    for (let pause = 20; ; pause = Math.min(pause * 2, 200)) {
      const reply = await this.connection.bound(
        (client) =>
          client.set(key, owner, {
            condition: 'NX',
            expiration: { type: 'PX', value: Math.max(1, Math.round(options.ttlMs)) },
          }),
        TOKEN_COMMAND_TIMEOUT_MS,
      );
      if (reply === 'OK') return this.handle(key, owner);
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
    }
  }

  /** The connection belongs to the token slot, which closes it. */
  async close(): Promise<void> {}

  private handle(key: string, owner: string): LockHandle {
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        // A lock left behind holds every refresh up until its TTL: try twice, then let it expire.
        const release = () =>
          this.connection.bound(
            (client) => client.eval(RELEASE_SCRIPT, { keys: [key], arguments: [owner] }),
            TOKEN_COMMAND_TIMEOUT_MS,
          );
        await release().catch(async () => {
          await new Promise((resolve) => setTimeout(resolve, 200));
          await release().catch(() => undefined);
        });
      },
    };
  }
}
