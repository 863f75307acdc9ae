/**
 * `serve --inject-token` when the held token is past its usable time and its refresh is still at the
 * token endpoint: the request waits (briefly) and goes with the new token, rather than going out
 * anonymous. Short-lived tokens and a slow token endpoint make that moment reachable in a test.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_WAIT_MS } from '../../src/auth/token-manager.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { HANG_DEADLINE_MS, WORKER_MODES } from '../support/proxy.js';
import type { ServedProxy } from '../support/serve.js';
import { serveInjecting } from './helpers/inject.js';
import { fileAccounts, loggedInToken } from './helpers/tokens.js';

/** How long the token endpoint takes to answer a refresh: well inside the wait bound. */
const REFRESH_DELAY_MS = 1000;

describe.each(WORKER_MODES)(
  'serve --inject-token while a refresh is in flight past the usable time ($name)',
  (mode) => {
    let meli: FakeMeli;
    let dir: string;
    let proxy: ServedProxy;

    beforeAll(async () => {
      expect(REFRESH_DELAY_MS).toBeLessThan(TOKEN_WAIT_MS);
      meli = await startFakeMeli({ expiresIn: 3600 });
      dir = await mkdtemp(path.join(tmpdir(), 'meli-inject-wait-'));
      // Served first with a token good for an hour, however long the workers take to start.
      await fileAccounts(dir).saveLogin(loggedInToken(meli));
      proxy = await serveInjecting(mode, meli, dir);
    });

    afterAll(async () => {
      await proxy?.close();
      await meli?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('sends the request with the refreshed token once it arrives, not without one', async () => {
      // A new login whose tokens live 2 s, adopted at the next poll (every second): refreshed at
      // 75–85 % (1.5–1.7 s), unusable from 1.9 s (the last 5 % is not used); the token endpoint takes
      // 1.5 s, so the new token arrives at 3.0–3.2 s.
      meli.setExpiresIn(2);
      meli.setRefreshDelay(REFRESH_DELAY_MS);
      const login = loggedInToken(meli);
      const account = fileAccounts(dir).account(String(meli.user.id));
      await account.saveLogin(login);
      const usableUntil = login.expiresAt - (login.expiresAt - login.obtainedAt) * 0.05;
      const deadline = Date.now() + HANG_DEADLINE_MS;
      while (meli.stats.refreshCalls === 0 || Date.now() < usableUntil) {
        if (Date.now() > deadline) throw new Error('the new login was never refreshed');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // The moment under test: no usable token held, the refresh not back yet.
      const stored = await account.load();
      expect(stored?.lineage).toBe(login.lineage);
      expect(stored?.generation, 'the refresh came back before the request could be sent').toBe(1);
      const response = await fetch(`${proxy.url}/items/MLA1`);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ authenticated: true });
      expect(meli.stats.anonymousRequests).toBe(0);
      expect(meli.stats.validTokenRequests).toBe(1);
    });
  },
);
