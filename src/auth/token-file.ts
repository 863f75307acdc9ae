/**
 * Where `auth login` keeps the token without a database: one keyv document file,
 * `<dir>/tokens.json`, private to its owner (file 0600, directory 0700).
 *
 * Unlike the embedded store's documents.json, which one process owns, this file is shared by
 * processes (`auth login` in one, `serve` in another): each operation first reads the file again
 * if another process replaced it since (a stat when it did not), and each write reaches the file
 * before the operation resolves. Writes are atomic (temp file, fsync, rename) through the
 * embedded store's adapter; writers serialise on a lock file (token-slot.ts), which makes their
 * compare-and-set atomic.
 */

import { chmod, mkdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import Keyv from 'keyv';
import { DOCUMENT_NAMESPACE, KeyvDocumentStore } from '../store/documents.js';
import { JsonFileKeyvAdapter } from '../store/json-file-adapter.js';
import type { DocumentStore } from '../store/types.js';

export const TOKEN_FILE = 'tokens.json';

/** `$XDG_CONFIG_HOME/meli-proxy`, or `~/.config/meli-proxy`. */
export function defaultTokenDir(env: NodeJS.ProcessEnv): string {
  const base =
    env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME)
      ? env.XDG_CONFIG_HOME
      : path.join(env.HOME && env.HOME.length > 0 ? env.HOME : homedir(), '.config');
  return path.join(base, 'meli-proxy');
}

/** A DocumentStore over `<dir>/tokens.json` that reads the file afresh on every call. */
export class TokenFileDocuments implements DocumentStore {
  readonly file: string;

  constructor(readonly dir: string) {
    this.file = path.join(dir, TOKEN_FILE);
  }

  get<T>(key: string): Promise<T | undefined> {
    return this.use(false, (documents) => documents.get<T>(key));
  }

  set<T>(key: string, value: T, ttlMs?: number): Promise<void> {
    return this.use(true, (documents) => documents.set(key, value, ttlMs));
  }

  delete(key: string): Promise<boolean> {
    return this.use(true, (documents) => documents.delete(key));
  }

  list<T>(prefix: string): Promise<Array<[string, T]>> {
    return this.use(false, (documents) => documents.list<T>(prefix));
  }

  private opened: Promise<{ adapter: JsonFileKeyvAdapter; documents: DocumentStore }> | undefined;

  private async use<R>(writes: boolean, work: (documents: DocumentStore) => Promise<R>): Promise<R> {
    // The token is the seller's credential: its directory is private whoever made it first.
    if (writes) await privateDirectory(this.dir);
    // The adapter creates the file 0600. One Keyv per adapter: each Keyv adds an error listener to
    // its adapter for good, so one per call would pile them up on every poll.
    this.opened ??= JsonFileKeyvAdapter.open({ file: this.file, flushDelayMs: 0 }).then(
      (adapter) => {
        const keyv = new Keyv(adapter, { namespace: DOCUMENT_NAMESPACE, throwOnErrors: true });
        return { adapter, documents: new KeyvDocumentStore(keyv, (prefix) => adapter.scan(prefix)) };
      },
      (error: unknown) => {
        this.opened = undefined;
        throw error;
      },
    );
    const { adapter, documents } = await this.opened;
    await adapter.refresh();
    const result = await work(documents);
    if (writes) await adapter.flush();
    return result;
  }
}

/** Creates `dir` 0700, or takes group and other access away from an existing one. */
async function privateDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { mode } = await stat(dir);
  if ((mode & 0o077) !== 0) await chmod(dir, mode & 0o700);
}
