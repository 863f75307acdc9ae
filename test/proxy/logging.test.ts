/**
 * The JSON log: one access line per proxied request when --access-log is on, none when off, and
 * never a credential — not from the Authorization header, not from the query string, not in the
 * lines written when the upstream fails. Under every worker mode: each worker writes its own lines,
 * so the checks find lines by request id or URL, never by their order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, rawGet, rawRequest } from '../support/net.js';
import { HANG_DEADLINE_MS, type LogRecord, WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';

const SECRETS = [
  'SECRET-TOKEN-123',
  'SECRET-Q',
  'SECRET-R',
  'SECRET-C',
  'SECRET-CODE',
  'SECRET-COOKIE',
  'SECRET-ENC',
];

describe.each(WORKER_MODES)('access log ($name)', (mode) => {
  let origin: Origin;
  // One proxy per setting, shared by the cases of this describe.
  let logging: ServedProxy;
  let silent: ServedProxy;
  let tracing: ServedProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    [logging, silent, tracing] = await Promise.all([
      startServeProxy(mode, { upstream: origin.url, accessLog: 'on' }),
      startServeProxy(mode, { upstream: origin.url, accessLog: 'off' }),
      startServeProxy(mode, {
        upstream: origin.url,
        accessLog: 'on',
        logLevel: 'trace',
        upstreamTimeout: 150,
      }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([logging?.close(), silent?.close(), tracing?.close()]);
    await origin?.close();
  });

  const accessLines = (proxy: ServedProxy, prefix: string): LogRecord[] =>
    proxy.logs.withMessage('request').filter((line) => String(line.reqId).startsWith(prefix));

  it('writes one JSON line per proxied request with --access-log on', async () => {
    const id = (name: string) => ({ 'x-request-id': `lines-${name}` });
    await httpRequest(logging.url, '/categories/MLA97994', { headers: id('category') });
    await httpRequest(logging.url, '/items/MLA1', { method: 'DELETE', headers: id('delete') });
    await httpRequest(logging.url, '/status/404', { headers: id('404') });
    await httpRequest(logging.url, '/echo', {
      method: 'POST',
      headers: { 'content-length': '5', ...id('post') },
      body: 'hello',
    });
    await httpRequest(logging.url, '/health', { headers: id('health') });
    await httpRequest(logging.url, '/metrics', { headers: id('metrics') });
    // Each worker's lines arrive in the order it wrote them: once lines written after /health and
    // /metrics have arrived from every worker (round-robin spreads these), theirs would have too.
    for (let index = 0; index < 4; index++) {
      await httpRequest(logging.url, '/items/MLA2', { headers: { 'x-request-id': `later-${index}` } });
    }
    await expect.poll(() => accessLines(logging, 'later-').length, { timeout: HANG_DEADLINE_MS }).toBe(4);

    // Every line is one JSON document.
    for (const line of logging.cli.stdout.split('\n').filter(Boolean)) {
      expect(() => JSON.parse(line), line).not.toThrow();
    }
    const access = accessLines(logging, 'lines-');
    expect(access.map((line) => `${line.reqId} ${line.method} ${line.url} ${line.status}`).sort()).toEqual([
      'lines-404 GET /status/404 404',
      'lines-category GET /categories/MLA97994 200',
      'lines-delete DELETE /items/MLA1 200',
      'lines-post POST /echo 200',
    ]);
    const category = access.find((line) => line.reqId === 'lines-category');
    expect(category).toMatchObject({ ip: '127.0.0.1', level: 'info', service: 'meli-proxy' });
    expect(category!.bytes).toBeGreaterThan(100);
    expect(typeof category!.ms).toBe('number');
  });

  it('writes no access line with --access-log off', async () => {
    await httpRequest(silent.url, '/categories/MLA97994');
    await httpRequest(silent.url, '/status/500');
    // Only this case uses this proxy: once it has exited, everything it wrote has arrived.
    await silent.close();
    expect(silent.logs.withMessage('request')).toEqual([]);
    expect(silent.logs.text).not.toContain('/categories/MLA97994');
  });

  it('logs an aborted request once, marked aborted', async () => {
    // The origin would answer after a minute: the client's leaving after 100 ms is what ends it.
    await httpRequest(logging.url, '/slow?ms=60000', {
      timeoutMs: 100,
      headers: { 'x-request-id': 'abort-1' },
    }).catch(() => undefined);
    await expect.poll(() => accessLines(logging, 'abort-1').length, { timeout: HANG_DEADLINE_MS }).toBe(1);
    expect(accessLines(logging, 'abort-1')[0]).toMatchObject({
      url: '/slow?ms=60000',
      aborted: true,
      status: 499,
    });
  });

  it('never writes credentials, whatever the log level and outcome', async () => {
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
      await httpRequest(tracing.url, target, { headers: authorization });
    }
    // The same through a raw socket, with a malformed target and a reserved path.
    await rawRequest(
      tracing.url,
      rawGet('/health?access_token=SECRET-Q', 'proxy.test', ['Authorization: Bearer SECRET-TOKEN-123']),
    );
    await rawRequest(tracing.url, rawGet('/x?access_token=SECRET-Q', 'proxy.test', [], 'TRACE'));
    // The origin did receive them: the proxy forwards credentials, it just does not log them.
    expect(origin.requests.some((r) => r.headers.authorization === 'Bearer SECRET-TOKEN-123')).toBe(true);

    // Only this case uses this proxy: once it has exited, everything it wrote has arrived.
    await tracing.close();
    const text = tracing.logs.text;
    expect(tracing.logs.withMessage('request').length).toBeGreaterThanOrEqual(targets.length);
    for (const secret of SECRETS.filter((s) => s !== 'SECRET-ENC')) expect(text).not.toContain(secret);
    expect(text).toContain('access_token=[redacted]');
  });

  it('does not write a token whose parameter name is percent-encoded (access%5Ftoken)', async () => {
    // The API decodes `access%5Ftoken` to `access_token`: it is the same credential.
    await httpRequest(logging.url, '/users/me?access%5Ftoken=SECRET-ENC', {
      headers: { 'x-request-id': 'encoded-1' },
    });
    expect(origin.requests.at(-1)?.url).toBe('/users/me?access%5Ftoken=SECRET-ENC');
    await logging.logs.waitForRecord('request', (line) => line.reqId === 'encoded-1');
    expect(accessLines(logging, 'encoded-1')).toHaveLength(1);
    expect(logging.logs.text).not.toContain('SECRET-ENC');
  });
});
