/**
 * `serve --inject-token` in-process: the token manager wired into the real proxy (forwarder and
 * all) in front of the fake MercadoLibre, with the token in the embedded token file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyTokenAuth } from '../../src/auth/proxy-auth.js';
import { runCli } from '../../src/cli/program.js';
import type { RunningServer } from '../../src/server/index.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { LogCapture } from '../support/proxy.js';
import { startInjectingProxy } from './helpers/inject.js';
import { fileAccounts, fileTokens, loggedInToken } from './helpers/tokens.js';

describe('serve --inject-token', () => {
  let meli: FakeMeli;
  let dir: string;
  let server: RunningServer;
  let auth: ProxyTokenAuth;
  const logs = new LogCapture();

  beforeAll(async () => {
    meli = await startFakeMeli();
    dir = await mkdtemp(path.join(tmpdir(), 'meli-inject-'));
    // Logged in two hours ago: old enough for a 401 to justify a refresh.
    await fileTokens(dir).saveLogin(loggedInToken(meli, Date.now() - 2 * 3600_000));
    ({ server, auth } = await startInjectingProxy(meli, dir, logs));
  });

  afterAll(async () => {
    await server?.shutdown('test over');
    await meli?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('adds the stored token to requests that carry none', async () => {
    const response = await fetch(`${server.proxyUrl}/items/MLA1`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ authenticated: true });
    expect(meli.stats.validTokenRequests).toBe(1);
    expect(logs.withMessage('moved the stored MercadoLibre token to its account')).toHaveLength(1);
    expect(logs.withMessage('injecting MercadoLibre tokens into upstream requests')).toHaveLength(1);
  });

  it("keeps a client's own token (override is off)", async () => {
    expect(auth.manager.overrideClientToken).toBe(false);
    const response = await fetch(`${server.proxyUrl}/items/MLA1`, {
      headers: { authorization: 'Bearer APP_USR-own' },
    });
    expect(response.status).toBe(401);
    expect(meli.stats.unknownTokenRequests).toBe(1);
    expect(meli.stats.refreshCalls).toBe(0);
  });

  it('refreshes once and retries when the upstream refuses the injected token', async () => {
    meli.expireAccessTokens();
    const responses = await Promise.all(
      Array.from({ length: 5 }, (_, n) => fetch(`${server.proxyUrl}/items/MLA${n}`)),
    );
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 200, 200]);
    expect(meli.stats.refreshCalls).toBe(1);
    expect(meli.stats.invalidGrants).toBe(0);
    const metrics = await (await fetch(`${server.proxyUrl}/metrics`)).text();
    expect(metrics).toMatch(/^meli_proxy_token_refresh_total\{result="success"\} 1$/m);
    const stored = await fileAccounts(dir).account(String(meli.user.id)).load();
    expect(stored?.generation).toBe(2);
    expect(logs.text).not.toContain('APP_USR-');
    expect(logs.text).not.toContain(meli.client.secret);
  });

  it('refuses to start without the client secret (exit 2)', async () => {
    let stderr = '';
    const code = await runCli(
      [
        'serve',
        '--inject-token',
        '--store',
        'memory',
        '--data-dir',
        dir,
        '--port',
        '0',
        '--admin-port',
        '0',
        '--workers',
        '1',
      ],
      {
        stdout: { write: () => true },
        stderr: { write: (chunk: string) => (stderr += chunk) },
        env: {},
        cwd: dir,
      },
    );
    expect(code).toBe(2);
    expect(stderr).toContain('MELI_CLIENT_SECRET');
  });
});
