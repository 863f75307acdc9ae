/**
 * Header rewriting: hop-by-hop fields removed both ways, Host and X-Forwarded-* set by the proxy
 * (a client's own copies, and its Forwarded and X-Real-IP, believed only from --trust-proxy peers),
 * X-Request-Id end to end.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, RawConnection, rawGet, rawRequest } from '../support/net.js';
import { WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe.each(WORKER_MODES)('headers through an untrusting proxy ($name)', (mode) => {
  let origin: Origin;
  let proxy: ServedProxy;
  let proxyHost: string;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startServeProxy(mode, { upstream: origin.url });
    proxyHost = new URL(proxy.url).host;
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });
  beforeEach(() => origin.reset());

  it('removes hop-by-hop request fields and the fields named in Connection', async () => {
    const response = await rawRequest(
      proxy.url,
      rawGet('/echo', proxyHost, [
        'Connection: keep-alive, X-Hop-Secret, x-other-hop',
        'Keep-Alive: timeout=99',
        'X-Hop-Secret: must-not-pass',
        'X-Other-Hop: must-not-pass-either',
        'Proxy-Connection: keep-alive',
        'Proxy-Authorization: Basic dXNlcjpwYXNz',
        'TE: trailers',
        'Trailer: X-Checksum',
        'X-End-To-End: kept',
        'Authorization: Bearer APP_USR-end-to-end',
      ]),
    );
    expect(response.status).toBe(200);
    const received = origin.requests[0]!;
    const names = Object.keys(received.headers);
    for (const name of [
      'x-hop-secret',
      'x-other-hop',
      'keep-alive',
      'proxy-connection',
      'proxy-authorization',
      'te',
      'trailer',
    ]) {
      expect(names, name).not.toContain(name);
    }
    // The proxy's own connection to the origin may say keep-alive, never the client's options.
    expect(received.headers.connection ?? 'keep-alive').toBe('keep-alive');
    expect(received.headers['x-end-to-end']).toBe('kept');
    expect(received.headers.authorization).toBe('Bearer APP_USR-end-to-end');
  });

  it('forwards a WebSocket upgrade request as a plain request, without Upgrade', async () => {
    const response = await rawRequest(
      proxy.url,
      rawGet('/echo', proxyHost, [
        'Connection: Upgrade',
        'Upgrade: websocket',
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ]),
    );
    expect(response.status).toBe(200);
    expect(origin.requests[0]!.headers.upgrade).toBeUndefined();
    expect(origin.requests[0]!.headers.connection ?? 'keep-alive').toBe('keep-alive');
  });

  it('removes a Connection-named field even when Connection is sent twice', async () => {
    await rawRequest(
      proxy.url,
      rawGet('/echo', proxyHost, [
        'Connection: keep-alive',
        'Connection: X-Second',
        'X-Second: must-not-pass',
      ]),
    );
    expect(origin.requests[0]!.headers['x-second']).toBeUndefined();
  });

  it('removes hop-by-hop response fields and the fields the origin named in Connection', async () => {
    const response = await rawRequest(proxy.url, rawGet('/hop', proxyHost));
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('hop');
    expect(response.headers['x-custom']).toBeUndefined();
    expect(response.headers['proxy-connection']).toBeUndefined();
    expect(response.headers['proxy-authenticate']).toBeUndefined();
    // Node adds its own Keep-Alive to the client connection; the origin's value must not leak through.
    expect(response.headers['keep-alive'] ?? '').not.toContain('max=77');
    expect(response.headers.connection ?? '').not.toMatch(/x-custom/i);
    expect(response.headers['x-end-to-end']).toBe('kept');
  });

  it('sets Host to the upstream and X-Forwarded-* from what the proxy saw', async () => {
    await rawRequest(proxy.url, rawGet('/echo', 'meli-proxy.internal:8080'));
    const received = origin.requests[0]!;
    expect(received.headers.host).toBe(origin.host);
    expect(received.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(received.headers['x-forwarded-proto']).toBe('http');
    expect(received.headers['x-forwarded-host']).toBe('meli-proxy.internal:8080');
  });

  it('records the peer address a client connects from (127.0.0.2)', async () => {
    await rawRequest(proxy.url, rawGet('/echo', proxyHost), { localAddress: '127.0.0.2' });
    expect(origin.requests[0]!.headers['x-forwarded-for']).toBe('127.0.0.2');
  });

  it('drops X-Forwarded-* forged by an untrusted client', async () => {
    await rawRequest(
      proxy.url,
      rawGet('/echo', proxyHost, [
        'X-Forwarded-For: 152.152.152.152',
        'X-Forwarded-For: 10.0.0.1',
        'X-Forwarded-Proto: https',
        'X-Forwarded-Host: evil.example',
      ]),
    );
    const received = origin.requests[0]!;
    expect(received.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(received.headers['x-forwarded-proto']).toBe('http');
    expect(received.headers['x-forwarded-host']).toBe(proxyHost);
    expect(JSON.stringify(received.rawHeaders)).not.toContain('152.152.152.152');
    expect(JSON.stringify(received.rawHeaders)).not.toContain('evil.example');
  });

  it('drops Forwarded and X-Real-IP sent by an untrusted client', async () => {
    await rawRequest(
      proxy.url,
      rawGet('/echo', proxyHost, [
        'Forwarded: for=152.152.152.152;proto=https',
        'Forwarded: for=10.0.0.1',
        'X-Real-IP: 152.152.152.153',
        'X-End-To-End: kept',
      ]),
    );
    const received = origin.requests[0]!;
    expect(received.headers.forwarded).toBeUndefined();
    expect(received.headers['x-real-ip']).toBeUndefined();
    expect(JSON.stringify(received.rawHeaders)).not.toMatch(/152\.152\.152|10\.0\.0\.1/);
    expect(received.headers['x-end-to-end']).toBe('kept');
  });

  it('keeps a sane X-Request-Id and returns it', async () => {
    const response = await httpRequest(proxy.url, '/categories/MLA97994', {
      headers: { 'x-request-id': 'caller-42.abc' },
    });
    expect(response.headers['x-request-id']).toBe('caller-42.abc');
    expect(origin.requests[0]!.headers['x-request-id']).toBe('caller-42.abc');
  });

  it('generates an X-Request-Id when none is sent, the same for origin and client', async () => {
    const response = await httpRequest(proxy.url, '/categories/MLA97994');
    const id = response.headers['x-request-id'];
    expect(id).toMatch(UUID);
    expect(origin.requests[0]!.headers['x-request-id']).toBe(id);
  });

  it('replaces an X-Request-Id that is not sane', async () => {
    for (const bad of ['has spaces in it', 'x'.repeat(200), '<script>', 'a;b']) {
      origin.reset();
      const response = await httpRequest(proxy.url, '/items/MLA1', { headers: { 'x-request-id': bad } });
      expect(response.headers['x-request-id'], bad).toMatch(UUID);
      expect(origin.requests[0]!.headers['x-request-id']).toBe(response.headers['x-request-id']);
    }
  });

  it("returns the origin's own request id as x-upstream-request-id", async () => {
    const response = await httpRequest(proxy.url, '/users/1', { headers: { 'x-request-id': 'mine-1' } });
    expect(response.headers['x-request-id']).toBe('mine-1');
    expect(response.headers['x-upstream-request-id']).toMatch(/^origin-\d+$/);
  });

  it('gives each request on one connection its own id', async () => {
    const connection = await RawConnection.open(proxy.url);
    const ids: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        await connection.send(rawGet('/items/MLA1', proxyHost));
        ids.push((await connection.readResponse()).headers['x-request-id']!);
      }
    } finally {
      connection.close();
    }
    expect(new Set(ids).size).toBe(3);
    expect(origin.requests.map((r) => r.headers['x-request-id'])).toEqual(ids);
  });
});

describe.each(WORKER_MODES)('headers through a proxy that trusts 127.0.0.1 ($name)', (mode) => {
  let origin: Origin;
  let proxy: ServedProxy;
  let proxyHost: string;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startServeProxy(mode, { upstream: origin.url, trustProxy: '127.0.0.1' });
    proxyHost = new URL(proxy.url).host;
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });
  beforeEach(() => origin.reset());

  it('keeps X-Forwarded-For from a trusted peer and appends the peer', async () => {
    await rawRequest(
      proxy.url,
      rawGet('/echo', proxyHost, [
        'X-Forwarded-For: 152.152.152.152, 10.1.2.3',
        'X-Forwarded-Proto: https',
        'X-Forwarded-Host: api.example.com',
      ]),
    );
    const received = origin.requests[0]!;
    expect(received.headers['x-forwarded-for']).toBe('152.152.152.152, 10.1.2.3, 127.0.0.1');
    expect(received.headers['x-forwarded-proto']).toBe('https');
    expect(received.headers['x-forwarded-host']).toBe('api.example.com');
  });

  it('passes Forwarded and X-Real-IP from a trusted peer on as they came', async () => {
    await rawRequest(
      proxy.url,
      rawGet('/echo', proxyHost, [
        'Forwarded: for=152.152.152.152;proto=https',
        'Forwarded: for=10.1.2.3',
        'X-Real-IP: 152.152.152.152',
      ]),
    );
    const received = origin.requests[0]!;
    expect(received.headers.forwarded).toBe('for=152.152.152.152;proto=https, for=10.1.2.3');
    expect(received.headers['x-real-ip']).toBe('152.152.152.152');
  });

  it('joins repeated X-Forwarded-For fields in order', async () => {
    await rawRequest(
      proxy.url,
      rawGet('/echo', proxyHost, ['X-Forwarded-For: 152.152.152.152', 'X-Forwarded-For: 10.1.2.3']),
    );
    expect(origin.requests[0]!.headers['x-forwarded-for']).toBe('152.152.152.152, 10.1.2.3, 127.0.0.1');
  });

  it('logs the client address from a trusted chain', async () => {
    await rawRequest(proxy.url, rawGet('/items/MLA5', proxyHost, ['X-Forwarded-For: 152.152.152.152']));
    const line = await proxy.logs.waitForRecord('request', (record) => record.url === '/items/MLA5');
    expect(line.ip).toBe('152.152.152.152');
  });

  it('does not trust another loopback peer (127.0.0.2) that is not listed', async () => {
    await rawRequest(
      proxy.url,
      rawGet('/items/MLA6', proxyHost, [
        'X-Forwarded-For: 152.152.152.152',
        'X-Forwarded-Proto: https',
        'Forwarded: for=152.152.152.152',
        'X-Real-IP: 152.152.152.152',
      ]),
      { localAddress: '127.0.0.2' },
    );
    const received = origin.requests[0]!;
    expect(received.headers['x-forwarded-for']).toBe('127.0.0.2');
    expect(received.headers['x-forwarded-proto']).toBe('http');
    expect(received.headers.forwarded).toBeUndefined();
    expect(received.headers['x-real-ip']).toBeUndefined();
    const line = await proxy.logs.waitForRecord('request', (record) => record.url === '/items/MLA6');
    expect(line.ip).toBe('127.0.0.2');
  });
});
