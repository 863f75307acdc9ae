/**
 * What comes back from the upstream is passed on as it is (redirects, compressed bodies), and when
 * the upstream fails the client gets a clear answer quickly: 502/504 in ML's error shape, or a cut
 * connection once the response has started. The proxy keeps serving afterwards.
 */
import { get } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closedPort, GZIP_BODY, type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, RawConnection, rawGet } from '../support/net.js';
import { WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';

const API_ERROR_KEYS = ['cause', 'error', 'message', 'status'];

/** Resolves with how the response ended: 'complete', or 'cut' when the connection dropped mid-body. */
/**
 * Waits longer than this mean a hang. The origin's slow answers take twice as long, so a bound of
 * HANG_MS still tells "the proxy gave up" from "the origin answered", however busy the machine.
 */
const HANG_MS = 30_000;
const ORIGIN_SLOW_MS = 2 * HANG_MS;
/** --upstream-timeout here: far above an origin's 50 ms answer, far below ORIGIN_SLOW_MS. */
const UPSTREAM_TIMEOUT_MS = 2000;

function download(
  url: string,
  target: string,
): Promise<{ status: number; bytes: number; end: 'complete' | 'cut'; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = get(new URL(target, url), { agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      res.on('error', () => undefined);
      res.once('close', () => {
        resolve({
          status: res.statusCode ?? 0,
          bytes,
          end: res.complete ? 'complete' : 'cut',
          ms: performance.now() - started,
        });
      });
    });
    req.once('error', reject);
    req.setTimeout(HANG_MS, () => req.destroy(new Error('client gave up: the proxy hung')));
  });
}

