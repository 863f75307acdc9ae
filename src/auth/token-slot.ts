/**
 * Where the one token document lives, with the compare-and-set that keeps a late writer from
 * overwriting a newer token. Each backend makes `replaceIf` atomic in its own way:
 *   embedded file  a lock file around read-compare-write (file-mutex.ts)
 *   PostgreSQL     one conditional UPDATE (token-slot-postgres.ts)
 *   Redis          one Lua script (token-slot-redis.ts)
 *
 * The stored value is keyv's serialized form `{"value": <document>, "expires": null}`, so the row is
 * an ordinary document to everything else; the document keeps `lineage` and `generation` in clear
 * (they are not secret), which is what the compare-and-set reads.
 */

import { withFileMutex } from './file-mutex.js';
import { TokenFileDocuments } from './token-file.js';

/** The single token of versions before accounts; migrated to an account when found (accounts.ts). */
export const TOKEN_KEY = 'auth/token';

/** The clear fields every stored token document has, whatever its format. */
export interface TokenVersion {
  lineage: string;
  generation: number;
}

export interface TokenSlot {
  /** The stored document (parsed JSON), or undefined when there is none. */
  read(): Promise<unknown>;
  /** Stores `document` whatever is there (a login: a new lineage always wins). */
  put(document: TokenVersion): Promise<void>;
  /**
   * Stores `document` only while the stored one has `lineage` and a generation of at most
   * `atMostGeneration`; false, and nothing written, otherwise (a newer login or refresh, or none).
   */
  replaceIf(lineage: string, atMostGeneration: number, document: TokenVersion): Promise<boolean>;
  /** Removes the document; false when there was none. */
  remove(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Every token document of one store, one slot per key, sharing the store's connections. A slot's
 * own close() releases nothing: closing the TokenSlots does.
 */
export interface TokenSlots {
  slot(key: string): TokenSlot;
  /** The keys of the stored documents whose key starts with `prefix`. */
  keys(prefix: string): Promise<string[]>;
  /**
   * Every stored document whose key starts with `prefix`, key → parsed document, in one read of
   * the store (one file read, one SELECT, one MGET after listing the keys).
   */
  readAll(prefix: string): Promise<Map<string, unknown>>;
  close(): Promise<void>;
}

/** keyv's serialized form of a document without expiry. */
export function serializeDocument(document: object): string {
  return JSON.stringify({ value: document, expires: null });
}

export function deserializeDocument(raw: string): unknown {
  const parsed = JSON.parse(raw) as { value?: unknown } | null;
  return parsed && typeof parsed === 'object' ? parsed.value : undefined;
}

/** Whether `stored` may be replaced by a write conditioned on (lineage, atMostGeneration). */
export function replaceable(stored: unknown, lineage: string, atMostGeneration: number): boolean {
  if (!stored || typeof stored !== 'object') return false;
  const version = stored as Partial<TokenVersion>;
  return (
    version.lineage === lineage &&
    typeof version.generation === 'number' &&
    version.generation <= atMostGeneration
  );
}

/**
 * The embedded token file `<dir>/tokens.json`. Readers need no lock (writes are atomic renames);
 * writers, which may be `auth login`, `auth logout` and every worker of `serve`, take the file's
 * lock for the read-compare-write.
 */
export class FileTokenSlot implements TokenSlot {
  private readonly documents: TokenFileDocuments;

  constructor(
    dir: string,
    private readonly key = TOKEN_KEY,
  ) {
    this.documents = new TokenFileDocuments(dir);
  }

  get file(): string {
    return this.documents.file;
  }

  read(): Promise<unknown> {
    return this.documents.get<unknown>(this.key);
  }

  put(document: TokenVersion): Promise<void> {
    return this.locked(() => this.documents.set(this.key, document));
  }

  replaceIf(lineage: string, atMostGeneration: number, document: TokenVersion): Promise<boolean> {
    return this.locked(async () => {
      if (!replaceable(await this.read(), lineage, atMostGeneration)) return false;
      await this.documents.set(this.key, document);
      return true;
    });
  }

  remove(): Promise<boolean> {
    return this.locked(() => this.documents.delete(this.key));
  }

  async close(): Promise<void> {}

  private locked<T>(work: () => Promise<T>): Promise<T> {
    return withFileMutex(this.documents.dir, `${this.documents.file}.lock`, work);
  }
}

/** The documents of the embedded token file, one FileTokenSlot per key. */
export class FileTokenSlots implements TokenSlots {
  private readonly documents: TokenFileDocuments;

  constructor(readonly dir: string) {
    this.documents = new TokenFileDocuments(dir);
  }

  get file(): string {
    return this.documents.file;
  }

  slot(key: string): TokenSlot {
    return new FileTokenSlot(this.dir, key);
  }

  async keys(prefix: string): Promise<string[]> {
    return (await this.documents.list<unknown>(prefix)).map(([key]) => key);
  }

  async readAll(prefix: string): Promise<Map<string, unknown>> {
    return new Map(await this.documents.list<unknown>(prefix));
  }

  async close(): Promise<void> {}
}
