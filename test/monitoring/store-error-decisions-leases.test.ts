/**
 * meli_proxy_rule_store_error_decisions_total's source for the workers of one host: the rate-limit
 * gate of a worker holding leases, with the primary's real lease arbiter behind an asynchronous,
 * cloning hop (what IPC does) that stops answering. Each request whose counter holds no permit
 * meanwhile is decided by --on-store-error and counted once for its rule: allowed under `open`,
 * rejected under `deny`; requests decided with the primary answering, and shadow rules, are not.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { LeaseArbiter, type LeaseTransport } from '../../src/limits/lease-arbiter.js';
import { createLogger } from '../../src/logger.js';
import { RateLimiter } from '../../src/server/rate-limit.js';
import { openStore } from '../../src/store/index.js';
import { LogCapture } from '../support/proxy.js';

const hop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function transport(arbiter: LeaseArbiter, state: { down: boolean }): LeaseTransport {
  return {
    async lease(asks) {
      await hop();
      if (state.down) throw new Error('the primary process did not answer limits.lease');
      const grants = arbiter.grant(structuredClone(asks), Date.now());
      await hop();
      return structuredClone(grants);
    },
    async release(returns) {
      await hop();
      if (state.down) throw new Error('the primary process did not answer limits.release');
      const reclaims = arbiter.release(structuredClone(returns), Date.now());
      await hop();
      return structuredClone(reclaims);
    },
  };
}

describe('admissions decided by --on-store-error with leases', () => {
  it.each([
    ['open', 'allowed', true],
    ['deny', 'rejected', false],
  ] as const)(
    '--on-store-error %s: each request without a permit during the outage counts as %s',
    async (onStoreError, decision, allowed) => {
      const store = await openStore('memory', { dataDir: '/nonexistent' });
      const state = { down: false };
      const gate = await RateLimiter.start({
        store,
        logger: createLogger('error', new LogCapture()),
        fileRules: [
          { id: 'per-ip', match: { path: '/ip' }, by: ['ip'], limit: '100/m' },
          { id: 'watch', match: { path: '/ip' }, by: ['ip'], limit: '100/m', mode: 'shadow' },
        ],
        fileName: 'test',
        env: {},
        legacyHeaders: false,
        syncIntervalMs: 100,
        onStoreError,
        workers: 2,
        leases: transport(new LeaseArbiter({ workers: () => 2 }), state),
      });
      const decide = async (ip: string) => gate.decide({ headers: {} } as IncomingMessage, ip, 'GET', '/ip');
      try {
        // The primary answers: permits decide, nothing is counted.
        expect((await decide('10.0.0.1'))?.allowed).toBe(true);
        expect(gate.storeErrorDecisions.allowed.size + gate.storeErrorDecisions.rejected.size).toBe(0);

        state.down = true;
        // New clients: their counters hold no permit, so each is decided without the primary.
        const outage = ['10.0.0.2', '10.0.0.3', '10.0.0.4'];
        for (const ip of outage) expect((await decide(ip))?.allowed).toBe(allowed);
        const counts = gate.storeErrorDecisions;
        expect(counts[decision].get('per-ip')).toBe(outage.length);
        expect(counts[decision === 'allowed' ? 'rejected' : 'allowed'].get('per-ip')).toBeUndefined();
        expect(counts.allowed.get('watch')).toBeUndefined();
        expect(counts.rejected.get('watch')).toBeUndefined();
      } finally {
        state.down = false;
        await gate.stop();
        await store.close();
      }
    },
  );
});
