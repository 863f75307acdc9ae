/**
 * The token document in PostgreSQL's documents table, written with SQL of its own so that a
 * refresh's save is one conditional UPDATE: PostgreSQL re-checks the WHERE clause on the newest
 * row version when two writers race, so at most one of them replaces a given generation.
 *
 * The pool is its own (two connections) and the table is the store's, found through search_path
 * as the store finds it; the row stays in keyv's layout so the store reads it like any document.
 */
import pg from 'pg';
import { DOCUMENT_NAMESPACE } from '../store/documents.js';
import { DOCUMENTS_TABLE } from '../store/pg-documents.js';
import {
  deserializeDocument,
  serializeDocument,
  TOKEN_KEY,
  type TokenSlot,
  type TokenSlots,
  type TokenVersion,
} from './token-slot.js';

function storedKey(key: string): string {
  return `${DOCUMENT_NAMESPACE}:${key}`;
}

/** Every token document in the table, over one small pool the slots share. */
export class PostgresTokenSlots implements TokenSlots {
  private readonly pool: pg.Pool;

  constructor(url: string, onError?: (error: Error) => void) {
    this.pool = new pg.Pool({
      connectionString: url,
      application_name: 'meli-proxy-token',
      max: 2,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      query_timeout: 5000,
      keepAlive: true,
    });
    // Without a listener, an idle connection dropped by the server would crash the process.
    this.pool.on('error', (error) => onError?.(error));
  }

  slot(key: string): TokenSlot {
    return new PostgresTokenSlot(this.pool, key);
  }

  async keys(prefix: string): Promise<string[]> {
    const stored = storedKey(prefix);
    const { rows } = await this.pool.query<{ key: string }>(
      `SELECT key FROM ${DOCUMENTS_TABLE} WHERE left(key, length($1)) = $1 ORDER BY key`,
      [stored],
    );
    return rows.map((row) => row.key.slice(DOCUMENT_NAMESPACE.length + 1));
  }

  async readAll(prefix: string): Promise<Map<string, unknown>> {
    const { rows } = await this.pool.query<{ key: string; value: string }>(
      `SELECT key, value FROM ${DOCUMENTS_TABLE} WHERE left(key, length($1)) = $1`,
      [storedKey(prefix)],
    );
    return new Map(
      rows.map((row) => [row.key.slice(DOCUMENT_NAMESPACE.length + 1), deserializeDocument(row.value)]),
    );
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

export class PostgresTokenSlot implements TokenSlot {
  private readonly storedKey: string;

  constructor(
    private readonly pool: pg.Pool,
    key = TOKEN_KEY,
  ) {
    this.storedKey = storedKey(key);
  }

  async read(): Promise<unknown> {
    const { rows } = await this.pool.query<{ value: string }>(
      `SELECT value FROM ${DOCUMENTS_TABLE} WHERE key = $1`,
      [this.storedKey],
    );
    return rows[0] ? deserializeDocument(rows[0].value) : undefined;
  }

  async put(document: TokenVersion): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${DOCUMENTS_TABLE} (key, value) VALUES ($1, $2)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
      [this.storedKey, serializeDocument(document)],
    );
  }

  async replaceIf(lineage: string, atMostGeneration: number, document: TokenVersion): Promise<boolean> {
    const result = await this.pool.query(
      `UPDATE ${DOCUMENTS_TABLE} SET value = $2
       WHERE key = $1
         AND (value::jsonb -> 'value' ->> 'lineage') = $3
         AND (value::jsonb -> 'value' ->> 'generation')::bigint <= $4`,
      [this.storedKey, serializeDocument(document), lineage, atMostGeneration],
    );
    return result.rowCount === 1;
  }

  async remove(): Promise<boolean> {
    const result = await this.pool.query(`DELETE FROM ${DOCUMENTS_TABLE} WHERE key = $1`, [this.storedKey]);
    return result.rowCount === 1;
  }

  async close(): Promise<void> {}
}
