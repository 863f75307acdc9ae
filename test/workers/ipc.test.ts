/**
 * The IPC layer of `serve --workers`: calls and answers over a channel (here an in-memory pair with
 * structured cloning, as `serialization: 'advanced'` does), errors rebuilt on the caller's side,
 * calls that get no answer, and the store contract served from the primary's store.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/store/errors.js';
import { openStore } from '../../src/store/index.js';
import { connectIpcStore } from '../../src/store/ipc-client.js';
import { type IpcChannel, IpcPeer, IpcRemoteError } from '../../src/store/ipc-peer.js';
import { serveStore } from '../../src/store/ipc-server.js';

/** Two connected channels; a message is cloned and delivered asynchronously, like process.send. */
function channelPair(): [IpcChannel, IpcChannel] {
  const a = new EventEmitter();
  const b = new EventEmitter();
  const endpoint = (self: EventEmitter, other: EventEmitter): IpcChannel => ({
    send(message, callback) {
      const copy = structuredClone(message);
      setImmediate(() => {
        other.emit('message', copy);
        callback?.(null);
      });
      return true;
    },
    on: (event, listener) => self.on(event, listener),
    off: (event, listener) => self.off(event, listener),
  });
  return [endpoint(a, b), endpoint(b, a)];
}

describe('IpcPeer', () => {
  it('answers calls both ways, with Maps intact, and rebuilds errors with their name and code', async () => {
    const [left, right] = channelPair();
    const worker = new IpcPeer(left, 'the primary');
    const primary = new IpcPeer(right, 'worker 1');
    primary.handle('add', (a: number, b: number) => a + b);
    primary.handle('totals', async () => new Map([['k@0', 3]]));
    primary.handle('fail', () => {
      throw Object.assign(new RangeError('no such window'), { code: 'E_WINDOW' });
    });
    worker.handle('ping', () => 'pong');
    expect(await worker.call<number>('add', [2, 3])).toBe(5);
    expect(await worker.call<Map<string, number>>('totals')).toEqual(new Map([['k@0', 3]]));
    expect(await primary.call('ping')).toBe('pong');
    const error = await worker.call('fail').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IpcRemoteError);
    expect(error).toMatchObject({ name: 'RangeError', message: 'no such window', code: 'E_WINDOW' });
    await expect(worker.call('nothing')).rejects.toThrow(/unknown operation nothing/);
    expect(worker.inFlight).toBe(0);
  });

  it('rejects a call nobody answers, and every call in flight when closed', async () => {
    const [left] = channelPair();
    const lonely = new IpcPeer(left, 'the primary');
    await expect(lonely.call('store.check', [], 20)).rejects.toBeInstanceOf(StoreUnavailableError);
    const pending = lonely.call('store.check', [], 60_000);
    lonely.close('worker exited');
    await expect(pending).rejects.toThrow(/the primary did not answer call \d+: worker exited/);
    await expect(lonely.call('store.check')).rejects.toThrow(/the channel is closed/);
  });
});

describe('IPC store', () => {
  it('serves the primary store: documents, counters with the worker count as replicas, statistics', async () => {
    const [left, right] = channelPair();
    const owned = await openStore('memory', { dataDir: '/nonexistent' });
    serveStore(new IpcPeer(right, 'worker 1'), owned, { replicas: () => 3 });
    const store = await connectIpcStore(new IpcPeer(left, 'the primary'));
    expect(store.kind).toBe('embedded');
    expect(store.displayUrl).toBe('memory');
    await store.check();

    await store.documents.set('rules/a', { id: 'a' });
    expect(await store.documents.get('rules/a')).toEqual({ id: 'a' });
    expect(await owned.documents.get('rules/a')).toEqual({ id: 'a' });
    expect(await store.documents.list('rules/')).toEqual([['rules/a', { id: 'a' }]]);
    expect(await store.documents.delete('rules/a')).toBe(true);
    await expect(store.documents.set('', 1)).rejects.toThrow(/document key must be a non-empty string/);

    const delta = { key: 'r|1.2.3.4', windowStart: 60_000, windowMs: 60_000, delta: 2 };
    const first = await store.counters.sync('w1', [delta]);
    expect(first).toEqual({ totals: new Map([['r|1.2.3.4@60000', 2]]), replicas: 3 });
    expect((await store.counters.sync('w2', [{ ...delta, delta: 5 }])).totals.get('r|1.2.3.4@60000')).toBe(7);

    const row = {
      minute: 120_000,
      dimension: 'total' as const,
      value: '',
      requests: 4,
      bytes: 10,
      latencyMsSum: 8,
    };
    await store.stats.add([row]);
    expect(await store.stats.query({ from: 120_000, to: 180_000, dimension: 'total', limit: 1 })).toEqual([
      { ...row, minute: 120_000 },
    ]);
    expect(await store.stats.prune(Number.MAX_SAFE_INTEGER)).toBe(1);
    await store.close();
    await expect(store.check()).rejects.toThrow(/closed/);
    await owned.close();
  });
});
