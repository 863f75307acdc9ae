/**
 * `serve --inject-token` when the held token is past its usable time and its refresh is still at the
 * token endpoint: the request waits (briefly) and goes with the new token, rather than going out
 * anonymous. Short-lived tokens and a slow token endpoint make that moment reachable in a test.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyTokenAuth } from '../../src/auth/proxy-auth.js';
import type { RunningServer } from '../../src/server/index.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { LogCapture } from '../support/proxy.js';
import { startInjectingProxy } from './helpers/inject.js';
import { fileTokens, loggedInToken } from './helpers/tokens.js';

describe('serve --inject-token while a refresh is in flight past the usable time', () => {
  let meli: FakeMeli;
  let dir: string;
  let server: RunningServer;
  let auth: ProxyTokenAuth;

  beforeAll(async () => {
    // Tokens live 2 s: refreshed at 1.6 s, unusable from 1.9 s; the token endpoint takes 1 s.
    meli = await startFakeMeli({ expiresIn: 2 });
    meli.setRefreshDelay(1000);
    dir = await mkdtemp(path.join(tmpdir(), 'meli-inject-wait-'));
    await fileTokens(dir).saveLogin(loggedInToken(meli));
    ({ server, auth } = await startInjectingProxy(meli, dir, new LogCapture(), { jitter: 0 }));
  });

  afterAll(async () => {
    await server?.shutdown('test over');
    await meli?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sends the request with the refreshed token once it arrives, not without one', async () => {
    const deadline = Date.now() + 5000;
    while (auth.manager.currentAuthorization() !== undefined) {
      if (Date.now() > deadline) throw new Error('the token never went past its usable time');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(meli.stats.refreshCalls).toBe(1);
    const response = await fetch(`${server.proxyUrl}/items/MLA1`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ authenticated: true });
    expect(meli.stats.anonymousRequests).toBe(0);
    expect(meli.stats.validTokenRequests).toBe(1);
  });
});
