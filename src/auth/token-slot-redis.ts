/**
 * The token document in Redis, at the key the store's documents use, written by Lua scripts so
 * that a refresh's save compares and sets in one atomic step on the server.
 */

import type { RedisConnection } from '../store/redis-client.js';
import { REDIS_DOCUMENT_NAMESPACE } from '../store/redis-documents.js';
import {
  deserializeDocument,
  serializeDocument,
  TOKEN_KEY,
  type TokenSlot,
  type TokenSlots,
  type TokenVersion,
} from './token-slot.js';

/** Where the document `key` lives in Redis. */
export function redisTokenKey(key: string): string {
  return `${REDIS_DOCUMENT_NAMESPACE}:${key}`;
}

export const REDIS_TOKEN_KEY = redisTokenKey(TOKEN_KEY);

/**
 * Bound on each token command. Off the request path, so more patient than the store's: a refresh
 * that gives up on a busy server has spent its refresh token for nothing.
 */
export const TOKEN_COMMAND_TIMEOUT_MS = 5000;

/** ARGV: document, lineage, atMostGeneration. 1 when written. */
const REPLACE_IF = `
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local ok, stored = pcall(cjson.decode, current)
if not ok or type(stored) ~= 'table' or type(stored.value) ~= 'table' then return 0 end
local doc = stored.value
if doc.lineage ~= ARGV[2] or type(doc.generation) ~= 'number' or doc.generation > tonumber(ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1`;

/** Every token document at the store's document keys, over the one connection the slots share. */
export class RedisTokenSlots implements TokenSlots {
  constructor(private readonly connection: RedisConnection) {}

  slot(key: string): TokenSlot {
    return new RedisTokenSlot(this.connection, key);
  }

  async keys(prefix: string): Promise<string[]> {
    const pattern = `${redisTokenKey(prefix).replace(/[*?[\]\\]/g, '\\$&')}*`;
    const found = new Set<string>();
    let cursor = '0';
    do {
      const page = await this.connection.bound(
        (client) => client.scan(cursor, { MATCH: pattern, COUNT: 200 }),
        TOKEN_COMMAND_TIMEOUT_MS,
      );
      cursor = String(page.cursor);
      for (const key of page.keys) found.add(String(key).slice(REDIS_DOCUMENT_NAMESPACE.length + 1));
    } while (cursor !== '0');
    return [...found].sort();
  }

  async readAll(prefix: string): Promise<Map<string, unknown>> {
    const keys = await this.keys(prefix);
    if (keys.length === 0) return new Map();
    const raws = await this.connection.bound(
      (client) => client.mGet(keys.map((key) => redisTokenKey(key))),
      TOKEN_COMMAND_TIMEOUT_MS,
    );
    const documents = new Map<string, unknown>();
    keys.forEach((key, index) => {
      const raw = raws[index];
      // Removed between the listing and the read: as if it was never listed.
      if (typeof raw === 'string') documents.set(key, deserializeDocument(raw));
    });
    return documents;
  }

  close(): Promise<void> {
    return this.connection.close();
  }
}

export class RedisTokenSlot implements TokenSlot {
  private readonly key: string;

  constructor(
    private readonly connection: RedisConnection,
    key = TOKEN_KEY,
  ) {
    this.key = redisTokenKey(key);
  }

  async read(): Promise<unknown> {
    const raw = await this.connection.bound((client) => client.get(this.key), TOKEN_COMMAND_TIMEOUT_MS);
    return typeof raw === 'string' ? deserializeDocument(raw) : undefined;
  }

  async put(document: TokenVersion): Promise<void> {
    await this.connection.bound(
      (client) => client.set(this.key, serializeDocument(document)),
      TOKEN_COMMAND_TIMEOUT_MS,
    );
  }

  async replaceIf(lineage: string, atMostGeneration: number, document: TokenVersion): Promise<boolean> {
    const written = await this.connection.bound(
      (client) =>
        client.eval(REPLACE_IF, {
          keys: [this.key],
          arguments: [serializeDocument(document), lineage, String(atMostGeneration)],
        }),
      TOKEN_COMMAND_TIMEOUT_MS,
    );
    return written === 1;
  }

  async remove(): Promise<boolean> {
    const removed = await this.connection.bound((client) => client.del(this.key), TOKEN_COMMAND_TIMEOUT_MS);
    return removed === 1;
  }

  async close(): Promise<void> {}
}
