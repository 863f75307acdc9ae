import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { browserCommand } from '../../src/auth/browser.js';
import { startCallbackListener } from '../../src/auth/callback-listener.js';
import { formatDuration, pastedParameters } from '../../src/auth/login.js';
import { createSelfSignedCertificate } from '../../src/auth/self-signed.js';

async function portIsClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('callback listener', () => {
  it('waits on 127.0.0.1 for the redirect, ignores other requests, and answers the browser last', async () => {
    const listener = await startCallbackListener({ redirectUri: new URL('http://127.0.0.1:0/callback') });
    try {
      expect(listener.redirectUri.href).toBe(`http://127.0.0.1:${listener.port}/callback`);
      const base = `http://127.0.0.1:${listener.port}`;
      expect((await fetch(`${base}/favicon.ico`)).status).toBe(404);
      expect((await fetch(`${base}/callback`)).status).toBe(400);

      const browser = fetch(`${base}/callback?code=abc&state=xyz`);
      const callback = await listener.next();
      expect(callback.params.get('code')).toBe('abc');
      expect(callback.params.get('state')).toBe('xyz');
      callback.respond({ ok: true, message: 'All done <here>' });
      const page = await browser;
      expect(page.status).toBe(200);
      expect(page.headers.get('referrer-policy')).toBe('no-referrer');
      const html = await page.text();
      expect(html).toContain('All done &#60;here&#62;');
    } finally {
      await listener.close();
      await listener.close();
    }
    expect(await portIsClosed(listener.port)).toBe(true);
  });

  it('stops waiting when its signal aborts, and closes with a browser connection still open', async () => {
    const listener = await startCallbackListener({ redirectUri: new URL('http://127.0.0.1:0/cb') });
    const controller = new AbortController();
    const waiting = listener.next(controller.signal);
    const keepAlive = connect(listener.port, '127.0.0.1');
    await new Promise((resolve) => keepAlive.once('connect', resolve));
    controller.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    await listener.close();
    keepAlive.destroy();
    expect(await portIsClosed(listener.port)).toBe(true);
  });

  it('says which port is taken', async () => {
    const first = await startCallbackListener({ redirectUri: new URL('http://127.0.0.1:0/cb') });
    try {
      await expect(
        startCallbackListener({ redirectUri: new URL(`http://localhost:${first.port}/cb`) }),
      ).rejects.toThrow(new RegExp(`127.0.0.1:${first.port} \\(EADDRINUSE\\).*--paste`));
    } finally {
      await first.close();
    }
  });

  it('serves https for an https://localhost redirect URI with a self-signed certificate', async () => {
    const tls = await createSelfSignedCertificate();
    const listener = await startCallbackListener({
      redirectUri: new URL('https://localhost:0/callback'),
      tls,
    });
    try {
      expect(listener.redirectUri.protocol).toBe('https:');
      const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            servername: 'localhost',
            port: listener.port,
            path: '/callback?code=c&state=s',
            ca: tls.cert,
          },
          (res) => {
            let body = '';
            res.on('data', (chunk: Buffer) => {
              body += chunk.toString();
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end();
      });
      const callback = await listener.next();
      callback.respond({ ok: false, message: 'nope' });
      const { status, body } = await answer;
      expect(status).toBe(400);
      expect(body).toContain('Login failed');
    } finally {
      await listener.close();
    }
  });
});

describe('login helpers', () => {
  it('reads the redirect parameters from a pasted URL or query', () => {
    expect(pastedParameters(' https://localhost:8765/callback?code=a&state=b \n')?.get('code')).toBe('a');
    expect(pastedParameters('?error=access_denied&state=b')?.get('error')).toBe('access_denied');
    expect(pastedParameters('code=a&state=b')?.get('state')).toBe('b');
    expect(pastedParameters('https://localhost:8765/callback')).toBeUndefined();
    expect(pastedParameters('hello')).toBeUndefined();
  });

  it('says durations the way people read them', () => {
    expect(formatDuration(21_600_000 - 400)).toBe('6h');
    expect(formatDuration(5 * 3600_000 + 59 * 60_000)).toBe('5h 59m');
    expect(formatDuration(300_000)).toBe('5m');
    expect(formatDuration(90_000)).toBe('1m 30s');
    expect(formatDuration(1000)).toBe('1s');
    expect(formatDuration(-5)).toBe('0s');
  });

  it('opens the browser with $BROWSER or the platform opener', () => {
    expect(browserCommand('https://x/?a=1&b=2', { BROWSER: 'firefox' }, 'linux')).toEqual([
      'firefox',
      ['https://x/?a=1&b=2'],
    ]);
    expect(browserCommand('u', {}, 'linux')).toEqual(['xdg-open', ['u']]);
    expect(browserCommand('u', {}, 'darwin')).toEqual(['open', ['u']]);
    expect(browserCommand('u', {}, 'win32')[0]).toBe('rundll32');
  });
});
