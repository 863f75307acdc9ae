/**
 * What the Redis store does about a server that loses data: Redis keeps everything in memory, and
 * without AOF persistence a restart (or a failover to an empty replica) comes back with less than
 * it held — no rules, no token, no statistics.
 *
 * At start-up, `warnWithoutPersistence` says so when AOF is off. While running, `GuardedDocuments`
 * notices a store that lost its documents and writes back the ones this replica knows: every write
 * of a document also increments a generation number in Redis, and each replica remembers the
 * highest it saw. A generation that is gone, or lower than remembered, means the documents went
 * with it (or back to an older snapshot); the replica then logs an error and re-publishes every
 * document it has read or written since it started — the rules at least, which every replica
 * reads each second — before it answers the read that noticed. A document another replica already
 * restored is left as it is.
 */
import { errorMessage } from './errors.js';
import type { StoreLogger } from './logger.js';
import type { RedisConnection } from './redis-client.js';
import type { DocumentStore } from './types.js';

export const GENERATION_KEY = 'meli-proxy:doc-generation';

/** Logs a warning when the server runs without AOF; a server that will not say is not judged. */
export async function warnWithoutPersistence(
  connection: RedisConnection,
  logger: StoreLogger,
): Promise<void> {
  let info: string;
  try {
    info = await connection.bound((client) => client.info('persistence'));
  } catch (error) {
    logger.warn(
      { store: connection.displayUrl, err: errorMessage(error) },
      'cannot tell whether Redis persists its data (INFO persistence failed)',
    );
    return;
  }
  if (/^aof_enabled:1\r?$/m.test(info)) return;
  logger.warn(
    { store: connection.displayUrl },
    'Redis runs without AOF persistence (appendonly no): a restart loses the statistics and the ' +
      'counts written since its last snapshot, and the rules and token until a replica re-publishes ' +
      'them; set appendonly yes (see docs/store.md)',
  );
}

interface Known {
  value: unknown;
  /** Epoch ms, for a document written with a TTL by this replica. */
  expiresAt?: number;
}

export class GuardedDocuments implements DocumentStore {
  /** Every document this replica read or wrote, as it last saw it. */
  private readonly known = new Map<string, Known>();
  private generation = 0;
  private restoring: Promise<void> | undefined;

  constructor(
    private readonly inner: DocumentStore,
    private readonly connection: RedisConnection,
    private readonly logger: StoreLogger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts the generation of a store that has none yet (a new one), and reads it. */
  async open(): Promise<void> {
    await this.connection.bound(async (client) => {
      await client.set(GENERATION_KEY, '1', { condition: 'NX' });
      this.generation = Number(await client.get(GENERATION_KEY)) || 1;
    });
  }

  async get<T>(key: string): Promise<T | undefined> {
    await this.guard();
    const value = await this.inner.get<T>(key);
    if (value === undefined) this.known.delete(key);
    else this.remember(key, value);
    return value;
  }

  async set<T>(key: string, value: T, ttlMs?: number): Promise<void> {
    await this.inner.set(key, value, ttlMs);
    this.known.set(key, ttlMs === undefined ? { value } : { value, expiresAt: this.now() + ttlMs });
    await this.advance();
  }

  async delete(key: string): Promise<boolean> {
    const existed = await this.inner.delete(key);
    this.known.delete(key);
    await this.advance();
    return existed;
  }

  async list<T>(prefix: string): Promise<Array<[string, T]>> {
    await this.guard();
    const rows = await this.inner.list<T>(prefix);
    const listed = new Set<string>();
    for (const [key, value] of rows) {
      listed.add(key);
      this.remember(key, value);
    }
    for (const key of this.known.keys())
      if (key.startsWith(prefix) && !listed.has(key)) this.known.delete(key);
    return rows;
  }

  private remember(key: string, value: unknown): void {
    const seen = this.known.get(key);
    this.known.set(key, seen?.expiresAt === undefined ? { value } : { value, expiresAt: seen.expiresAt });
  }

  /** Counts a write in the store's generation, so other replicas can tell the store went back. */
  private async advance(): Promise<void> {
    const next = await this.connection.bound((client) => client.incr(GENERATION_KEY));
    this.generation = Math.max(this.generation, next);
  }

  /** Before a read: re-publishes what this replica knows if the store lost documents. */
  private async guard(): Promise<void> {
    if (this.restoring) return this.restoring;
    const stored = Number(await this.connection.bound((client) => client.get(GENERATION_KEY)));
    if (stored >= this.generation) {
      this.generation = stored;
      return;
    }
    this.restoring = this.restore(stored).finally(() => {
      this.restoring = undefined;
    });
    return this.restoring;
  }

  private async restore(stored: number): Promise<void> {
    const now = this.now();
    let restored = 0;
    for (const [key, known] of this.known) {
      if (known.expiresAt !== undefined && known.expiresAt <= now) continue;
      // Another replica may have restored it (or written a newer one) already.
      if ((await this.inner.get(key)) !== undefined) continue;
      const ttl = known.expiresAt === undefined ? undefined : known.expiresAt - now;
      await this.inner.set(key, known.value, ttl);
      restored++;
    }
    await this.connection.bound(async (client) => {
      // Never below what any replica saw: those that saw less restore too, harmlessly.
      const current = Number(await client.get(GENERATION_KEY));
      if (current < this.generation) await client.set(GENERATION_KEY, String(this.generation));
    });
    this.logger.error(
      {
        store: this.connection.displayUrl,
        generation: { stored: stored || null, seen: this.generation },
        known: this.known.size,
        restored,
      },
      'Redis lost documents this replica had seen (restarted without persistence, or restored from ' +
        'an older snapshot): re-published the ones it knew; give Redis AOF persistence (appendonly yes)',
    );
  }
}
