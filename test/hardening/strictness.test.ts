/**
 * Where nginx is stricter than Node's defaults, the proxy is at least as strict: header names with
 * underscores are dropped (unless --underscores-in-headers), a request with more header fields than
 * --max-header-fields gets 431 instead of being cut short, Node's own refusals (a missing Host, an
 * unknown Expect) answer in the API's error shape and nothing pipelined behind them is forwarded,
 * and a Content-Type Fastify cannot parse is the upstream's to judge.
 *
 * The real `serve`, with one process and with the default worker count.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { rawGet } from '../support/net.js';
import { WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';
import { exchange, expectApiError, settle } from './helpers.js';

const MAX_FIELDS = 30;

describe.each(WORKER_MODES)('stricter than Node by default ($name)', (mode) => {
  let origin: Origin;
  let proxy: ServedProxy;
  let permissive: ServedProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    [proxy, permissive] = await Promise.all([
      startServeProxy(mode, { upstream: origin.url, maxHeaderFields: MAX_FIELDS }),
      startServeProxy(mode, { upstream: origin.url, underscoresInHeaders: 'on' }),
    ]);
  });
  afterAll(async () => {
    await proxy?.close();
    await permissive?.close();
    await origin?.close();
  });
  beforeEach(() => origin.reset());

  describe('header names with underscores', () => {
    const spoofing = ['X_Forwarded_For: 6.6.6.6', 'Transfer_Encoding: chunked', 'X_Client: a'];

    it('are dropped by default, and the request is forwarded without them', async () => {
      const { responses } = await exchange(proxy.url, rawGet('/echo', 'p', [...spoofing, 'X-Kept: yes']));
      expect(responses[0]!.status).toBe(200);
      const seen = origin.requests[0]!.rawHeaders.filter((_, i) => i % 2 === 0);
      expect(seen.filter((name) => name.includes('_'))).toEqual([]);
      expect(origin.requests[0]!.headers['x-kept']).toBe('yes');
      expect(origin.requests[0]!.headers['x-forwarded-for']).toBe('127.0.0.1');
    });

    it('are passed on with --underscores-in-headers on', async () => {
      const { responses } = await exchange(permissive.url, rawGet('/echo', 'p', spoofing));
      expect(responses[0]!.status).toBe(200);
      const seen = origin.requests[0]!.rawHeaders.filter((_, i) => i % 2 === 0);
      expect(seen.filter((name) => name.includes('_'))).toEqual([
        'X_Forwarded_For',
        'Transfer_Encoding',
        'X_Client',
      ]);
    });
  });

  describe('--max-header-fields', () => {
    const fields = (count: number) => Array.from({ length: count }, (_, i) => `X-F${i}: ${i}`);

    it('answers 431 to one field too many, and closes without forwarding what follows', async () => {
      // Host and Content-Length are fields too: MAX_FIELDS - 1 extra ones make MAX_FIELDS + 1.
      const request = rawGet('/echo', 'p', [...fields(MAX_FIELDS - 1), 'Content-Length: 2'], 'POST');
      const { responses, closed } = await exchange(proxy.url, `${request}hi${rawGet('/items/MLA1', 'p')}`);
      expect(responses).toHaveLength(1);
      expectApiError(responses[0], 431);
      expect(responses[0]!.headers['x-request-id']).toBeDefined();
      expect(closed).toBe(true);
      await settle();
      expect(origin.requests).toEqual([]);
    });

    it('forwards a request with exactly the limit, body and all', async () => {
      const request = rawGet('/echo', 'p', [...fields(MAX_FIELDS - 2), 'Content-Length: 2'], 'POST');
      const { responses } = await exchange(proxy.url, `${request}hi`);
      expect(responses[0]!.status).toBe(200);
      expect(JSON.parse(responses[0]!.body.toString())).toMatchObject({ bodyLength: 2 });
    });

    it('never truncates past Node’s own count (1,005 fields): 431, nothing forwarded', async () => {
      const request = rawGet('/echo', 'p', [...fields(1003), 'Content-Length: 2'], 'POST');
      const { responses, closed } = await exchange(
        permissive.url,
        `${request}hi${rawGet('/items/MLA1', 'p')}`,
      );
      expect(responses).toHaveLength(1);
      expectApiError(responses[0], 431);
      expect(closed).toBe(true);
      await settle();
      expect(origin.requests).toEqual([]);
    });
  });

  describe("Node's own refusals", () => {
    it('answers a request without Host with 400 in the API shape; one pipelined behind it never goes upstream', async () => {
      const { responses, closed } = await exchange(
        proxy.url,
        `GET /items/MLA1 HTTP/1.1\r\n\r\n${rawGet('/items/MLA2', 'p')}`,
      );
      expect(responses).toHaveLength(1);
      expectApiError(responses[0], 400);
      expect(responses[0]!.headers['x-request-id']).toBeDefined();
      expect(closed).toBe(true);
      await settle();
      expect(origin.requests).toEqual([]);
    });

    it('still serves an HTTP/1.0 request without Host', async () => {
      const { responses } = await exchange(proxy.url, 'GET /items/MLA1 HTTP/1.0\r\n\r\n');
      expect(responses[0]!.status).toBe(200);
      expect(origin.requests.map((request) => request.url)).toEqual(['/items/MLA1']);
    });

    it('answers an unknown Expect with 417 in the API shape; one pipelined behind it never goes upstream', async () => {
      const { responses, closed } = await exchange(
        proxy.url,
        `${rawGet('/items/MLA1', 'p', ['Expect: something-else'])}${rawGet('/items/MLA2', 'p')}`,
      );
      expect(responses).toHaveLength(1);
      expectApiError(responses[0], 417);
      expect(responses[0]!.headers['x-request-id']).toBeDefined();
      expect(closed).toBe(true);
      await settle();
      expect(origin.requests).toEqual([]);
    });
  });

  it('forwards a Content-Type without a subtype (or with two) instead of answering 415', async () => {
    for (const type of ['json', 'a/b/c', 'text/']) {
      const { responses } = await exchange(
        proxy.url,
        `${rawGet('/echo', 'p', [`Content-Type: ${type}`, 'Content-Length: 2'], 'POST')}hi`,
      );
      expect(responses[0]!.status, type).toBe(200);
      expect(JSON.parse(responses[0]!.body.toString())).toMatchObject({ bodyLength: 2 });
    }
    expect(origin.requests.map((request) => request.headers['content-type'])).toEqual([
      'json',
      'a/b/c',
      'text/',
    ]);
  });
});
