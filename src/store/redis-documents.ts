/**
 * Documents in Redis through @keyv/redis, on the store's connection. Each document is one string
 * key, `meli-proxy:doc:<key>`, holding keyv's serialized value; a TTL is also set on the key
 * (SET … PX), so Redis drops expired documents by itself.
 *
 * @keyv/redis 5 connects a client that is not open on every call (which would reopen a closed
 * store, and attach its listeners again each time) and disconnects it when keyv does, so we
 * subclass it and hand it the store's current client instead. Listing uses SCAN MATCH with a
 * bounded page size, not keyv's iterator, which walks the whole namespace and ends silently on errors.
 */
import KeyvRedis from '@keyv/redis';
import type { ScanRaw } from './documents.js';
import type { RedisConnection } from './redis-client.js';
import type { DocumentStore } from './types.js';

/** keyv namespace of the Redis documents: stored keys are `meli-proxy:doc:<key>`. */
export const REDIS_DOCUMENT_NAMESPACE = 'meli-proxy:doc';

/** Keys per SCAN page (a hint to the server) and hence per MGET. */
const SCAN_COUNT = 500;

export function createKeyvRedisAdapter(connection: RedisConnection): KeyvRedis<string> {
  class ConnectionKeyvRedis extends KeyvRedis<string> {
    override async getClient() {
      return connection.client();
    }

    override async disconnect(): Promise<void> {
      // The connection belongs to the store, which closes it.
    }
  }

  return new ConnectionKeyvRedis(connection.client(), {
    namespace: REDIS_DOCUMENT_NAMESPACE,
    // keyv's own `namespace:key` form, which KeyvDocumentStore.list expects; keyv itself is told
    // not to prefix (useKeyPrefix: false), so the adapter's prefix is the only one.
    keyPrefixSeparator: ':',
    throwOnErrors: true,
    throwOnConnectError: true,
  });
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

/** get/set/delete bounded by the connection's command timeout (list is bounded per page). */
export class BoundedDocumentStore implements DocumentStore {
  constructor(
    private readonly inner: DocumentStore,
    private readonly connection: RedisConnection,
  ) {}

  get<T>(key: string): Promise<T | undefined> {
    return this.connection.bound(() => this.inner.get<T>(key));
  }

  set<T>(key: string, value: T, ttlMs?: number): Promise<void> {
    return this.connection.bound(() => this.inner.set(key, value, ttlMs));
  }

  delete(key: string): Promise<boolean> {
    return this.connection.bound(() => this.inner.delete(key));
  }

  list<T>(prefix: string): Promise<Array<[string, T]>> {
    return this.inner.list<T>(prefix);
  }
}