describe.each(WORKER_MODES)('upstream responses ($name)', (mode) => {
  let origin: Origin;
  let proxy: ServedProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    // bodyBuffer 0: every body streams, which is what the upload cases here are about.
    proxy = await startServeProxy(mode, {
      upstream: origin.url,
      upstreamTimeout: UPSTREAM_TIMEOUT_MS,
      bodyBuffer: 0,
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });
  beforeEach(() => origin.reset());

  it('does not follow a redirect: the 302 and its Location come back', async () => {
    const response = await httpRequest(
      proxy.url,
      '/redirect?to=https%3A%2F%2Fapi.mercadolibre.com%2Fitems%2FMLA1',
    );
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe('https://api.mercadolibre.com/items/MLA1');
    const relative = await httpRequest(proxy.url, '/redirect');
    expect(relative.status).toBe(302);
    expect(relative.headers.location).toBe('/categories/MLA97994');
    expect(origin.requests.map((r) => r.url)).toEqual([
      '/redirect?to=https%3A%2F%2Fapi.mercadolibre.com%2Fitems%2FMLA1',
      '/redirect',
    ]);
  });

  it('passes a gzip body byte for byte with its content-encoding', async () => {
    const response = await httpRequest(proxy.url, '/gzip', { headers: { 'accept-encoding': 'gzip' } });
    expect(response.status).toBe(200);
    expect(response.headers['content-encoding']).toBe('gzip');
    expect(response.headers['content-length']).toBe(String(GZIP_BODY.length));
    expect(response.headers.vary).toBe('Accept-Encoding');
    expect(response.body.equals(GZIP_BODY)).toBe(true);
    expect(origin.requests[0]!.headers['accept-encoding']).toBe('gzip');
  });

  it('answers 502 in the API error shape when the upstream resets the connection', async () => {
    const response = await httpRequest(proxy.url, '/reset', { headers: { 'x-request-id': 'reset-1' } });
    expect(response.status).toBe(502);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.headers['x-request-id']).toBe('reset-1');
    const body = response.json<Record<string, unknown>>();
    expect(Object.keys(body).sort()).toEqual(API_ERROR_KEYS);
    expect(body).toMatchObject({ status: 502, error: 'bad_gateway', cause: [] });
    expect(typeof body.message).toBe('string');
    expect((await httpRequest(proxy.url, '/categories/MLA97994')).status).toBe(200);
  });

  it('cuts the client connection when the upstream resets mid-body (no hang, no fake success)', async () => {
    const result = await download(proxy.url, '/reset-mid-body');
    expect(result.status).toBe(200);
    expect(result.end).toBe('cut');
    expect(result.bytes).toBeGreaterThan(0);
    expect(result.bytes).toBeLessThan(100_000);
    expect(result.ms).toBeLessThan(HANG_MS);
    expect((await httpRequest(proxy.url, '/users/5')).status).toBe(200);
  });

  it('answers 504 when the upstream is slower than --upstream-timeout', async () => {
    const started = performance.now();
    const response = await httpRequest(proxy.url, `/slow?ms=${ORIGIN_SLOW_MS}`, { timeoutMs: HANG_MS });
    const elapsed = performance.now() - started;
    expect(response.status).toBe(504);
    expect(response.json()).toMatchObject({ status: 504, error: 'gateway_timeout', cause: [] });
    // Not before the configured timeout (timers may fire a little early, never much).
    expect(elapsed).toBeGreaterThanOrEqual(UPSTREAM_TIMEOUT_MS - 20);
    // The upstream request was given up, not left running.
    await expect.poll(() => origin.requests[0]?.aborted, { timeout: HANG_MS }).toBe(true);
    expect((await httpRequest(proxy.url, '/categories/MLA97994')).status).toBe(200);
  });

  it('forwards a response that is slow but within the timeout', async () => {
    const response = await httpRequest(proxy.url, '/slow?ms=50');
    expect(response.status).toBe(200);
  });

  it('cuts the client connection when the body stalls longer than the timeout', async () => {
    const result = await download(proxy.url, `/slow-body?ms=${ORIGIN_SLOW_MS}`);
    expect(result.status).toBe(200);
    expect(result.end).toBe('cut');
    expect(result.ms).toBeLessThan(HANG_MS);
  });

  it('gives up the upstream request when the client goes away', async () => {
    const connection = await RawConnection.open(proxy.url);
    await connection.send(rawGet(`/slow?ms=${ORIGIN_SLOW_MS}`, 'proxy.test'));
    await origin.waitForRequests(1);
    connection.close();
    await expect.poll(() => origin.requests[0]?.aborted, { timeout: HANG_MS }).toBe(true);
    expect(origin.requests[0]?.completed).toBe(false);
    expect((await httpRequest(proxy.url, '/items/MLA3')).status).toBe(200);
  });

  it('answers 502 to concurrent requests while the upstream resets, then recovers', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => httpRequest(proxy.url, i % 2 === 0 ? '/reset' : '/items/MLA9')),
    );
    expect(results.map((r) => r.status)).toEqual(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? 502 : 200)),
    );
  });

  // The rest of such a body is never read (undici stops sending it), so nothing after it on the
  // connection would be either: the connection must close rather than wait for a next request.
  for (const framing of ['content-length', 'chunked'] as const) {
    for (const [target, status] of [
      ['/early', 200],
      ['/reset-mid-upload', 502],
    ] as const) {
      it(`closes the client connection after a ${status} sent before the ${framing} body was in (${target})`, async () => {
        const part = 'a'.repeat(1000);
        const connection = await RawConnection.open(proxy.url);
        try {
          await connection.send(
            framing === 'chunked'
              ? `POST ${target} HTTP/1.1\r\nHost: proxy.test\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n${part}\r\n`
              : `POST ${target} HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 300000\r\n\r\n${part}`,
          );
          const response = await connection.readResponse();
          expect(response.status).toBe(status);
          expect(response.headers.connection).toBe('close');
          // The client finishes its body and asks again on the same connection.
          const rest = framing === 'chunked' ? '0\r\n\r\n' : 'a'.repeat(300000 - part.length);
          await connection.send(rest + rawGet('/items/MLA4', 'proxy.test')).catch(() => undefined);
          expect(await connection.waitForClose(HANG_MS)).toBe(true);
        } finally {
          connection.close();
        }
        expect(origin.requests.map((request) => request.url)).toEqual([target]);
        expect((await httpRequest(proxy.url, '/items/MLA4')).status).toBe(200);
      });
    }
  }
});

describe.each(WORKER_MODES)('upstream down ($name)', (mode) => {
  let proxy: ServedProxy;

  beforeAll(async () => {
    proxy = await startServeProxy(mode, { upstream: `http://127.0.0.1:${await closedPort()}` });
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('answers 502 in the API error shape when nothing listens upstream', async () => {
    const response = await httpRequest(proxy.url, '/categories/MLA97994', { timeoutMs: HANG_MS });
    expect(response.status).toBe(502);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.headers['x-request-id']).toBeDefined();
    const body = response.json<Record<string, unknown>>();
    expect(Object.keys(body).sort()).toEqual(API_ERROR_KEYS);
    expect(body).toMatchObject({ status: 502, error: 'bad_gateway', cause: [] });
    expect(body.message).toMatch(/refused/i);
  });

  it('answers 502 for a request with a body too, and keeps serving', async () => {
    for (let i = 0; i < 3; i++) {
      const response = await httpRequest(proxy.url, '/items', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': '2' },
        body: '{}',
      });
      expect(response.status).toBe(502);
    }
    expect((await httpRequest(proxy.url, '/health')).status).toBe(200);
  });

  it('logs the failure without breaking the access log', async () => {
    // A worker's lines reach the test through a pipe, after the answers that caused them.
    const failure = await proxy.logs.waitForRecord('upstream request failed');
    expect(failure).toMatchObject({ kind: 'refused', status: 502 });
    await proxy.logs.waitForRecord('request', (line) => line.status === 502);
  });
});
