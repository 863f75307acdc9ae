/**
 * Documents in PostgreSQL through @keyv/postgres, on our pool. @keyv/postgres 2 keeps one
 * module-global pg.Pool per URI with no 'error' listener (a dropped idle connection would crash
 * the process) and its disconnect() ends whichever pool was created last, so we subclass it and
 * hand it a query function over the store's own pool. Its SQL for get/set/delete stays in use.
 */
import KeyvPostgres from '@keyv/postgres';
import type pg from 'pg';
import type { ScanRaw } from './documents.js';

export const DOCUMENTS_TABLE = 'meli_proxy_documents';

type Query = (sql: string, values?: unknown[]) => Promise<unknown[]>;

export function createKeyvPostgresAdapter(pool: pg.Pool, schema: string): KeyvPostgres {
  const query: Query = async (sql, values) => {
    // Migrations own the schema; the adapter's CREATE TABLE IF NOT EXISTS would need CREATE rights
    // on the schema at runtime (and log an error without them), so it is not sent.
    if (/^\s*CREATE\b/i.test(sql)) return [];
    const result = await pool.query(sql, values);
    return result.rows;
  };

  class PooledKeyvPostgres extends KeyvPostgres {
    override async connect(): Promise<Query> {
      return query;
    }

    override async disconnect(): Promise<void> {
      // The pool belongs to the store, which ends it on close.
    }
  }

  return new PooledKeyvPostgres({ schema, table: DOCUMENTS_TABLE });
}

/** Rows whose stored key starts with `storedPrefix`, for DocumentStore.list. */
export function scanDocuments(pool: pg.Pool, schema: string): ScanRaw {
  const sql = `SELECT key, value FROM ${schema}.${DOCUMENTS_TABLE} WHERE starts_with(key, $1) ORDER BY key`;
  return async (storedPrefix) => {
    const { rows } = await pool.query<{ key: string; value: string }>(sql, [storedPrefix]);
    return rows.map((row): [string, unknown] => [row.key, row.value]);
  };
}

/**
 * The schema the connection resolves unqualified names in (search_path), as SQL text:
 * @keyv/postgres interpolates it unquoted, so anything but a plain lower-case name is quoted.
 */
export async function currentSchema(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ schema: string | null }>('SELECT current_schema() AS schema');
  const schema = rows[0]?.schema;
  if (!schema) throw new Error('the connection has no current schema (check search_path)');
  return /^[a-z_][a-z0-9_]*$/.test(schema) ? schema : `"${schema.replace(/"/g, '""')}"`;
}
