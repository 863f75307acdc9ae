/**
 * A keyv storage adapter that keeps every entry in memory and mirrors them to one JSON file, for
 * the embedded store. Writes are debounced (a burst of sets costs one write) and atomic (temp file,
 * fsync, rename), the file is private to its owner (0600), and close() flushes what is pending.
 * Without a file it is a plain in-memory adapter (the `memory` store).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import type { KeyvStoreAdapter, StoredData } from 'keyv';
import { z } from 'zod';
import { StoreConfigError } from './errors.js';
import { type StoreLogger, silentLogger } from './logger.js';

interface Entry {
  value: string;
  /** Epoch milliseconds; absent means no expiry. */
  expires?: number;
}

const FileFormat = z.object({
  version: z.literal(1),
  entries: z.record(z.string(), z.object({ value: z.string(), expires: z.number().optional() })),
});

export interface JsonFileAdapterOptions {
  /** Where to keep the entries; undefined keeps them in memory only. */
  file?: string;
  /** Delay between a change and its write. Default 50 ms. */
  flushDelayMs?: number;
  logger?: StoreLogger;
}

/** After a failed write, how long to wait before trying again. */
const RETRY_DELAY_MS = 1000;

export class JsonFileKeyvAdapter extends EventEmitter implements KeyvStoreAdapter {
  /** keyv reads `opts` (dialect, url) to decide on iterators; this adapter offers none. */
  readonly opts: Record<string, unknown> = { dialect: 'json-file' };
  namespace?: string;

  private readonly entries = new Map<string, Entry>();
  private readonly file: string | undefined;
  private readonly flushDelayMs: number;
  private readonly logger: StoreLogger;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private dirty = false;
  private closed = false;
  /** Identity of the file content last read or written (inode, size, mtime); '' when absent. */
  private stamp = '';

  private constructor(opts: JsonFileAdapterOptions) {
    super();
    this.file = opts.file;
    this.flushDelayMs = opts.flushDelayMs ?? 50;
    this.logger = opts.logger ?? silentLogger;
  }

  static async open(opts: JsonFileAdapterOptions = {}): Promise<JsonFileKeyvAdapter> {
    const adapter = new JsonFileKeyvAdapter(opts);
    if (opts.file) await adapter.load(opts.file);
    return adapter;
  }

  // keyv types adapter reads as StoredData<Value>, but what adapters hold and return is the
  // serialized string, which keyv deserializes itself: hence the casts.
  async get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    return this.live(key)?.value as StoredData<Value> | undefined;
  }

  async getMany<Value>(keys: string[]): Promise<Array<StoredData<Value | undefined>>> {
    return keys.map((key) => this.live(key)?.value as StoredData<Value | undefined>);
  }

  async has(key: string): Promise<boolean> {
    return this.live(key) !== undefined;
  }

  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    this.assertOpen();
    if (typeof value !== 'string')
      throw new TypeError('json-file adapter stores serialized (string) values only');
    const entry: Entry = { value };
    if (typeof ttl === 'number' && ttl > 0) entry.expires = Date.now() + ttl;
    this.entries.set(key, entry);
    this.changed();
    return true;
  }

  async delete(key: string): Promise<boolean> {
    this.assertOpen();
    const existed = this.live(key) !== undefined;
    if (this.entries.delete(key)) this.changed();
    return existed;
  }

  async deleteMany(keys: string[]): Promise<boolean> {
    let any = false;
    for (const key of keys) any = (await this.delete(key)) || any;
    return any;
  }

  async clear(): Promise<void> {
    this.assertOpen();
    const prefix = this.namespace ? `${this.namespace}:` : '';
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.entries.delete(key);
    this.changed();
  }

  /** Live entries whose stored key starts with `storedPrefix`. */
  async scan(storedPrefix: string): Promise<Array<[string, string]>> {
    const out: Array<[string, string]> = [];
    for (const key of this.entries.keys()) {
      if (!key.startsWith(storedPrefix)) continue;
      const entry = this.live(key);
      if (entry) out.push([key, entry.value]);
    }
    return out;
  }

  /**
   * Reads the file again if another process replaced it since this adapter last read or wrote it
   * (for a file several processes share). Pending changes are written first, so none are lost.
   */
  async refresh(): Promise<void> {
    const file = this.file;
    if (!file || this.closed) return;
    await this.flush();
    if ((await stampOf(file)) === this.stamp) return;
    this.entries.clear();
    await this.load(file);
  }

  /** Writes pending changes now; rejects if the write fails. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing.catch(() => undefined);
    this.clearTimer();
    if (this.dirty) await this.write();
  }

  async disconnect(): Promise<void> {
    await this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
  }

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry?.expires !== undefined && entry.expires < Date.now()) {
      this.entries.delete(key);
      this.changed();
      return undefined;
    }
    return entry;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the embedded document store is closed');
  }

  private changed(): void {
    if (!this.file) return;
    this.dirty = true;
    this.schedule(this.flushDelayMs);
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // A running write reschedules itself when it finds `dirty` set again.
      if (this.writing || !this.dirty) return;
      this.write().catch((error: unknown) => {
        this.logger.error(
          { err: error, file: this.file },
          'could not save the embedded document store; retrying',
        );
        this.schedule(RETRY_DELAY_MS);
      });
    }, delayMs);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private write(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    this.dirty = false;
    const snapshot = this.snapshot();
    const run = writeAtomically(file, snapshot)
      .then(async () => {
        this.stamp = await stampOf(file);
      })
      .catch((error: unknown) => {
        this.dirty = true;
        throw error;
      })
      .finally(() => {
        this.writing = undefined;
        if (this.dirty && !this.closed) this.schedule(this.flushDelayMs);
      });
    this.writing = run;
    return run;
  }

  private snapshot(): string {
    const now = Date.now();
    const entries: Record<string, Entry> = {};
    for (const [key, entry] of this.entries) {
      if (entry.expires === undefined || entry.expires >= now) entries[key] = entry;
    }
    return `${JSON.stringify({ version: 1, entries })}\n`;
  }

  private async load(file: string): Promise<void> {
    let text: string;
    // Stamped before reading: a write landing in between makes the next refresh read again.
    let stamp: string;
    try {
      stamp = await stampOf(file);
      text = await readFile(file, 'utf8');
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
      this.stamp = '';
      return;
    }
    let parsed: z.infer<typeof FileFormat>;
    try {
      parsed = FileFormat.parse(JSON.parse(text));
    } catch (error) {
      throw new StoreConfigError(
        `The embedded store file ${file} is not a valid meli-proxy document file (${describe(error)}). ` +
          'Restore it from a backup, or move it away to start with an empty store.',
        { cause: error },
      );
    }
    const now = Date.now();
    for (const [key, entry] of Object.entries(parsed.entries)) {
      if (entry.expires !== undefined && entry.expires < now) continue;
      this.entries.set(key, entry.expires === undefined ? { value: entry.value } : { ...entry });
    }
    // Only once the content is in: a file that failed to load is read again next time.
    this.stamp = stamp;
  }
}

async function writeAtomically(file: string, content: string): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    // 'wx' never follows or reuses an existing path; 0o600 because documents hold tokens.
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function stampOf(file: string): Promise<string> {
  try {
    const info = await stat(file, { bigint: true });
    return `${info.ino}:${info.size}:${info.mtimeNs}`;
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return '';
    throw error;
  }
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

function describe(error: unknown): string {
  if (error instanceof z.ZodError)
    return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
  return error instanceof Error ? error.message : String(error);
}
