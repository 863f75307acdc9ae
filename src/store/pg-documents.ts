/**
 * Documents in PostgreSQL: a keyv storage adapter over the store's own pool and the table the
 * migrations create (`meli_proxy_documents`, keyv's key/value layout). keyv keeps what it does
 * well — serialization, namespaces and TTLs inside the stored value — and this adapter only moves
 * rows. (@keyv/postgres would keep a module-global pool of its own, with no 'error' listener, and
 * create the table itself at run time.)
 */
import { EventEmitter } from 'node:events';
import type { KeyvStoreAdapter, StoredData } from 'keyv';
import type pg from 'pg';
import type { ScanRaw } from './documents.js';

export const DOCUMENTS_TABLE = 'meli_proxy_documents';

export class PostgresKeyvAdapter extends EventEmitter implements KeyvStoreAdapter {
  /** keyv reads `opts` (dialect, url) to decide on iterators; listing goes through `scan` instead. */
  readonly opts: Record<string, unknown> = { dialect: 'postgres' };
  namespace?: string;
  private readonly table: string;

  /** `schema`: as SQL text (see currentSchema), resolved once at open. */
  constructor(
    private readonly pool: pg.Pool,
    schema: string,
  ) {
    super();
    this.table = `${schema}.${DOCUMENTS_TABLE}`;
  }

  // keyv types adapter reads as StoredData<Value>, but adapters hold and return the serialized
  // string, which keyv deserializes itself: hence the casts.
  async get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    const { rows } = await this.pool.query<{ value: string }>(
      `SELECT value FROM ${this.table} WHERE key = $1`,
      [key],
    );
    return rows[0]?.value as StoredData<Value> | undefined;
  }

  async getMany<Value>(keys: string[]): Promise<Array<StoredData<Value | undefined>>> {
    const { rows } = await this.pool.query<{ key: string; value: string }>(
      `SELECT key, value FROM ${this.table} WHERE key = ANY($1)`,
      [keys],
    );
    const byKey = new Map(rows.map((row) => [row.key, row.value]));
    return keys.map((key) => byKey.get(key) as StoredData<Value | undefined>);
  }

  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  async set(key: string, value: unknown): Promise<boolean> {
    if (typeof value !== 'string')
      throw new TypeError('the document adapter stores serialized (string) values only');
    await this.pool.query(
      `INSERT INTO ${this.table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      [key, value],
    );
    return true;
  }

  async delete(key: string): Promise<boolean> {
    const result = await this.pool.query(`DELETE FROM ${this.table} WHERE key = $1`, [key]);
    return (result.rowCount ?? 0) > 0;
  }

  async deleteMany(keys: string[]): Promise<boolean> {
    const result = await this.pool.query(`DELETE FROM ${this.table} WHERE key = ANY($1)`, [keys]);
    return (result.rowCount ?? 0) > 0;
  }

  async clear(): Promise<void> {
    const prefix = this.namespace ? `${this.namespace}:` : '';
    await this.pool.query(`DELETE FROM ${this.table} WHERE starts_with(key, $1)`, [prefix]);
  }

  /** Rows whose stored key starts with `storedPrefix`, for DocumentStore.list. */
  readonly scan: ScanRaw = async (storedPrefix) => {
    const { rows } = await this.pool.query<{ key: string; value: string }>(
      `SELECT key, value FROM ${this.table} WHERE starts_with(key, $1) ORDER BY key`,
      [storedPrefix],
    );
    return rows.map((row): [string, unknown] => [row.key, row.value]);
  };

  async disconnect(): Promise<void> {
    // The pool belongs to the store, which ends it on close.
  }
}

/**
 * The schema the connection resolves unqualified names in (search_path), as SQL text: a plain
 * lower-case name as is, anything else quoted.
 */
export async function currentSchema(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ schema: string | null }>('SELECT current_schema() AS schema');
  const schema = rows[0]?.schema;
  if (!schema) throw new Error('the connection has no current schema (check search_path)');
  return /^[a-z_][a-z0-9_]*$/.test(schema) ? schema : `"${schema.replace(/"/g, '""')}"`;
}
