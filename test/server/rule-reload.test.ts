/**
 * A rule change asks every process to reload its rules and answers once each has (the admin API's
 * "in force on every worker when the command returns"). A reload asked for while another is running
 * must not ride on that one: it may have read the store before the change. Here the running pass is
 * held after it read the store (a wrapper around the real memory store's listing, the only seam), a
 * rule is saved, and the reload asked for then must see it.
 */
import { describe, expect, it } from 'vitest';
import { parseRule } from '../../src/limits/index.js';
import { saveRule } from '../../src/limits/rule-store.js';
import { createLogger } from '../../src/logger.js';
import { RateLimiter } from '../../src/server/rate-limit.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';
import { LogCapture } from '../support/proxy.js';

/** The store as it is, except that a listing, once read, waits while `held` is set. */
function holdingListings(store: Store): { store: Store; hold(): void; release(): void; readCount(): number } {
  let held: Promise<void> | undefined;
  let release: () => void = () => undefined;
  let reads = 0;
  const documents = Object.create(store.documents) as Store['documents'];
  documents.list = async <T>(prefix: string) => {
    const rows = await store.documents.list<T>(prefix);
    reads++;
    await held;
    return rows;
  };
  return {
    store: { ...store, documents } as Store,
    hold() {
      held = new Promise((resolve) => {
        release = resolve;
      });
    },
    release() {
      held = undefined;
      release();
    },
    readCount: () => reads,
  };
}

describe('rule reloads', () => {
  it('a reload asked for during a running one reads the store again and has the new rule in force', async () => {
    const memory = await openStore('memory', { dataDir: '/nonexistent' });
    const store = holdingListings(memory);
    const gate = await RateLimiter.start({
      store: store.store,
      logger: createLogger('info', new LogCapture()),
      fileRules: [],
      fileName: 'test',
      env: {},
      legacyHeaders: false,
      syncIntervalMs: 100,
      onStoreError: 'open',
      // Only the reloads this test asks for.
      reloadIntervalMs: 3_600_000,
    });
    try {
      store.hold();
      const running = gate.reload();
      await expect.poll(() => store.readCount()).toBe(2);
      // The running pass has read the store: the rule is saved after that read.
      await saveRule(
        memory.documents,
        parseRule({ id: 'new-rule', match: { path: '/items/*' }, limit: '5/m' }, 'test'),
      );
      const asked = gate.reloadEverywhere();
      store.release();
      await running;
      await asked;
      expect(gate.rules.map((rule) => rule.id)).toEqual(['new-rule']);
      expect(store.readCount()).toBe(3);
      // Calls made while a pass runs share the one pass that follows it.
      store.hold();
      const first = gate.reload();
      await expect.poll(() => store.readCount()).toBe(4);
      const [second, third] = [gate.reload(), gate.reload()];
      store.release();
      await Promise.all([first, second, third]);
      expect(store.readCount()).toBe(5);
    } finally {
      store.release();
      await gate.stop();
      await memory.close();
    }
  });
});
