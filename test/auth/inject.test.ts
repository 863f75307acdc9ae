/**
 * `serve --inject-token` as the real process, under one worker and the default worker count: the
 * token manager wired into the proxy (forwarder and all) in front of the fake MercadoLibre, with the
 * token in the embedded token file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { WORKER_MODES } from '../support/proxy.js';
import type { ServedProxy } from '../support/serve.js';
import { serveInjecting } from './helpers/inject.js';
import { fileAccounts, fileTokens, loggedInToken } from './helpers/tokens.js';

describe.each(WORKER_MODES)('serve --inject-token ($name)', (mode) => {
  let meli: FakeMeli;
  let dir: string;
  let proxy: ServedProxy;

  beforeAll(async () => {
    meli = await startFakeMeli();
    dir = await mkdtemp(path.join(tmpdir(), 'meli-inject-'));
    // Logged in two hours ago: old enough for a 401 to justify a refresh.
    await fileTokens(dir).saveLogin(loggedInToken(meli, Date.now() - 2 * 3600_000));
    proxy = await serveInjecting(mode, meli, dir);
  });

  afterAll(async () => {
    await proxy?.close();
    await meli?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('adds the stored token to requests that carry none', async () => {
    const response = await fetch(`${proxy.url}/items/MLA1`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ authenticated: true });
    expect(meli.stats.validTokenRequests).toBe(1);
    // The token file is moved once, not once per worker; each worker then injects.
    expect(proxy.logs.withMessage('moved the stored MercadoLibre token to its account')).toHaveLength(1);
    expect(proxy.logs.withMessage('injecting MercadoLibre tokens into upstream requests')).not.toHaveLength(
      0,
    );
  });

  it("keeps a client's own token (override is off)", async () => {
    const response = await fetch(`${proxy.url}/items/MLA1`, {
      headers: { authorization: 'Bearer APP_USR-own' },
    });
    expect(response.status).toBe(401);
    expect(meli.stats.unknownTokenRequests).toBe(1);
    expect(meli.stats.refreshCalls).toBe(0);
  });

  it('refreshes once and retries when the upstream refuses the injected token', async () => {
    meli.expireAccessTokens();
    const responses = await Promise.all(
      Array.from({ length: 5 }, (_, n) => fetch(`${proxy.url}/items/MLA${n}`)),
    );
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 200, 200]);
    expect(meli.stats.refreshCalls).toBe(1);
    expect(meli.stats.invalidGrants).toBe(0);
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    expect(metrics).toMatch(/^meli_proxy_token_refresh_total\{result="success"\} 1$/m);
    const stored = await fileAccounts(dir).account(String(meli.user.id)).load();
    expect(stored?.generation).toBe(2);
    expect(proxy.logs.text).not.toContain('APP_USR-');
    expect(proxy.logs.text).not.toContain(meli.client.secret);
  });
});

describe('serve --inject-token, usage', () => {
  it('refuses to start without the client secret (exit 2)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'meli-inject-'));
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
    await rm(dir, { recursive: true, force: true });
    expect(code).toBe(2);
    expect(stderr).toContain('MELI_CLIENT_SECRET');
  });
});
