/** What only the embedded store does: its file, its in-memory counters. */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DOCUMENTS_FILE,
  openStore,
  type Store,
  StoreConfigError,
  type StoreLogger,
} from '../../src/store/index.js';
import { JsonFileKeyvAdapter } from '../../src/store/json-file-adapter.js';
import { MemoryCounterBackend } from '../../src/store/memory-counters.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('embedded store file', () => {
  let root: string;
  let dataDir: string;
  let file: string;
  const open: Store[] = [];
  // A pino logger is what the server passes; this also checks that it fits StoreLogger.
  const logger: StoreLogger = pino({ enabled: false });
  const openEmbedded = async (flushDelayMs?: number) => {
    const store = await openStore('embedded', { dataDir, flushDelayMs, logger });
    open.push(store);
    return store;
  };

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'meli-embedded-'));
    dataDir = path.join(root, 'nested', 'data');
    file = path.join(dataDir, DOCUMENTS_FILE);
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
    await rm(root, { recursive: true, force: true });
  });

  it('creates the data dir 0700 and the file 0600, and reads it back after a reopen', async () => {
    const store = await openEmbedded();
    await store.documents.set('rules/a', { limit: 1 });
    await store.close();
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const again = await openEmbedded();
    expect(await again.documents.get('rules/a')).toEqual({ limit: 1 });
    expect(again.displayUrl).toBe('embedded');
  });

  it('debounces writes: a burst is written once, shortly after, without a close', async () => {
    const store = await openEmbedded(30);
    for (let i = 0; i < 20; i++) await store.documents.set(`burst/${i}`, i);
    await expect(stat(file)).rejects.toThrow(); // nothing yet: still inside the debounce delay
    await sleep(150);
    const saved = JSON.parse(await readFile(file, 'utf8'));
    expect(Object.keys(saved.entries)).toHaveLength(20);
  });

  it('flushes pending writes on close and leaves no temp files behind', async () => {
    const store = await openEmbedded(60_000);
    await store.documents.set('late', 'saved by close');
    await store.close();
    // The stats folder is the statistics store's; no temp file of the documents file may remain.
    expect((await readdir(dataDir)).filter((name) => name !== 'stats')).toEqual([DOCUMENTS_FILE]);
    const again = await openEmbedded();
    expect(await again.documents.get('late')).toBe('saved by close');
  });

  it('drops expired entries from the file', async () => {
    const store = await openEmbedded();
    await store.documents.set('short', 1, 40);
    await store.documents.set('kept', 2);
    await sleep(80);
    await store.documents.set('touch', 3); // any change rewrites the file
    await store.close();
    const saved = JSON.parse(await readFile(file, 'utf8'));
    expect(Object.keys(saved.entries).sort()).toEqual(['meli:kept', 'meli:touch']);
  });

  it('refuses a corrupt file with a message naming it and the fix', async () => {
    await mkdir(dataDir, { recursive: true });
    await writeFile(file, '{"version": 1, "entries": {"k": 42}}');
    const error = await openStore('embedded', { dataDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreConfigError);
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toMatch(/move it away/);
  });

  it('refuses a data dir it cannot create, naming it', async () => {
    await writeFile(path.join(root, 'plain-file'), '');
    const error = await openStore('embedded', { dataDir: path.join(root, 'plain-file', 'data') }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreConfigError);
    expect((error as Error).message).toMatch(/Cannot create the data dir .*plain-file\/data/);
  });

  it('rejects operations after close', async () => {
    const store = await openEmbedded();
    await store.close();
    await expect(store.documents.set('x', 1)).rejects.toThrow(/closed/);
    await expect(store.check()).rejects.toThrow(/closed/);
  });

  it('memory writes nothing to disk', async () => {
    const store = await openStore('memory', { dataDir });
    open.push(store);
    await store.documents.set('x', 1);
    await store.close();
    await expect(stat(dataDir)).rejects.toThrow();
    expect(store.displayUrl).toBe('memory');
  });
});

describe('a document file shared by processes', () => {
  it('is read again when another writer replaced it, and only then', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'meli-shared-file-'));
    const file = path.join(root, 'tokens.json');
    const mine = await JsonFileKeyvAdapter.open({ file, flushDelayMs: 0 });
    const theirs = await JsonFileKeyvAdapter.open({ file, flushDelayMs: 0 });
    try {
      await mine.set('k:a', '"mine"');
      await mine.flush();
      await theirs.refresh();
      expect(await theirs.get('k:a')).toBe('"mine"');

      await theirs.set('k:a', '"theirs"');
      await theirs.flush();
      expect(await mine.get('k:a')).toBe('"mine"');
      await mine.refresh();
      expect(await mine.get('k:a')).toBe('"theirs"');

      // A file nobody else touched is not read again: an entry only in memory stays.
      await mine.refresh();
      await writeFile(`${file}.unrelated`, 'x');
      expect(await mine.get('k:a')).toBe('"theirs"');

      // A damaged file is refused, and read again (not skipped) once it is repaired.
      await writeFile(file, 'not json');
      await expect(mine.refresh()).rejects.toBeInstanceOf(StoreConfigError);
      await theirs.set('k:b', '"repaired"');
      await theirs.flush();
      await mine.refresh();
      expect(await mine.get('k:b')).toBe('"repaired"');
    } finally {
      await mine.close();
      await theirs.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('embedded counters', () => {
  it('sum deltas per window and report one replica', async () => {
    const counters = new MemoryCounterBackend();
    const w = { key: 'rule1|1.2.3.4', windowStart: 60_000, windowMs: 60_000 };
    const first = await counters.sync('a', [{ ...w, delta: 3 }]);
    expect(first).toEqual({ totals: new Map([['rule1|1.2.3.4@60000', 3]]), replicas: 1 });
    const second = await counters.sync('b', [
      { ...w, delta: 2 },
      { ...w, delta: 1 },
      { ...w, windowStart: 120_000, delta: 0 },
    ]);
    expect(second.totals.get('rule1|1.2.3.4@60000')).toBe(6);
    expect(second.totals.get('rule1|1.2.3.4@120000')).toBe(0);
  });

  it('forget windows one window after they end', async () => {
    let now = 0;
    const counters = new MemoryCounterBackend(() => now);
    await counters.sync('a', [{ key: 'k', windowStart: 0, windowMs: 1000, delta: 5 }]);
    now = 2500;
    await counters.sync('a', []);
    expect(counters.size).toBe(0);
  });

  it('reject malformed deltas', async () => {
    const counters = new MemoryCounterBackend();
    await expect(counters.sync('a', [{ key: 'k', windowStart: 0, windowMs: 0, delta: 1 }])).rejects.toThrow(
      /windowMs/,
    );
    await expect(
      counters.sync('a', [{ key: 'k', windowStart: 0, windowMs: 10, delta: 1.5 }]),
    ).rejects.toThrow(/delta/);
  });

  it('come with the embedded store, whose check() resolves', async () => {
    const store = await openStore('memory', { dataDir: '/nonexistent' });
    expect(store.kind).toBe('embedded');
    await expect(store.check()).resolves.toBeUndefined();
    const { replicas } = await store.counters.sync('r', []);
    expect(replicas).toBe(1);
    await store.close();
  });
});
