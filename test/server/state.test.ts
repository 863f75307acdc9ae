/**
 * Readiness means "send me traffic": not before every listener is up, not while draining, and never
 * withdrawn because a dependency (the store) is down — that is reported beside it instead.
 */
import { describe, expect, it } from 'vitest';
import { ServerState } from '../../src/server/state.js';

describe('ServerState readiness', () => {
  it('is not ready until started, ready after, and not ready again while draining', async () => {
    const state = new ServerState();
    expect(await state.readiness()).toEqual({
      ready: false,
      reasons: ['starting: the server is not listening on every port yet'],
      dependencies: {},
    });
    state.markStarted();
    expect(await state.readiness()).toEqual({ ready: true, reasons: [], dependencies: {} });
    state.startDraining();
    expect(await state.readiness()).toMatchObject({
      ready: false,
      reasons: ['draining: the server is shutting down'],
    });
  });

  it('reports a failing dependency without becoming unready', async () => {
    const state = new ServerState();
    state.markStarted();
    let down = true;
    state.addDependency('store', async () => {
      if (down) throw new Error('connection refused');
      return undefined;
    });
    state.addDependency('other', async () => 'degraded');
    expect(await state.readiness()).toEqual({
      ready: true,
      reasons: [],
      dependencies: {
        store: { healthy: false, reason: 'connection refused' },
        other: { healthy: false, reason: 'degraded' },
      },
    });
    down = false;
    expect((await state.readiness()).dependencies.store).toEqual({ healthy: true });
  });
});
