import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/index.js';
import { allBackends } from '../support/backends.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(allBackends())('documents on $name', (backend) => {
  let store: Store;

  beforeAll(async () => {
    store = await backend.open();
  });
  afterAll(async () => {
    await store?.close();
    await backend.cleanup();
  });

  it('sets, gets and overwrites structured values', async () => {
    const rule = {
      id: 'r1',
      limit: 1000,
      window: '1m',
      match: { ip: '152.152.152.152' },
      tags: ['a', 'b'],
    };
    await store.documents.set('rules/r1', rule);
    expect(await store.documents.get('rules/r1')).toEqual(rule);
    await store.documents.set('rules/r1', { ...rule, limit: 10 });
    expect(await store.documents.get<typeof rule>('rules/r1')).toMatchObject({ limit: 10 });
    await store.documents.set('flag', false);
    expect(await store.documents.get('flag')).toBe(false);
  });

  it('returns undefined for a missing key', async () => {
    expect(await store.documents.get('nope')).toBeUndefined();
  });

  it('deletes, telling whether the key existed', async () => {
    await store.documents.set('tmp/a', 1);
    expect(await store.documents.delete('tmp/a')).toBe(true);
    expect(await store.documents.get('tmp/a')).toBeUndefined();
    expect(await store.documents.delete('tmp/a')).toBe(false);
  });

  it('lists by prefix, sorted, with keys as given (colons and LIKE wildcards included)', async () => {
    await store.documents.set('list/b', 2);
    await store.documents.set('list/a:x', 1);
    await store.documents.set('list%/c', 3);
    await store.documents.set('list_/d', 4);
    await store.documents.set('other/e', 5);
    expect(await store.documents.list('list/')).toEqual([
      ['list/a:x', 1],
      ['list/b', 2],
    ]);
    expect(await store.documents.list('list%')).toEqual([['list%/c', 3]]);
    expect(await store.documents.list('nothing/')).toEqual([]);
    const all = await store.documents.list<number>('');
    expect(all.map(([k]) => k)).toEqual(expect.arrayContaining(['list/b', 'other/e', 'list_/d']));
  });

  it('expires documents after their TTL, in get and in list', async () => {
    await store.documents.set('ttl/short', 'x', 300);
    await store.documents.set('ttl/long', 'y', 60_000);
    expect(await store.documents.get('ttl/short')).toBe('x');
    await sleep(400);
    expect(await store.documents.get('ttl/short')).toBeUndefined();
    expect(await store.documents.list('ttl/')).toEqual([['ttl/long', 'y']]);
  });

  it('rejects a TTL that keyv would read as "forever", and empty keys', async () => {
    await expect(store.documents.set('bad', 1, 0)).rejects.toThrow(/ttlMs/);
    await expect(store.documents.set('bad', 1, -5)).rejects.toThrow(/ttlMs/);
    await expect(store.documents.set('', 1)).rejects.toThrow(/key/);
  });

  it('keeps documents across a reopen when it is persistent', async () => {
    await store.documents.set('persist/me', { ok: true });
    await store.close();
    store = await backend.open();
    const expected = backend.name === 'memory' ? undefined : { ok: true };
    expect(await store.documents.get('persist/me')).toEqual(expected);
  });

  it('answers check()', async () => {
    await expect(store.check()).resolves.toBeUndefined();
  });
});
