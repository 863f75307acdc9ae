/**
 * The DocumentStore over keyv, shared by every backend. keyv does get/set/delete and TTLs; it has
 * no prefix listing (its iterators walk the whole namespace and end silently on errors), so each
 * backend supplies `scan`: the raw stored rows whose key starts with a prefix.
 */
import type Keyv from 'keyv';
import type { DocumentStore } from './types.js';

/** Raw rows as the adapter holds them: keyv-prefixed key, serialized value. */
export type ScanRaw = (storedPrefix: string) => Promise<Array<[string, unknown]>>;

export const DOCUMENT_NAMESPACE = 'meli';

export class KeyvDocumentStore implements DocumentStore {
  constructor(
    private readonly keyv: Keyv,
    private readonly scan: ScanRaw,
  ) {}

  async get<T>(key: string): Promise<T | undefined> {
    checkKey(key);
    return this.keyv.get<T>(key);
  }

  async set<T>(key: string, value: T, ttlMs?: number): Promise<void> {
    checkKey(key);
    // keyv reads a TTL of 0 as "forever": refuse it rather than keep a document meant to vanish.
    if (ttlMs !== undefined && !(Number.isFinite(ttlMs) && ttlMs > 0)) {
      throw new RangeError(`document ${key}: ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
    }
    if (value === undefined) throw new TypeError(`document ${key}: value must not be undefined (use delete)`);
    const stored = await this.keyv.set(key, value, ttlMs);
    if (!stored) throw new Error(`document ${key} was not stored`);
  }

  async delete(key: string): Promise<boolean> {
    checkKey(key);
    return this.keyv.delete(key);
  }

  async list<T>(prefix: string): Promise<Array<[string, T]>> {
    const namespace = this.keyv.namespace;
    const storedPrefix = namespace ? `${namespace}:${prefix}` : prefix;
    const rows = await this.scan(storedPrefix);
    const now = Date.now();
    const out: Array<[string, T]> = [];
    for (const [storedKey, raw] of rows) {
      if (typeof raw !== 'string') continue;
      const data = await this.keyv.deserializeData<T>(raw);
      if (!data) continue;
      const key = namespace ? storedKey.slice(namespace.length + 1) : storedKey;
      if (typeof data.expires === 'number' && data.expires < now) {
        // Expired documents are removed lazily, as keyv's own get does.
        this.keyv.delete(key).catch(() => undefined);
        continue;
      }
      out.push([key, data.value as T]);
    }
    out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return out;
  }
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key === '') throw new TypeError('document key must be a non-empty string');
}
