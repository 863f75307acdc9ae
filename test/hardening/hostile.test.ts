/**
 * Hostile requests on the proxy port. Each gets a clean answer — a 4xx (or 501/505) in
 * MercadoLibre's error shape, on a connection the proxy then closes — or is forwarded to the
 * configured upstream exactly as sent. Nothing ever reaches a second origin the requests name, and
 * nothing a refused request carries (a smuggled second request above all) reaches even the upstream.
 *
 * (test/proxy/targets.test.ts covers absolute-form targets, Host headers, CONNECT and TRACE basics;
 * these are the variants around them.)
 *
 * The real `serve`, with one process and with the default worker count: a worker parses what the
 * cluster hands it, so each refusal must hold there too.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, RawConnection, rawGet } from '../support/net.js';
import { HANG_DEADLINE_MS, WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';
import { exchange, expectApiError, settle } from './helpers.js';

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: proxy.test\r\n\r\n';
/** A body that looks like a request: it must stay a body. */
const INSIDE = 'GET /inside-a-body HTTP/1.1\r\nHost: proxy.test\r\n\r\n';

describe.each(WORKER_MODES)('hostile requests ($name)', (mode) => {
  let origin: Origin;
  let other: Origin;
  let proxy: ServedProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    other = await startOrigin({ host: '127.0.0.3' });
    proxy = await startServeProxy(mode, { upstream: origin.url, maxBody: '1mb' });
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

  /**
   * Refused: one error in ML's shape, connection closed, nothing forwarded. A body that turns out
   * malformed part-way may already be streaming to the upstream (`bodyError`): that upstream request
   * is then aborted, never completed, and nothing after it on the connection is forwarded.
   */
  async function expectRefused(
    data: string | Buffer,
    status: number,
    { bodyError = false } = {},
  ): Promise<void> {
    const { responses, closed } = await exchange(proxy.url, data);
    expect(responses.map((response) => response.status)).toEqual([status]);
    expectApiError(responses[0], status);
    expect(responses[0]!.headers.connection).toBe('close');
    expect(closed).toBe(true);
    await settle();
    if (bodyError) {
      for (const request of origin.requests) {
        expect(request.url).toBe('/echo');
        expect(request.completed).toBe(false);
      }
    } else {
      expect(origin.requests.map((request) => request.url)).toEqual([]);
    }
    expectOtherUntouched();
  }

  describe('malformed request lines → 400 (505 for other HTTP versions)', () => {
    const cases: Array<[string, string, number]> = [
      ['no method, no target', 'GARBAGE\r\n\r\n', 400],
      ['a method alone', 'GET\r\n\r\n', 400],
      ['an extra word after the version', 'GET /items/MLA1 HTTP/1.1 extra\r\nHost: p\r\n\r\n', 400],
      ['an invalid method token', 'G@T /items/MLA1 HTTP/1.1\r\nHost: p\r\n\r\n', 400],
      ['a lower-case method', 'get /items/MLA1 HTTP/1.1\r\nHost: p\r\n\r\n', 400],
      ['a space inside the target', 'GET /items/ MLA1 HTTP/1.1\r\nHost: p\r\n\r\n', 400],
      ['a control byte in the target', 'GET /items/\x01 HTTP/1.1\r\nHost: p\r\n\r\n', 400],
      ['a DEL byte in the target', 'GET /items/\x7f HTTP/1.1\r\nHost: p\r\n\r\n', 400],
      ['a non-ASCII byte in the target', 'GET /items/\xff HTTP/1.1\r\nHost: p\r\n\r\n', 400],
      ['bare LF line ends', 'GET /items/MLA1 HTTP/1.1\nHost: p\n\n', 400],
      ['HTTP/1.2', 'GET /items/MLA1 HTTP/1.2\r\nHost: p\r\n\r\n', 400],
      ['a malformed version', 'GET /items/MLA1 HTTP/one\r\nHost: p\r\n\r\n', 400],
      ['an authority-form target', 'GET other.example:80 HTTP/1.1\r\nHost: p\r\n\r\n', 400],
      ['the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400],
      ['a TLS ClientHello', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 400],
      ['HTTP/2.0 in an HTTP/1 request line', 'GET /items/MLA1 HTTP/2.0\r\nHost: p\r\n\r\n', 505],
      ['HTTP/0.9 (no version)', 'GET /items/MLA1\r\n\r\n', 505],
    ];
    it.each(cases)('%s', async (_name, data, status) => {
      await expectRefused(data, status);
    });

    it('an asterisk target on GET: 400 (the connection may stay open: its framing is sound)', async () => {
      const { responses } = await exchange(
        proxy.url,
        'GET * HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n',
      );
      expectApiError(responses[0], 400);
      expect(origin.requests).toEqual([]);
      expectOtherUntouched();
    });

    it('an unknown method (TRACK, PROPPATCHX): 400 from the parser', async () => {
      for (const method of ['TRACK', 'PROPPATCHX', 'BREW']) {
        await expectRefused(rawGet('/items/MLA1', 'proxy.test', [], method), 400);
      }
    });
  });

  describe('invalid header bytes → 400', () => {
    const line = (header: string) => `GET /items/MLA1 HTTP/1.1\r\nHost: p\r\n${header}\r\n\r\n`;
    const cases: Array<[string, string]> = [
      ['NUL in a value', line('X-A: a\x00b')],
      ['a control byte in a value', line('X-A: a\x01b')],
      ['DEL in a value', line('X-A: a\x7fb')],
      ['a bare CR in a value', line('X-A: a\rb')],
      ['a separator in a name', line('X(A): b')],
      ['a space in a name', line('X A: b')],
      ['a space before the colon', line('X-A : b')],
      ['a line without a colon', line('X-A b')],
      ['an empty name', line(': b')],
      ['an obsolete line folding', line('X-A: b\r\n  folded')],
      ['a non-ASCII byte in a name', line('X-\xe9: b')],
    ];
    it.each(cases)('%s', async (_name, data) => {
      await expectRefused(data, 400);
    });

    it('passes a value with obs-text (bytes 0x80–0xFF, allowed by RFC 9110) on to the upstream', async () => {
      const { responses } = await exchange(
        proxy.url,
        'GET /echo HTTP/1.1\r\nHost: p\r\nX-Latin: caf\xe9\r\nConnection: close\r\n\r\n',
      );
      expect(responses[0]?.status).toBe(200);
      expect(origin.requests).toHaveLength(1);
      expect(Buffer.from(origin.requests[0]!.headers['x-latin'] as string, 'latin1')).toEqual(
        Buffer.from('caf\xe9', 'latin1'),
      );
    });
  });

  describe('oversized headers → 431 (Node keeps its 16 KB limit)', () => {
    it('refuses one header over 16 KB', async () => {
      await expectRefused(line(`X-Big: ${'a'.repeat(17 * 1024)}`), 431);
    });

    it('refuses many small headers adding up to over 16 KB', async () => {
      const many = Array.from({ length: 700 }, (_, i) => `X-Field-${i}: ${'v'.repeat(16)}`).join('\r\n');
      await expectRefused(line(many), 431);
    });

    it('refuses a request target over 16 KB', async () => {
      await expectRefused(`GET /items/${'a'.repeat(17 * 1024)} HTTP/1.1\r\nHost: p\r\n\r\n`, 431);
    });

    it('forwards headers just under the limit', async () => {
      const response = await httpRequest(proxy.url, '/echo', { headers: { 'x-big': 'a'.repeat(15 * 1024) } });
      expect(response.status).toBe(200);
      expect((origin.requests[0]!.headers['x-big'] as string).length).toBe(15 * 1024);
    });

    function line(header: string): string {
      return `GET /items/MLA1 HTTP/1.1\r\nHost: p\r\n${header}\r\n\r\n`;
    }
  });

  describe('request smuggling → 400 (501 for an unsupported coding), nothing forwarded', () => {
    const post = (headers: string, body = '0\r\n\r\n', version = '1.1') =>
      `POST /echo HTTP/${version}\r\nHost: proxy.test\r\n${headers}\r\n\r\n${body}${SMUGGLED}`;
    const cases: Array<[string, string, number, { bodyError?: boolean }?]> = [
      ['Content-Length and Transfer-Encoding', post('Content-Length: 5\r\nTransfer-Encoding: chunked'), 400],
      ['Transfer-Encoding and Content-Length', post('Transfer-Encoding: chunked\r\nContent-Length: 5'), 400],
      ['two different Content-Lengths', post('Content-Length: 5\r\nContent-Length: 40', '0\r\n\r\n'), 400],
      ['two equal Content-Lengths', post('Content-Length: 5\r\nContent-Length: 5', '0\r\n\r\n'), 400],
      ['a Content-Length list', post('Content-Length: 5, 5', '0\r\n\r\n'), 400],
      ['a signed Content-Length', post('Content-Length: +5', '0\r\n\r\n'), 400],
      ['a negative Content-Length', post('Content-Length: -1', ''), 400],
      ['a hexadecimal Content-Length', post('Content-Length: 0x5', '0\r\n\r\n'), 400],
      ['a Content-Length over 2^64', post('Content-Length: 99999999999999999999999', ''), 400],
      ['Transfer-Encoding: chunked, identity', post('Transfer-Encoding: chunked, identity'), 400],
      ['Transfer-Encoding: identity', post('Transfer-Encoding: identity'), 400],
      ['Transfer-Encoding: xchunked', post('Transfer-Encoding: xchunked'), 400],
      ['Transfer-Encoding: chunked, chunked', post('Transfer-Encoding: chunked, chunked'), 400],
      [
        'chunked, then identity in a second field',
        post('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity'),
        400,
      ],
      ['a space before the colon', post('Transfer-Encoding : chunked'), 400],
      ['a folded Transfer-Encoding', post('X-A: b\r\n Transfer-Encoding: chunked'), 400],
      ['a vertical tab before chunked', post('Transfer-Encoding: \x0bchunked'), 400],
      ['Transfer-Encoding in HTTP/1.0', post('Transfer-Encoding: chunked', '0\r\n\r\n', '1.0'), 400],
      [
        'a chunk size that overflows',
        post('Transfer-Encoding: chunked', 'FFFFFFFFFFFFFFFFF\r\na\r\n0\r\n\r\n'),
        400,
        { bodyError: true },
      ],
      [
        'a chunk size that is not hexadecimal',
        post('Transfer-Encoding: chunked', 'zz\r\na\r\n0\r\n\r\n'),
        400,
        { bodyError: true },
      ],
      [
        'a chunk without its CRLF',
        post('Transfer-Encoding: chunked', '1\r\naXX0\r\n\r\n'),
        400,
        { bodyError: true },
      ],
      ['LF-only chunk lines', post('Transfer-Encoding: chunked', '1\na\n0\n\n'), 400, { bodyError: true }],
      [
        'a control byte in a chunk extension',
        post('Transfer-Encoding: chunked', '1;\x00\r\na\r\n0\r\n\r\n'),
        400,
        { bodyError: true },
      ],
      ['two Host headers', `GET /items/MLA1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n${SMUGGLED}`, 400],
      ['Transfer-Encoding: gzip, chunked', post('Transfer-Encoding: gzip, chunked'), 501],
      [
        'identity, then chunked in a second field',
        post('Transfer-Encoding: identity\r\nTransfer-Encoding: chunked'),
        501,
      ],
    ];
    it.each(cases)('%s', async (_name, data, status, options) => {
      await expectRefused(data, status, options);
    });

    it('treats Transfer_Encoding (underscore) as an ordinary header: no body, the rest is a bad request', async () => {
      const { responses, closed } = await exchange(proxy.url, post('Transfer_Encoding: chunked'));
      // No framing header: the POST has no body and goes upstream; "0" is then no request line, and
      // the 400 for it may come before the POST's answer (which is then dropped with the connection).
      expect(responses.at(-1)?.status).toBe(400);
      expect(closed).toBe(true);
      await settle();
      for (const request of origin.requests) expect(request.url).toBe('/echo');
      expectOtherUntouched();
    });
  });

  describe('paths: passed to the upstream byte for byte, never anywhere else', () => {
    const targets = [
      '/%2e%2e/%2e%2e/etc/passwd',
      '/..%2f..%2fetc/passwd',
      '/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd',
      '/../../etc/passwd',
      '/items/../../admin',
      '/%252e%252e/%252e%252e/etc/passwd',
      '/%25%32%65%25%32%65/items',
      '//other.example/items/MLA1',
      '//127.0.0.3/items/MLA1',
      '///items/MLA1',
      '/items\\..\\..\\admin',
      '/items/%00',
      '/items/%ZZ%',
      '/items/MLA1;jsessionid=x?q=%0d%0aX-Injected:%20yes',
    ];
    it.each(targets)('%s', async (target) => {
      const { responses } = await exchange(proxy.url, rawGet(target, 'proxy.test', ['Connection: close']));
      expect(responses).toHaveLength(1);
      expect(responses[0]!.status).toBeLessThan(500);
      // The origin answered (its own request id comes back renamed): this is not the proxy's page.
      expect(responses[0]!.headers['x-upstream-request-id']).toMatch(/^origin-/);
      expect(origin.requests.map((request) => request.url)).toEqual([target]);
      expect(origin.requests[0]!.headers['x-injected']).toBeUndefined();
      expectOtherUntouched();
    });
  });

  describe('absolute-form, CONNECT and TRACE variants', () => {
    it('sends absolute-form targets naming another host, with odd paths, to the upstream only', async () => {
      const connection = await RawConnection.open(proxy.url);
      try {
        for (const target of [
          `http://${other.host}/..%2f..%2fadmin`,
          `http://${other.host}//items/MLA1`,
          `http://127.0.0.3:99999/items/MLA1`,
          `http://[::1]:${other.port}/items/MLA1`,
          `http://${other.host}@evil.example/items/MLA1`,
        ]) {
          await connection.send(rawGet(target, other.host));
          const response = await connection.readResponse();
          expect(response.status, target).toBeLessThan(500);
        }
      } finally {
        connection.close();
      }
      expect(origin.requests.map((request) => request.url)).toEqual([
        '/..%2f..%2fadmin',
        '//items/MLA1',
        '/items/MLA1',
        '/items/MLA1',
        '/items/MLA1',
      ]);
      expectOtherUntouched();
    });

    it('refuses CONNECT in HTTP/1.0, with a path, or pipelined after a request: no tunnel', async () => {
      for (const data of [
        `CONNECT ${other.host} HTTP/1.0\r\n\r\n`,
        `CONNECT /items/MLA1 HTTP/1.1\r\nHost: ${other.host}\r\n\r\n`,
        `CONNECT ${other.host} HTTP/1.1\r\nHost: ${other.host}\r\n\r\nGET /tunnelled HTTP/1.1\r\nHost: ${other.host}\r\n\r\n`,
      ]) {
        const { responses, closed } = await exchange(proxy.url, data);
        expect(responses.length, data).toBeLessThanOrEqual(1);
        if (responses[0]) expect(responses[0].status, data).toBeGreaterThanOrEqual(400);
        expect(closed, data).toBe(true);
      }
      await settle();
      expect(origin.requests).toEqual([]);
      expectOtherUntouched();
    });

    it('refuses TRACE with 405, in absolute form and on a reserved path too', async () => {
      for (const data of [
        rawGet(`http://${other.host}/items/MLA1`, other.host, ['Connection: close'], 'TRACE'),
        rawGet('/health', 'proxy.test', ['Connection: close'], 'TRACE'),
      ]) {
        const { responses } = await exchange(proxy.url, data);
        expectApiError(responses[0], 405);
      }
      expect(origin.requests).toEqual([]);
      expectOtherUntouched();
    });
  });

  describe('HTTP/1.0 and pipelining', () => {
    it('serves HTTP/1.0 (closing after the response, or keeping alive when asked)', async () => {
      const plain = await exchange(proxy.url, 'GET /items/MLA1 HTTP/1.0\r\n\r\n');
      expect(plain.responses.map((response) => response.status)).toEqual([200]);
      expect(plain.closed).toBe(true);

      const connection = await RawConnection.open(proxy.url);
      try {
        for (const id of ['MLA2', 'MLA3']) {
          await connection.send(`GET /items/${id} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`);
          const response = await connection.readResponse();
          expect(JSON.parse(response.body.toString()).id).toBe(id);
        }
      } finally {
        connection.close();
      }
      const post = await exchange(proxy.url, 'POST /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc');
      expect(JSON.parse(post.responses[0]!.body.toString())).toMatchObject({ bodyLength: 3 });
    });

    it('answers pipelined requests in order, bodies and all', async () => {
      const requests = [
        'GET /items/MLA10 HTTP/1.1\r\nHost: p\r\n\r\n',
        `POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: ${INSIDE.length}\r\n\r\n${INSIDE}`,
        'GET /items/MLA11 HTTP/1.1\r\nHost: p\r\n\r\n',
        'POST /echo HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
        'HEAD /items/MLA12 HTTP/1.1\r\nHost: p\r\n\r\n',
        'GET /items/MLA13 HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n',
      ];
      const connection = await RawConnection.open(proxy.url);
      const bodies: string[] = [];
      try {
        await connection.send(requests.join(''));
        for (const request of requests) {
          const response = await connection.readResponse({ head: request.startsWith('HEAD') });
          expect(response.status).toBe(200);
          bodies.push(response.body.toString());
        }
        expect(await connection.waitForClose()).toBe(true);
      } finally {
        connection.close();
      }
      expect(JSON.parse(bodies[0]!).id).toBe('MLA10');
      expect(JSON.parse(bodies[1]!)).toMatchObject({ method: 'POST', bodyLength: INSIDE.length });
      expect(JSON.parse(bodies[2]!).id).toBe('MLA11');
      expect(JSON.parse(bodies[3]!)).toMatchObject({ method: 'POST', bodyLength: 3 });
      expect(JSON.parse(bodies[5]!).id).toBe('MLA13');
      expect(origin.requests.map((request) => request.url).sort()).toEqual(
        ['/echo', '/echo', '/items/MLA10', '/items/MLA11', '/items/MLA12', '/items/MLA13'].sort(),
      );
    });

    it('forwards nothing pipelined behind a refused request', async () => {
      for (const [data, status] of [
        [`POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n${SMUGGLED}`, 413],
        [`GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n${SMUGGLED}${SMUGGLED}`, 400],
      ] as const) {
        const { responses, closed } = await exchange(proxy.url, data);
        expect(responses.map((response) => response.status)).toEqual([status]);
        expect(closed).toBe(true);
      }
      await settle();
      expect(origin.requests).toEqual([]);
    });

    it('answers a malformed request pipelined behind others only after their responses', async () => {
      const malformed = 'GET /x HTTP/1.1\r\nHost: p\r\nX-Bad: a\x01b\r\n\r\n';
      const { responses, closed } = await exchange(
        proxy.url,
        `POST /slow?ms=300 HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n\r\nhiGET /items/MLA21 HTTP/1.1\r\nHost: p\r\n\r\n${malformed}`,
        { quietMs: 5000 },
      );
      expect(responses.map((response) => response.status)).toEqual([200, 200, 400]);
      expect(JSON.parse(responses[0]!.body.toString())).toEqual({ slept: 300 });
      expect(JSON.parse(responses[1]!.body.toString()).id).toBe('MLA21');
      expectApiError(responses[2], 400);
      expect(closed).toBe(true);
      expect(origin.requests.map((request) => request.url)).toEqual(['/slow?ms=300', '/items/MLA21']);
    });

    it('lets a response under way finish before answering a malformed request sent behind it', async () => {
      const connection = await RawConnection.open(proxy.url);
      try {
        await connection.send(rawGet('/slow-body?ms=300', 'p'));
        await expect
          .poll(() => connection.pending.indexOf('\r\n\r\n') !== -1, { timeout: HANG_DEADLINE_MS })
          .toBe(true);
        await connection.send('GET /x HTTP/1.1\r\nHost: p\r\nX-Bad: a\x01b\r\n\r\n');
        const first = await connection.readResponse();
        expect(first.status).toBe(200);
        expect(first.body.toString()).toBe('first part;second part');
        expectApiError(await connection.readResponse(), 400);
        expect(await connection.waitForClose()).toBe(true);
      } finally {
        connection.close();
      }
    });

    it('answers a request pipelined behind garbage with a 400 at most, and forwards only what parsed', async () => {
      const { responses, closed } = await exchange(
        proxy.url,
        `GET /items/MLA20 HTTP/1.1\r\nHost: p\r\n\r\nGARBAGE\r\n\r\n${SMUGGLED}`,
      );
      for (const response of responses) expect([200, 400]).toContain(response.status);
      expect(closed).toBe(true);
      await settle();
      expect(origin.requests.every((request) => request.url === '/items/MLA20')).toBe(true);
      expectOtherUntouched();
    });
  });

  it('is still healthy and forwarding after all of the above', async () => {
    expect((await httpRequest(proxy.url, '/health')).status).toBe(200);
    const response = await httpRequest(proxy.url, '/categories/MLA97994');
    expect(response.status).toBe(200);
    expect(response.json<{ id: string }>().id).toBe('MLA97994');
  });
});
