/**
 * Requests and responses pass through unchanged: methods, raw targets, bodies, statuses, headers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CATEGORY_MLA97994, type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, RawConnection, rawGet } from '../support/net.js';
import { WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';

interface EchoBody {
  method: string;
  url: string;
  headers: Record<string, string>;
  bodyLength: number;
  bodySha256: string;
}

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

describe.each(WORKER_MODES)('forwarding ($name)', (mode) => {
  let origin: Origin;
  let proxy: ServedProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startServeProxy(mode, { upstream: origin.url });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });
  beforeEach(() => origin.reset());

  it('returns what the origin returns for a MercadoLibre resource', async () => {
    const response = await httpRequest(proxy.url, '/categories/MLA97994');
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/json;charset=UTF-8');
    expect(response.headers['cache-control']).toBe('max-age=300');
    expect(response.json()).toEqual(CATEGORY_MLA97994);
    expect(response.headers['content-length']).toBe(String(response.body.length));
    expect(origin.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /categories/MLA97994']);
  });

  it('passes an origin 404 through with its body', async () => {
    const response = await httpRequest(proxy.url, '/categories/MLA1');
    expect(response.status).toBe(404);
    expect(response.json()).toEqual({
      message: 'Category not found',
      error: 'not_found',
      status: 404,
      cause: [],
    });
  });

  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    it(`forwards ${method} with its query and body`, async () => {
      const body = Buffer.from(JSON.stringify({ title: `${method} body`, price: 10.5, emoji: '🎒' }));
      const response = await httpRequest(proxy.url, '/echo?site=MLA&ids=MLA1,MLA2', {
        method,
        headers: {
          'content-type': 'application/json',
          'content-length': String(body.length),
          'x-client-id': 'abc',
        },
        body,
      });
      expect(response.status).toBe(200);
      const echoed = response.json<EchoBody>();
      expect(echoed.method).toBe(method);
      expect(echoed.url).toBe('/echo?site=MLA&ids=MLA1,MLA2');
      expect(echoed.bodyLength).toBe(body.length);
      expect(echoed.bodySha256).toBe(sha256(body));
      expect(echoed.headers['content-type']).toBe('application/json');
      expect(echoed.headers['x-client-id']).toBe('abc');
    });
  }

  it('passes the request target byte for byte (percent-encoding, dot segments, double slashes)', async () => {
    const targets = [
      '/sites/MLA/search?q=caf%C3%A9&x=%2F',
      '/sites/MLA/search?q=mochila+negra&limit=2&offset=%30',
      '/items/MLA%31%32?attributes=id,price&x=%2e%2E&empty=&flag',
      '/a//b/./c/../d%2Fe?%26=%3D#',
      '/items?ids=MLA1%2CMLA2',
    ];
    const connection = await RawConnection.open(proxy.url);
    try {
      for (const target of targets) {
        await connection.send(rawGet(target, 'proxy.test'));
        const response = await connection.readResponse();
        expect(response.status).not.toBe(400);
      }
    } finally {
      connection.close();
    }
    expect(origin.requests.map((r) => r.url)).toEqual(targets);
  });

  it('echoes a search query the way the API decodes it', async () => {
    const response = await httpRequest(proxy.url, '/sites/MLA/search?q=caf%C3%A9&x=%2F');
    const body = response.json<{ query: string; raw_query: string; site_id: string }>();
    expect(body.site_id).toBe('MLA');
    expect(body.query).toBe('café');
    expect(body.raw_query).toBe('q=caf%C3%A9&x=%2F');
  });

  it('answers HEAD with the headers of GET and no body', async () => {
    const connection = await RawConnection.open(proxy.url);
    try {
      await connection.send(rawGet('/categories/MLA97994', 'proxy.test', [], 'HEAD'));
      const head = await connection.readResponse({ head: true });
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe(
        String(Buffer.byteLength(JSON.stringify(CATEGORY_MLA97994))),
      );
      // Any body bytes after a HEAD response would be parsed as the next response and break it.
      await connection.send(rawGet('/users/42', 'proxy.test'));
      const next = await connection.readResponse();
      expect(next.status).toBe(200);
      expect(JSON.parse(next.body.toString()).nickname).toBe('TESTUSER42');
    } finally {
      connection.close();
    }
    expect(origin.requests.map((r) => r.method)).toEqual(['HEAD', 'GET']);
  });

  it('sends no body with 204 and 304, and the connection stays usable', async () => {
    const connection = await RawConnection.open(proxy.url);
    try {
      await connection.send(rawGet('/status/204', 'proxy.test'));
      const noContent = await connection.readResponse();
      await connection.send(rawGet('/status/304', 'proxy.test', ['If-None-Match: "v1"']));
      const notModified = await connection.readResponse();
      await connection.send(rawGet('/status/200', 'proxy.test'));
      const ok = await connection.readResponse();
      expect(noContent.status).toBe(204);
      expect(noContent.headers['x-origin-status']).toBe('204');
      expect(noContent.headers['content-length']).toBeUndefined();
      expect(noContent.headers['transfer-encoding']).toBeUndefined();
      expect(notModified.status).toBe(304);
      expect(notModified.headers.etag).toBe('"v1"');
      expect(ok.status).toBe(200);
      expect(connection.pending.length).toBe(0);
    } finally {
      connection.close();
    }
    expect(origin.requests[1]?.headers['if-none-match']).toBe('"v1"');
  });

  for (const status of [201, 400, 401, 403, 404, 409, 429, 500, 503]) {
    it(`passes status ${status} and the origin's body`, async () => {
      const response = await httpRequest(proxy.url, `/status/${status}`);
      expect(response.status).toBe(status);
      expect(response.headers['x-origin-status']).toBe(String(status));
      expect(response.json()).toEqual({
        message: `You asked for ${status}`,
        error: `status_${status}`,
        status,
        cause: [],
      });
    });
  }

  it('keeps the reason phrase, repeated fields and header values as sent', async () => {
    const connection = await RawConnection.open(proxy.url);
    let response: Awaited<ReturnType<RawConnection['readResponse']>>;
    try {
      await connection.send(rawGet('/headers', 'proxy.test'));
      response = await connection.readResponse();
    } finally {
      connection.close();
    }
    expect(response.status).toBe(201);
    expect(response.statusText).toBe('Created Just Fine');
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i < response.rawHeaders.length; i += 2) {
      pairs.push([response.rawHeaders[i]!.toLowerCase(), response.rawHeaders[i + 1]!]);
    }
    expect(pairs.filter(([name]) => name === 'set-cookie').map(([, value]) => value)).toEqual([
      'a=1; Path=/',
      'b=2; Path=/; HttpOnly',
    ]);
    expect(pairs.filter(([name]) => name === 'x-repeated').map(([, value]) => value)).toEqual(['one', 'two']);
    expect(response.headers['x-mixedcase-header']).toBe('Value With Spaces');
    expect(response.headers.etag).toBe('"v1"');
    expect(response.body.toString()).toBe('{}');
  });

  it('round-trips a binary body with every byte value', async () => {
    const body = Buffer.concat([
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      randomBytes(1024 * 1024),
    ]);
    const response = await httpRequest(proxy.url, '/mirror', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
      body,
    });
    expect(response.status).toBe(200);
    expect(response.body.length).toBe(body.length);
    expect(response.body.equals(body)).toBe(true);
  });

  it('streams a chunked request body (no content-length) to the origin', async () => {
    const parts = [randomBytes(10), randomBytes(70_000), randomBytes(1), randomBytes(300_000)];
    async function* chunks() {
      for (const part of parts) {
        yield part;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    const response = await httpRequest(proxy.url, '/echo', { method: 'PUT', body: chunks() });
    const echoed = response.json<EchoBody>();
    const all = Buffer.concat(parts);
    expect(echoed.bodyLength).toBe(all.length);
    expect(echoed.bodySha256).toBe(sha256(all));
    expect(origin.requests[0]?.headers['content-length']).toBeUndefined();
    expect(origin.requests[0]?.headers['transfer-encoding']).toBe('chunked');
  });

  it('forwards a POST with an empty body', async () => {
    const response = await httpRequest(proxy.url, '/echo', {
      method: 'POST',
      headers: { 'content-length': '0' },
      body: '',
    });
    expect(response.json<EchoBody>().bodyLength).toBe(0);
    expect(origin.requests[0]?.headers['content-length']).toBe('0');
  });

  it('handles Expect: 100-continue from the client without sending Expect upstream', async () => {
    const body = Buffer.from('{"quantity":3}');
    const connection = await RawConnection.open(proxy.url);
    try {
      await connection.send(
        [
          'POST /echo HTTP/1.1',
          'Host: proxy.test',
          'Content-Type: application/json',
          `Content-Length: ${body.length}`,
          'Expect: 100-continue',
          '',
          '',
        ].join('\r\n'),
      );
      // The body goes out only after the interim response, as a real client would do it.
      const deadline = Date.now() + 2000;
      while (!connection.pending.toString('latin1').startsWith('HTTP/1.1 100') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(connection.pending.toString('latin1')).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);
      await connection.send(body);
      const response = await connection.readResponse();
      expect(response.status).toBe(200);
      expect(JSON.parse(response.body.toString()).bodySha256).toBe(sha256(body));
    } finally {
      connection.close();
    }
    expect(origin.requests[0]?.headers.expect).toBeUndefined();
  });

  it('serves many requests over one client connection (keep-alive)', async () => {
    const connection = await RawConnection.open(proxy.url);
    try {
      for (let i = 0; i < 20; i++) {
        await connection.send(rawGet(`/items/MLA${1000 + i}`, 'proxy.test'));
        const response = await connection.readResponse();
        expect(JSON.parse(response.body.toString()).id).toBe(`MLA${1000 + i}`);
      }
      expect(connection.closed).toBe(false);
    } finally {
      connection.close();
    }
  });

  it('answers pipelined client requests in order', async () => {
    const connection = await RawConnection.open(proxy.url);
    try {
      await connection.send(
        rawGet('/slow?ms=100', 'proxy.test') +
          rawGet('/items/MLA7', 'proxy.test') +
          rawGet('/users/9', 'proxy.test'),
      );
      const first = await connection.readResponse();
      const second = await connection.readResponse();
      const third = await connection.readResponse();
      expect(JSON.parse(first.body.toString())).toEqual({ slept: 100 });
      expect(JSON.parse(second.body.toString()).id).toBe('MLA7');
      expect(JSON.parse(third.body.toString()).id).toBe(9);
    } finally {
      connection.close();
    }
  });
});
