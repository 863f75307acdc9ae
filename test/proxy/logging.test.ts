/**
 * The JSON log: one access line per proxied request when --access-log is on, none when off, and
 * never a credential — not from the Authorization header, not from the query string, not in the
 * lines written when the upstream fails.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, rawGet, rawRequest } from '../support/net.js';
import { HANG_DEADLINE_MS, startTestProxy, type TestProxy } from '../support/proxy.js';

const SECRETS = [
  'SECRET-TOKEN-123',
  'SECRET-Q',
  'SECRET-R',
  'SECRET-C',
  'SECRET-CODE',
  'SECRET-COOKIE',
  'SECRET-ENC',
];

describe('access log', () => {
  let origin: Origin;
  const proxies: TestProxy[] = [];

  beforeAll(async () => {
    origin = await startOrigin();
  });
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  });
  afterAll(async () => {
    await origin?.close();
  });

  const start = async (settings: Record<string, unknown>): Promise<TestProxy> => {
    const proxy = await startTestProxy({ upstream: origin.url, ...settings });
    proxies.push(proxy);
    return proxy;
  };

  it('writes one JSON line per proxied request with --access-log on', async () => {
    const proxy = await start({ accessLog: 'on' });
    await httpRequest(proxy.url, '/categories/MLA97994', { headers: { 'x-request-id': 'log-1' } });
    await httpRequest(proxy.url, '/items/MLA1', { method: 'DELETE' });
    await httpRequest(proxy.url, '/status/404');
    await httpRequest(proxy.url, '/echo', {
      method: 'POST',
      headers: { 'content-length': '5' },
      body: 'hello',
    });
    await httpRequest(proxy.url, '/health');
    await httpRequest(proxy.url, '/metrics');
    // Every line is one JSON document.
    for (const line of proxy.logs.lines) expect(() => JSON.parse(line), line).not.toThrow();
    const access = proxy.logs.withMessage('request');
    expect(access.map((line) => `${line.method} ${line.url} ${line.status}`)).toEqual([
      'GET /categories/MLA97994 200',
      'DELETE /items/MLA1 200',
      'GET /status/404 404',
      'POST /echo 200',
    ]);
    expect(access[0]).toMatchObject({
      reqId: 'log-1',
      ip: '127.0.0.1',
      level: 'info',
      service: 'meli-proxy',
    });
    expect(access[0]!.bytes).toBeGreaterThan(100);
    expect(typeof access[0]!.ms).toBe('number');
  });

  it('writes no access line with --access-log off', async () => {
    const proxy = await start({ accessLog: 'off' });
    await httpRequest(proxy.url, '/categories/MLA97994');
    await httpRequest(proxy.url, '/status/500');
    expect(proxy.logs.withMessage('request')).toEqual([]);
    expect(proxy.logs.text).not.toContain('/categories/MLA97994');
  });

  it('logs an aborted request once, marked aborted', async () => {
    const proxy = await start({ accessLog: 'on' });
    // The origin would answer after a minute: the client's leaving after 100 ms is what ends it.
    await httpRequest(proxy.url, '/slow?ms=60000', { timeoutMs: 100 }).catch(() => undefined);
    await expect.poll(() => proxy.logs.withMessage('request').length, { timeout: HANG_DEADLINE_MS }).toBe(1);
    expect(proxy.logs.withMessage('request')[0]).toMatchObject({
      url: '/slow?ms=60000',
      aborted: true,
      status: 499,
    });
  });

  it('never writes credentials, whatever the log level and outcome', async () => {
    const proxy = await start({ accessLog: 'on', logLevel: 'trace', upstreamTimeout: 150 });
    const authorization = { authorization: 'Bearer SECRET-TOKEN-123', cookie: 'session=SECRET-COOKIE' };
    const targets = [
      '/users/me?access_token=SECRET-Q',
      '/items/MLA1?attributes=id&access_token=SECRET-Q&x=1',
      '/oauth/token?grant_type=refresh_token&refresh_token=SECRET-R&client_secret=SECRET-C',
      '/callback?code=SECRET-CODE&state=1',
      '/reset?access_token=SECRET-Q',
      '/slow?ms=1000&access_token=SECRET-Q',
      '/status/401?ACCESS_TOKEN=SECRET-Q',
    ];
    for (const target of targets) {
      await httpRequest(proxy.url, target, { headers: authorization });
    }
    // The same through a raw socket, with a malformed target and a reserved path.
    await rawRequest(
      proxy.url,
      rawGet('/health?access_token=SECRET-Q', 'proxy.test', ['Authorization: Bearer SECRET-TOKEN-123']),
    );
    await rawRequest(proxy.url, rawGet('/x?access_token=SECRET-Q', 'proxy.test', [], 'TRACE'));
    // The origin did receive them: the proxy forwards credentials, it just does not log them.
    expect(origin.requests.some((r) => r.headers.authorization === 'Bearer SECRET-TOKEN-123')).toBe(true);

    const text = proxy.logs.text;
    expect(proxy.logs.withMessage('request').length).toBeGreaterThanOrEqual(targets.length);
    for (const secret of SECRETS.filter((s) => s !== 'SECRET-ENC')) expect(text).not.toContain(secret);
    expect(text).toContain('access_token=[redacted]');
  });

  it('does not write a token whose parameter name is percent-encoded (access%5Ftoken)', async () => {
    const proxy = await start({ accessLog: 'on' });
    // The API decodes `access%5Ftoken` to `access_token`: it is the same credential.
    await httpRequest(proxy.url, '/users/me?access%5Ftoken=SECRET-ENC');
    expect(origin.requests.at(-1)?.url).toBe('/users/me?access%5Ftoken=SECRET-ENC');
    expect(proxy.logs.withMessage('request').length).toBe(1);
    expect(proxy.logs.text).not.toContain('SECRET-ENC');
  });
});
