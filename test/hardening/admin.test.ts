/**
 * The admin surface: only on the admin port (127.0.0.1 by default), the admin token required and
 * compared in constant time, and a 401 that tells nothing. The proxy port never answers an admin
 * route, however the path is spelled: those requests go to the upstream like any other path (the
 * origin's request log and its own request id in the answer prove it) and change nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { UsageError } from '../../src/errors.js';
import { adminTokenDigest, bearerMatches, isLoopbackHostHeader } from '../../src/server/admin-auth.js';
import { type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, RawConnection, rawGet } from '../support/net.js';
import { HANG_DEADLINE_MS, startTestProxy, WORKER_MODES } from '../support/proxy.js';
import { TEST_SECRETS } from '../support/secrets.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';
import { exchange } from './helpers.js';

const { adminToken, wrongAdminToken } = TEST_SECRETS;

describe.each(WORKER_MODES)('admin surface ($name)', (mode) => {
  let origin: Origin;
  let other: Origin;
  let proxy: ServedProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    other = await startOrigin({ host: '127.0.0.3' });
    proxy = await startServeProxy(mode, { upstream: origin.url, adminToken });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
    await other?.close();
  });
  beforeEach(() => {
    origin.reset();
    other.reset();
  });

  const admin = (target: string, authorization?: string, method = 'GET', body?: string) =>
    httpRequest(proxy.adminUrl, target, {
      method,
      headers: {
        ...(authorization ? { authorization } : {}),
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body,
    });

  describe('the proxy port never answers admin routes', () => {
    const targets = [
      '/admin/limits',
      '/admin/status',
      '/admin/stats/live',
      '/admin/dashboard',
      '/%61dmin/limits',
      '/%61%64%6D%69%6E/status',
      '//admin/limits',
      '/admin%2flimits',
      '/admin%2Fstatus',
      '/./admin/limits',
      '/x/../admin/limits',
      '/ADMIN/limits',
      '/admin;/limits',
      '/admin/limits/',
      '/admin/limits?token=x',
    ];
    it.each(targets)('GET %s goes to the upstream, and the answer is the origin’s', async (target) => {
      const { responses } = await exchange(
        proxy.url,
        rawGet(target, 'proxy.test', [
          `Authorization: Bearer ${TEST_SECRETS.bearerToken}`,
          'Connection: close',
        ]),
      );
      expect(responses).toHaveLength(1);
      const response = responses[0]!;
      expect(response.headers['x-upstream-request-id']).toMatch(/^origin-/);
      expect(response.status).toBe(404);
      expect(JSON.parse(response.body.toString()).message).toMatch(/^Resource .* not found\.$/);
      expect(origin.requests.map((request) => request.url)).toEqual([target]);
    });

    it('forwards PUT and DELETE on admin paths to the upstream, and no rule changes', async () => {
      for (const [method, target] of [
        ['PUT', '/admin/limits/sneaky'],
        ['PUT', '/%61dmin/limits/sneaky'],
        ['DELETE', '/admin/limits/sneaky'],
      ] as const) {
        const rule = JSON.stringify({ match: { path: '/items/*' }, limit: '1/h' });
        const response = await httpRequest(proxy.url, target, {
          method,
          ...(method === 'PUT' ? { headers: { 'content-type': 'application/json' }, body: rule } : {}),
        });
        expect(response.headers['x-upstream-request-id']).toMatch(/^origin-/);
        expect(response.status).toBe(404);
      }
      expect(origin.requests.map((request) => `${request.method} ${request.url}`)).toEqual([
        'PUT /admin/limits/sneaky',
        'PUT /%61dmin/limits/sneaky',
        'DELETE /admin/limits/sneaky',
      ]);
      const rules = await admin('/admin/limits', `Bearer ${adminToken}`);
      expect(rules.status).toBe(200);
      expect(rules.body.toString()).not.toContain('sneaky');
    });

    it('sends absolute-form targets and Host headers naming the admin port to the upstream', async () => {
      const adminHost = new URL(proxy.adminUrl).host;
      const connection = await RawConnection.open(proxy.url);
      try {
        for (const request of [
          rawGet(`http://${adminHost}/admin/limits`, adminHost),
          rawGet(`http://${adminHost}/%61dmin/status`, adminHost),
          rawGet('/admin/status', adminHost),
        ]) {
          await connection.send(request);
          const response = await connection.readResponse();
          expect(response.headers['x-upstream-request-id']).toMatch(/^origin-/);
        }
      } finally {
        connection.close();
      }
      expect(origin.requests.map((request) => request.url)).toEqual([
        '/admin/limits',
        '/%61dmin/status',
        '/admin/status',
      ]);
      expect(other.requests).toEqual([]);
    });
  });

  describe('the admin port', () => {
    it('listens on 127.0.0.1 by default', () => {
      expect(loadConfig({ env: {}, flags: {} }).adminHost).toBe('127.0.0.1');
      expect(new URL(proxy.adminUrl).hostname).toBe('127.0.0.1');
    });

    it('answers 200 with the token', async () => {
      expect((await admin('/admin/status', `Bearer ${adminToken}`)).status).toBe(200);
      expect((await admin('/admin/status', `bearer ${adminToken}`)).status).toBe(200);
    });

    it('gives one and the same 401 for every missing, wrong or misplaced token, on every path', async () => {
      const attempts: Array<[string, string | undefined, string?]> = [
        ['/admin/status', undefined],
        ['/admin/status', `Bearer ${wrongAdminToken}`],
        ['/admin/status', `Bearer ${adminToken.slice(0, -1)}`],
        ['/admin/status', `Bearer ${adminToken}x`],
        ['/admin/status', `Bearer ${adminToken.toUpperCase()}`],
        ['/admin/status', `Bearer  ${adminToken} extra`],
        ['/admin/status', `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}`],
        ['/admin/status', adminToken],
        ['/admin/status', 'Bearer'],
        ['/admin/status', `Bearer ${'x'.repeat(8000)}`],
        [`/admin/status?token=${adminToken}`, undefined],
        [`/admin/status?access_token=${adminToken}`, undefined],
        ['/admin/limits', undefined],
        ['/admin/limits/test?ip=1.2.3.4', `Bearer ${wrongAdminToken}`],
        ['/admin/stats/live', undefined],
        ['/admin/no-such-endpoint', undefined],
        ['/no-such-path', undefined],
        ['/%61dmin/status', undefined],
      ];
      const answers = new Set<string>();
      for (const [target, authorization] of attempts) {
        const response = await admin(target, authorization);
        expect(response.status, target).toBe(401);
        expect(response.headers['www-authenticate']).toBe('Bearer realm="meli-proxy admin"');
        const body = response.body.toString();
        expect(body).not.toContain(adminToken);
        expect(body).not.toContain(wrongAdminToken);
        answers.add(`${response.headers['content-type']} ${body}`);
      }
      expect([...answers]).toEqual([
        'application/json; charset=utf-8 {"message":"A valid admin token is required.","error":"unauthorized","status":401,"cause":[]}',
      ]);
      // Writes are refused the same way, and change nothing.
      const put = await admin(
        '/admin/limits/sneaky',
        `Bearer ${wrongAdminToken}`,
        'PUT',
        JSON.stringify({ match: { path: '/items/*' }, limit: '1/h' }),
      );
      expect(put.status).toBe(401);
      expect((await admin('/admin/limits', `Bearer ${adminToken}`)).body.toString()).not.toContain('sneaky');
    });

    it('tells unknown endpoints apart only with the token', async () => {
      expect((await admin('/admin/no-such-endpoint', `Bearer ${adminToken}`)).status).toBe(404);
    });

    it('compares tokens of any length without throwing and without early exit on length', () => {
      const expected = adminTokenDigest(adminToken);
      expect(bearerMatches(`Bearer ${adminToken}`, expected)).toBe(true);
      // timingSafeEqual throws on different lengths; both sides are SHA-256 digests, so it never does.
      for (const length of [0, 1, 15, 16, adminToken.length - 1, adminToken.length + 1, 100_000]) {
        expect(bearerMatches(`Bearer ${'a'.repeat(length)}`, expected)).toBe(false);
      }
      expect(bearerMatches(undefined, expected)).toBe(false);
      expect(bearerMatches(`Bearer ${adminToken} ${adminToken}`, expected)).toBe(false);
    });

    it('closes a slow client on the admin port too', async () => {
      const slow = await startServeProxy(mode, { upstream: origin.url, adminToken, headersTimeout: 300 });
      try {
        const connection = await RawConnection.open(slow.adminUrl);
        await connection.send('GET /admin/status HTTP/1.1\r\nHost: 127.0.0.1\r\n');
        // Closed after the 300 ms headers timeout; the deadline only catches a connection left open.
        expect(await connection.waitForClose(HANG_DEADLINE_MS)).toBe(true);
        connection.close();
      } finally {
        await slow.close();
      }
    });
  });

  describe('without an admin token', () => {
    // Configuration checked before anything listens: in this process, once, is enough.
    it.runIf(mode === WORKER_MODES[0])(
      'refuses to serve the admin API on a non-loopback address',
      async () => {
        const failure = await startTestProxy({ upstream: origin.url, adminHost: '0.0.0.0' }).catch(
          (error: unknown) => error,
        );
        expect(failure).toBeInstanceOf(UsageError);
        expect((failure as Error).message).toMatch(/MELI_PROXY_ADMIN_TOKEN/);
      },
    );

    it('answers only requests that name a loopback host (no DNS rebinding)', async () => {
      const open = await startServeProxy(mode, { upstream: origin.url });
      try {
        const port = new URL(open.adminUrl).port;
        for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost', `[::1]:${port}`]) {
          const { responses } = await exchange(
            open.adminUrl,
            rawGet('/admin/status', host, ['Connection: close']),
          );
          expect(responses[0]?.status, host).toBe(200);
        }
        for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`, '']) {
          const { responses } = await exchange(
            open.adminUrl,
            rawGet('/admin/status', host, ['Connection: close']),
          );
          expect(responses[0]?.status, host).toBe(403);
        }
      } finally {
        await open.close();
      }
      expect(isLoopbackHostHeader('127.0.0.1')).toBe(true);
      expect(isLoopbackHostHeader('[::1]:8081')).toBe(true);
      expect(isLoopbackHostHeader('127.0.0.1@evil.example')).toBe(false);
      expect(isLoopbackHostHeader(undefined)).toBe(false);
    });
  });
});
