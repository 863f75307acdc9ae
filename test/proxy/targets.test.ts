/**
 * The proxy has one destination. Whatever a client puts in the request line or the Host header
 * (absolute-form targets, CONNECT, another host) nothing goes anywhere but the configured upstream:
 * a second origin, named by those requests, must see no request and not even a connection.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { RawConnection, rawGet, rawRequest } from '../support/net.js';
import { HANG_DEADLINE_MS, WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';

describe.each(WORKER_MODES)('request targets ($name)', (mode) => {
  let origin: Origin;
  let other: Origin;
  let proxy: ServedProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    other = await startOrigin({ host: '127.0.0.3' });
    proxy = await startServeProxy(mode, { upstream: origin.url });
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

  const expectOtherUntouched = (): void => {
    expect(other.requests).toEqual([]);
    expect(other.connections).toBe(0);
  };

  it('forwards an absolute-form target to the configured upstream only, path and query kept', async () => {
    const response = await rawRequest(
      proxy.url,
      rawGet(`http://${other.host}/categories/MLA97994?attributes=id,name`, other.host),
    );
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body.toString()).id).toBe('MLA97994');
    expect(origin.requests.map((r) => r.url)).toEqual(['/categories/MLA97994?attributes=id,name']);
    expect(origin.requests[0]!.headers.host).toBe(origin.host);
    expectOtherUntouched();
  });

  it('forwards absolute-form targets with https, userinfo, no path or only a query to the upstream', async () => {
    const connection = await RawConnection.open(proxy.url);
    try {
      for (const target of [
        `https://${other.host}/items/MLA1`,
        `HTTP://${other.host}`,
        `http://user:pass@${other.host}/users/7`,
        `http://${other.host}?q=x`,
      ]) {
        await connection.send(rawGet(target, other.host));
        const response = await connection.readResponse();
        expect(response.status, target).toBeLessThan(500);
      }
    } finally {
      connection.close();
    }
    expect(origin.requests.map((r) => r.url)).toEqual(['/items/MLA1', '/', '/users/7', '/?q=x']);
    expectOtherUntouched();
  });

  it('refuses CONNECT with 405 and opens no tunnel', async () => {
    const connection = await RawConnection.open(proxy.url);
    try {
      await connection.send(`CONNECT ${other.host} HTTP/1.1\r\nHost: ${other.host}\r\n\r\n`);
      const response = await connection.readResponse();
      expect(response.status).toBe(405);
      expect(JSON.parse(response.body.toString())).toMatchObject({
        status: 405,
        error: 'method_not_allowed',
        cause: [],
      });
      // The proxy closes the connection: no tunnel follows the refusal. (Bytes sent after the refusal
      // are covered in connect.test.ts, which runs the proxy as a child process.)
      expect(await connection.waitForClose(HANG_DEADLINE_MS)).toBe(true);
    } finally {
      connection.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(origin.requests).toEqual([]);
    expectOtherUntouched();
  });

  it('refuses CONNECT to the upstream itself too', async () => {
    const response = await rawRequest(
      proxy.url,
      `CONNECT ${origin.host} HTTP/1.1\r\nHost: ${origin.host}\r\n\r\n`,
    );
    expect(response.status).toBe(405);
    expect(origin.requests).toEqual([]);
  });

  it('sends a request with another Host header to the upstream, that Host only as X-Forwarded-Host', async () => {
    const response = await rawRequest(proxy.url, rawGet('/items/MLA2', other.host));
    expect(response.status).toBe(200);
    expect(origin.requests[0]!.url).toBe('/items/MLA2');
    expect(origin.requests[0]!.headers.host).toBe(origin.host);
    expect(origin.requests[0]!.headers['x-forwarded-host']).toBe(other.host);
    expectOtherUntouched();
  });

  it('refuses TRACE with 405 without forwarding it', async () => {
    const response = await rawRequest(proxy.url, rawGet('/items/MLA1', 'proxy.test', [], 'TRACE'));
    expect(response.status).toBe(405);
    expect(response.headers.allow).toContain('GET');
    expect(origin.requests).toEqual([]);
  });

  it('refuses a method it does not forward (PROPFIND) with 405', async () => {
    const response = await rawRequest(proxy.url, rawGet('/items/MLA1', 'proxy.test', [], 'PROPFIND'));
    expect(response.status).toBe(405);
    expect(origin.requests).toEqual([]);
  });

  it('refuses ambiguous framing (Content-Length with Transfer-Encoding, two Content-Lengths): nothing smuggled', async () => {
    for (const request of [
      'POST /echo HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: proxy.test\r\n\r\n',
      'POST /echo HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: proxy.test\r\n\r\n',
    ]) {
      const response = await rawRequest(proxy.url, request);
      expect(response.status).toBe(400);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(origin.requests).toEqual([]);
  });

  it('answers 400 to an HTTP/1.1 request without Host, and serves HTTP/1.0 clients', async () => {
    const noHost = await rawRequest(proxy.url, 'GET /items/MLA1 HTTP/1.1\r\n\r\n');
    expect(noHost.status).toBe(400);
    expect(origin.requests).toEqual([]);
    const old = await rawRequest(proxy.url, 'GET /items/MLA1 HTTP/1.0\r\n\r\n');
    expect(old.status).toBe(200);
    expect(JSON.parse(old.body.toString()).id).toBe('MLA1');
    expect(origin.requests.map((r) => r.url)).toEqual(['/items/MLA1']);
  });

  it('answers 400 to a target that is neither a path nor an absolute URL', async () => {
    for (const target of ['items/MLA1', `ftp://${other.host}/x`]) {
      const response = await rawRequest(proxy.url, rawGet(target, 'proxy.test')).catch(() => undefined);
      // Node's parser may refuse first (400 and close); either way nothing is forwarded.
      if (response) expect(response.status, target).toBe(400);
    }
    expect(origin.requests).toEqual([]);
    expectOtherUntouched();
  });
});
