/**
 * Documents in Redis: a keyv storage adapter over the store's connection (redis-client.ts), so
 * every command is bounded by its timeout and goes to whichever client is current after a
 * reconnection. keyv keeps what it does well — serialization, the namespace prefix, TTLs inside
 * the stored value — and each document is one string key, `meli-proxy:doc:<key>`, with a TTL
 * also set on the key (SET … PX) so that Redis drops expired documents by itself. Listing uses
 * SCAN MATCH with a bounded page size (`scanDocuments`), never a walk of the whole keyspace.
 */
import { EventEmitter } from 'node:events';
import type { KeyvStoreAdapter, StoredData } from 'keyv';
import type { ScanRaw } from './documents.js';
import type { RedisConnection } from './redis-client.js';

/** keyv namespace of the Redis documents: stored keys are `meli-proxy:doc:<key>`. */
export const REDIS_DOCUMENT_NAMESPACE = 'meli-proxy:doc';

/** Keys per SCAN page (a hint to the server) and hence per MGET. */
const SCAN_COUNT = 500;

export class RedisKeyvAdapter extends EventEmitter implements KeyvStoreAdapter {
  /** keyv reads `opts` (dialect, url) to decide on iterators; listing goes through `scan` instead. */
  readonly opts: Record<string, unknown> = { dialect: 'redis' };
  namespace?: string;
  readonly scan: ScanRaw;

  constructor(private readonly connection: RedisConnection) {
    super();
    this.scan = scanDocuments(connection);
  }

  // keyv types adapter reads as StoredData<Value>, but adapters hold and return the serialized
  // string, which keyv deserializes itself: hence the casts.
  async get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    const value = await this.connection.bound((client) => client.get(key));
    return (value ?? undefined) as StoredData<Value> | undefined;
  }

  async getMany<Value>(keys: string[]): Promise<Array<StoredData<Value | undefined>>> {
    if (keys.length === 0) return [];
    const values = await this.connection.bound((client) => client.mGet(keys));
    return values.map((value) => (value ?? undefined) as StoredData<Value | undefined>);
  }

  async has(key: string): Promise<boolean> {
    return (await this.connection.bound((client) => client.exists(key))) === 1;
  }

  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    if (typeof value !== 'string')
      throw new TypeError('the document adapter stores serialized (string) values only');
    await this.connection.bound((client) =>
      typeof ttl === 'number' && ttl > 0
        ? client.set(key, value, { expiration: { type: 'PX', value: Math.ceil(ttl) } })
        : client.set(key, value),
    );
    return true;
  }

  async delete(key: string): Promise<boolean> {
    return (await this.connection.bound((client) => client.del(key))) > 0;
  }

  async deleteMany(keys: string[]): Promise<boolean> {
    if (keys.length === 0) return false;
    return (await this.connection.bound((client) => client.del(keys))) > 0;
  }

  async clear(): Promise<void> {
    const rows = await this.scan(this.namespace ? `${this.namespace}:` : '');
    if (rows.length > 0) await this.deleteMany(rows.map(([key]) => key));
  }

  async disconnect(): Promise<void> {
    // The connection belongs to the store, which closes it.
  }
}

/** Stored keys starting with `storedPrefix` and their raw values, for DocumentStore.list. */
export function scanDocuments(connection: RedisConnection): ScanRaw {
  return async (storedPrefix) => {
    const match = `${escapeGlob(storedPrefix)}*`;
    const rows = new Map<string, string>(); // SCAN may return a key twice
    let cursor = '0';
    do {
      // One round trip per page, each bounded by the command timeout; the page size bounds the
      // work per call on the server, and the cursor walk ends after one pass over the keyspace.
      const page = await connection.bound(async (client) => {
        const { cursor: next, keys } = await client.scan(cursor, {
          MATCH: match,
          COUNT: SCAN_COUNT,
          TYPE: 'string',
        });
        const values = keys.length > 0 ? await client.mGet(keys) : [];
        return { next, keys, values };
      });
      page.keys.forEach((key, i) => {
        const value = page.values[i];
        if (typeof value === 'string') rows.set(key, value); // null: deleted since the SCAN
      });
      cursor = page.next;
    } while (cursor !== '0');
    return [...rows];
  };
}

/** A pattern that matches `text` literally (SCAN MATCH is a glob: * ? [ ] \ are special). */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
