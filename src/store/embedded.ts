/**
 * The embedded store: one process, no server. Documents live in `<dataDir>/documents.json` (or
 * only in memory for `memory`), counters in memory.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import Keyv from 'keyv';
import { DOCUMENT_NAMESPACE, KeyvDocumentStore } from './documents.js';
import { errorMessage, StoreConfigError } from './errors.js';
import { FileStatsStore } from './file-stats.js';
import { JsonFileKeyvAdapter } from './json-file-adapter.js';
import { type StoreLogger, silentLogger } from './logger.js';
import { MemoryCounterBackend } from './memory-counters.js';
import { MemoryStatsStore } from './memory-stats.js';
import type { Store } from './types.js';

export const DOCUMENTS_FILE = 'documents.json';

export interface EmbeddedStoreOptions {
  /** Directory for documents.json; created 0700 when missing. Ignored when not persistent. */
  dataDir: string;
  persistent: boolean;
  logger?: StoreLogger;
  /** Delay between a change and its write. Default 50 ms. */
  flushDelayMs?: number;
}

export async function openEmbeddedStore(opts: EmbeddedStoreOptions): Promise<Store> {
  const logger = opts.logger ?? silentLogger;
  let file: string | undefined;
  if (opts.persistent) {
    await mkdir(opts.dataDir, { recursive: true, mode: 0o700 }).catch((error: unknown) => {
      throw new StoreConfigError(
        `Cannot create the data dir ${opts.dataDir} for the embedded store (${errorMessage(error)}). ` +
          'Choose a writable data dir, or use --store memory to keep nothing.',
        { cause: error },
      );
    });
    file = path.join(opts.dataDir, DOCUMENTS_FILE);
  }
  const adapter = await JsonFileKeyvAdapter.open({ file, flushDelayMs: opts.flushDelayMs, logger });
  const keyv = new Keyv(adapter, { namespace: DOCUMENT_NAMESPACE, throwOnErrors: true });
  const documents = new KeyvDocumentStore(keyv, (prefix) => adapter.scan(prefix));
  const counters = new MemoryCounterBackend();
  const stats = opts.persistent ? await FileStatsStore.open(opts.dataDir, logger) : new MemoryStatsStore();
  let closing: Promise<void> | undefined;

  return {
    kind: 'embedded',
    displayUrl: opts.persistent ? 'embedded' : 'memory',
    documents,
    counters,
    stats,
    async check() {
      if (closing) throw new Error('the embedded store is closed');
    },
    close() {
      closing ??= adapter.close();
      return closing;
    },
  };
}
