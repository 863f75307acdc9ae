/** The embedded token file read again and again (every account's poll, every second) leaks nothing. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TokenFileDocuments } from '../../src/auth/token-file.js';

describe('the token file', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps one error listener on its file adapter however often it is read and written', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'meli-token-file-'));
    const documents = new TokenFileDocuments(dir);
    for (let n = 0; n < 30; n++) {
      await documents.set('auth/accounts/1', { n });
      expect(await documents.get<{ n: number }>('auth/accounts/1')).toEqual({ n });
    }
    // Reaches into the instance: the adapter is private, and the leak is only visible on it.
    const opened = (documents as unknown as { opened: Promise<{ adapter: NodeJS.EventEmitter }> }).opened;
    expect((await opened).adapter.listenerCount('error')).toBeLessThanOrEqual(1);
  });
});
