/**
 * `serve --inject-token` adds the seller's token only for whom it is meant, over real sockets: the
 * proxy in front of the fake MercadoLibre, requests with chosen Host headers and client addresses.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import type { RunningServer } from '../../src/server/index.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { LogCapture } from '../support/proxy.js';
import { startInjectingProxy } from './helpers/inject.js';
import { fileTokens, loggedInToken } from './helpers/tokens.js';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** GET through the proxy with exactly these headers (Host included), from 127.0.0.1. */
function get(proxyUrl: string, headers: Record<string, string>): Promise<Answer> {
  const url = new URL('/items/MLA1', proxyUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, headers, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('who gets the injected token', () => {
  let meli: FakeMeli;
  let dir: string;
  let server: RunningServer;

  beforeAll(async () => {
    meli = await startFakeMeli();
    dir = await mkdtemp(path.join(tmpdir(), 'meli-guard-'));
    await fileTokens(dir).saveLogin(loggedInToken(meli));
    // The proxy behind an ingress on 127.0.0.1 (trusted), with one extra name allowed.
    ({ server } = await startInjectingProxy(meli, dir, new LogCapture(), undefined, {
      trustProxy: ['127.0.0.1'],
      injectHosts: ['proxy.internal', '*.corp.example'],
    }));
  });

  afterAll(async () => {
    await server?.shutdown('test over');
    await meli?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("refuses a Host that is a foreign DNS name (DNS rebinding) with 421 in MercadoLibre's shape", async () => {
    const before = meli.stats;
    const counts = { ...before, refreshCallsByToken: undefined };
    for (const host of ['attacker.example', 'attacker.example:8080', 'evil.proxy.internal', 'corp.example']) {
      const answer = await get(server.proxyUrl, { host });
      expect(answer.status, host).toBe(421);
      expect(answer.body).toMatchObject({ status: 421, error: 'misdirected_request', cause: [] });
      expect(String(answer.body.message)).toContain('--inject-hosts');
    }
    // Nothing reached MercadoLibre.
    expect(meli.stats.validTokenRequests).toBe(counts.validTokenRequests);
    expect(meli.stats.anonymousRequests).toBe(counts.anonymousRequests);
  });

  it('injects for localhost, IP literals, single labels, cluster service names and listed names', async () => {
    const port = new URL(server.proxyUrl).port;
    for (const host of [
      `localhost:${port}`,
      `127.0.0.1:${port}`,
      `[::1]:${port}`,
      'meli-proxy',
      'meli-proxy.default.svc.cluster.local',
      'meli-proxy.default.svc',
      'proxy.internal',
      'api.corp.example',
    ]) {
      const answer = await get(server.proxyUrl, { host });
      expect(answer.status, host).toBe(200);
      expect(answer.body, host).toMatchObject({ authenticated: true });
    }
  });

  it('does not inject for a client outside --inject-clients (an internet client through the ingress)', async () => {
    const anonymous = meli.stats.anonymousRequests;
    const outside = await get(server.proxyUrl, { host: 'localhost', 'x-forwarded-for': '203.0.113.9' });
    expect(outside.status).toBe(200);
    expect(outside.body).toMatchObject({ authenticated: false });
    expect(meli.stats.anonymousRequests).toBe(anonymous + 1);
    const inside = await get(server.proxyUrl, { host: 'localhost', 'x-forwarded-for': '10.1.2.3' });
    expect(inside.body).toMatchObject({ authenticated: true });
  });
});

describe('serve --inject-token refuses to start (exit 2)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'meli-guard-start-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function serve(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string }> {
    let stderr = '';
    const code = await runCli(
      [
        'serve',
        '--inject-token',
        '--data-dir',
        dir,
        '--port',
        '0',
        '--admin-port',
        '0',
        '--workers',
        '1',
        ...args,
      ],
      {
        stdout: { write: () => true },
        stderr: { write: (chunk: string) => (stderr += chunk) },
        env: { MELI_CLIENT_SECRET: 'not-a-real-secret', ...env },
        cwd: dir,
      },
    );
    return { code, stderr };
  }

  it('with an http:// upstream that is not loopback: the bearer would travel in clear', async () => {
    const result = await serve(['--upstream', 'http://api.example.com'], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/clear text to --upstream http:\/\/api\.example\.com.*https:\/\//);
  });

  it('on a shared store without a token key, saying how to make one', async () => {
    for (const store of ['postgres://proxy:pw@127.0.0.1:1/meli', 'redis://127.0.0.1:1']) {
      const result = await serve(['--store', store], {});
      expect(result.code, store).toBe(2);
      expect(result.stderr).toContain('must be encrypted, and no token key is set');
      expect(result.stderr).toContain('MELI_PROXY_TOKEN_KEY="$(openssl rand -base64 32)"');
      expect(result.stderr).not.toContain(':pw@');
    }
  });

  it('with a token key that is not 32 bytes, naming where it came from but not the value', async () => {
    const result = await serve(['--store', 'redis://127.0.0.1:1'], { MELI_PROXY_TOKEN_KEY: 'c2hvcnQ=' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('environment variable MELI_PROXY_TOKEN_KEY: key 1 is not 32 bytes');
    expect(result.stderr).not.toContain('c2hvcnQ=');
  });
});
