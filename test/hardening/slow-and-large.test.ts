/**
 * Clients that send too much or too slowly: `--max-body` (413, before the upstream is contacted
 * when Content-Length says so, or as soon as a chunked body passes it), `--headers-timeout`
 * (slowloris), `--request-timeout` (a body trickled forever) and `--keep-alive-timeout`. Each ends
 * with a clean answer or a closed connection, and the upstream request, if one started, is aborted.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, RawConnection, rawGet } from '../support/net.js';
import { HANG_DEADLINE_MS, startTestProxy, type TestProxy } from '../support/proxy.js';
import { exchange, expectApiError, settle, sleep } from './helpers.js';

const MAX_BODY = 1000;
const HEADERS_TIMEOUT = 400;
const REQUEST_TIMEOUT = 1200;
/** Far enough above twice HEADERS_TIMEOUT that a late timer on a busy machine cannot blur the two. */
const KEEP_ALIVE_TIMEOUT = 4000;
/**
 * Upper bounds on when a timeout acts only tell "it acted" from "it never did" (the clients here
 * trickle on until closed): a busy machine may act seconds late. Lower bounds are exact.
 */
const SLACK = 15_000;

function chunk(text: string): string {
  return `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
}

describe('large and slow requests', () => {
  let origin: Origin;
  let proxy: TestProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startTestProxy({
      upstream: origin.url,
      maxBody: MAX_BODY,
      headersTimeout: HEADERS_TIMEOUT,
      requestTimeout: REQUEST_TIMEOUT,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT,
      // Every body streams: the cases here are about a body already on its way upstream (bodies
      // read whole first are in slow-clients.test.ts).
      bodyBuffer: 0,
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });
  beforeEach(() => origin.reset());

  describe('--max-body', () => {
    it('answers 413 to a Content-Length over the limit without contacting the upstream', async () => {
      for (const extra of [[], ['Expect: 100-continue']]) {
        const { responses, closed } = await exchange(
          proxy.url,
          rawGet('/echo', 'proxy.test', [`Content-Length: ${MAX_BODY + 1}`, ...extra], 'POST'),
        );
        expectApiError(responses.at(-1), 413);
        expect(responses.at(-1)!.headers.connection).toBe('close');
        expect(JSON.parse(responses.at(-1)!.body.toString()).message).toContain(String(MAX_BODY));
        expect(closed).toBe(true);
      }
      await settle();
      expect(origin.connections).toBe(0);
      expect(origin.requests).toEqual([]);
    });

    it('sends no 100 Continue before that 413, and one to a body within the limit', async () => {
      const refused = await RawConnection.open(proxy.url);
      try {
        await refused.send(
          rawGet('/echo', 'proxy.test', [`Content-Length: ${MAX_BODY + 1}`, 'Expect: 100-continue'], 'POST'),
        );
        expect(await refused.waitForClose()).toBe(true);
        expect(refused.pending.toString('latin1')).toMatch(/^HTTP\/1\.1 413 /);
      } finally {
        refused.close();
      }
      const accepted = await RawConnection.open(proxy.url);
      try {
        await accepted.send(
          rawGet('/echo', 'proxy.test', [`Content-Length: ${MAX_BODY}`, 'Expect: 100-continue'], 'POST'),
        );
        await expect
          .poll(() => accepted.pending.toString('latin1'), { timeout: HANG_DEADLINE_MS })
          .toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n$/);
        await accepted.send('x'.repeat(MAX_BODY));
        expect(JSON.parse((await accepted.readResponse()).body.toString())).toMatchObject({
          bodyLength: MAX_BODY,
        });
      } finally {
        accepted.close();
      }
      expect(origin.requests.map((request) => request.url)).toEqual(['/echo']);
    });

    it('forwards a body of exactly the limit, with a length or chunked', async () => {
      const body = 'x'.repeat(MAX_BODY);
      const withLength = await httpRequest(proxy.url, '/echo', { method: 'POST', body });
      expect(withLength.json()).toMatchObject({ bodyLength: MAX_BODY });
      const chunked = await httpRequest(proxy.url, '/echo', {
        method: 'PUT',
        body: (async function* () {
          yield body.slice(0, 600);
          yield body.slice(600);
        })(),
      });
      expect(chunked.json()).toMatchObject({ bodyLength: MAX_BODY });
      expect(origin.requests.map((request) => request.completed)).toEqual([true, true]);
    });

    it('answers 413 when a chunked body passes the limit, and aborts the upstream request', async () => {
      const connection = await RawConnection.open(proxy.url);
      try {
        // The origin holds off answering: no response has started when the limit is passed.
        await connection.send(
          'POST /echo?hold=never HTTP/1.1\r\nHost: proxy.test\r\nTransfer-Encoding: chunked\r\n\r\n',
        );
        await connection.send(chunk('a'.repeat(600)));
        await origin.waitForRequests(1);
        await connection.send(chunk('b'.repeat(600))).catch(() => undefined);
        const response = await connection.readResponse();
        expectApiError(response, 413);
        expect(response.headers.connection).toBe('close');
        expect(await connection.waitForClose()).toBe(true);
      } finally {
        connection.close();
      }
      await expect.poll(() => origin.requests[0]?.aborted, { timeout: HANG_DEADLINE_MS }).toBe(true);
      expect(origin.requests[0]!.completed).toBe(false);
      expect((await httpRequest(proxy.url, '/items/MLA1')).status).toBe(200);
    });

    it('cuts the connection when a chunked body passes the limit after the response started', async () => {
      const connection = await RawConnection.open(proxy.url);
      try {
        // /mirror answers as the body arrives: its response is under way when the limit is passed.
        await connection.send(
          'POST /mirror HTTP/1.1\r\nHost: proxy.test\r\nTransfer-Encoding: chunked\r\n\r\n',
        );
        await connection.send(chunk('a'.repeat(600)));
        await expect
          .poll(() => connection.pending.indexOf('\r\n\r\n') !== -1, { timeout: HANG_DEADLINE_MS })
          .toBe(true);
        expect(connection.pending.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
        await connection.send(chunk('b'.repeat(600))).catch(() => undefined);
        expect(await connection.waitForClose()).toBe(true);
        // The body never got its terminating chunk: the client can tell it is incomplete.
        expect(connection.pending.toString('latin1')).not.toMatch(/\r\n0\r\n\r\n$/);
      } finally {
        connection.close();
      }
      await expect.poll(() => origin.requests[0]?.aborted, { timeout: HANG_DEADLINE_MS }).toBe(true);
    });

    it('takes any size with --max-body 0', async () => {
      const unlimited = await startTestProxy({ upstream: origin.url, maxBody: 0 });
      try {
        const body = Buffer.alloc(2 * 1024 * 1024, 0x61);
        const response = await httpRequest(unlimited.url, '/echo', {
          method: 'POST',
          body: (async function* () {
            yield body.subarray(0, body.length / 2);
            yield body.subarray(body.length / 2);
          })(),
        });
        expect(response.json()).toMatchObject({ bodyLength: body.length });
      } finally {
        await unlimited.close();
      }
    });
  });

  describe('--headers-timeout, --request-timeout, --keep-alive-timeout', () => {
    /** Sends `parts` one every `everyMs` until the server closes; resolves with when it closed. */
    async function trickle(
      first: string,
      part: string,
      everyMs: number,
    ): Promise<{ closedAfterMs: number; connection: RawConnection }> {
      const connection = await RawConnection.open(proxy.url);
      const started = performance.now();
      await connection.send(first);
      const closed = connection.waitForClose(10_000);
      while (!connection.closed && performance.now() - started < 8000) {
        await sleep(everyMs);
        await connection.send(part).catch(() => undefined);
      }
      await closed;
      return { closedAfterMs: performance.now() - started, connection };
    }

    it('answers 408 and closes a connection that trickles its headers (slowloris)', async () => {
      const { closedAfterMs, connection } = await trickle(
        'GET /items/MLA1 HTTP/1.1\r\nHost: proxy.test\r\n',
        'X-Slow: a\r\n',
        50,
      );
      expect(closedAfterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 50);
      expect(closedAfterMs).toBeLessThan(HEADERS_TIMEOUT + SLACK);
      expectApiError(await connection.readResponse(), 408);
      connection.close();
      expect(origin.requests).toEqual([]);
    });

    it('closes a connection that never sends a byte', async () => {
      const connection = await RawConnection.open(proxy.url);
      const started = performance.now();
      expect(await connection.waitForClose(HEADERS_TIMEOUT + SLACK + 1000)).toBe(true);
      expect(performance.now() - started).toBeLessThan(HEADERS_TIMEOUT + SLACK);
      connection.close();
    });

    it('answers 408 to a body trickled past --request-timeout, and aborts the upstream request', async () => {
      const { closedAfterMs, connection } = await trickle(
        'POST /echo HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 500\r\n\r\n',
        'z',
        50,
      );
      expect(closedAfterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT - 50);
      expect(closedAfterMs).toBeLessThan(REQUEST_TIMEOUT + SLACK);
      expectApiError(await connection.readResponse(), 408);
      connection.close();
      await expect.poll(() => origin.requests[0]?.aborted, { timeout: SLACK }).toBe(true);
    });

    it('keeps serving normal clients while 100 slowloris connections hang on, then drops them all', async () => {
      // A headers timeout long enough that 20 requests are served well within it on a busy machine:
      // served while the slow connections still hang on, not once they were dropped.
      const patient = await startTestProxy({ upstream: origin.url, headersTimeout: 5000 });
      const slow = await Promise.all(
        Array.from({ length: 100 }, async () => {
          const connection = await RawConnection.open(patient.url);
          await connection.send('GET /items/MLA1 HTTP/1.1\r\nHost: proxy.test\r\nX-Slow: ');
          return connection;
        }),
      );
      try {
        const responses = await Promise.all(
          Array.from({ length: 20 }, (_, i) => httpRequest(patient.url, `/items/MLA${i}`)),
        );
        expect(responses.every((response) => response.status === 200)).toBe(true);
        expect(slow.filter((connection) => connection.closed)).toEqual([]);
        const closed = await Promise.all(slow.map((connection) => connection.waitForClose(5000 + SLACK)));
        expect(closed.every(Boolean)).toBe(true);
      } finally {
        for (const connection of slow) connection.close();
        await patient.close();
      }
    });

    it('lets an idle keep-alive connection outlive --headers-timeout, and closes it after --keep-alive-timeout', async () => {
      const connection = await RawConnection.open(proxy.url);
      try {
        await connection.send(rawGet('/items/MLA1', 'proxy.test'));
        expect((await connection.readResponse()).status).toBe(200);
        await sleep(HEADERS_TIMEOUT * 2);
        expect(connection.closed).toBe(false);
        await connection.send(rawGet('/items/MLA2', 'proxy.test'));
        expect((await connection.readResponse()).status).toBe(200);
        const idleSince = performance.now();
        expect(await connection.waitForClose(KEEP_ALIVE_TIMEOUT + SLACK)).toBe(true);
        const idleMs = performance.now() - idleSince;
        expect(idleMs).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT - 100);
        expect(idleMs).toBeLessThan(KEEP_ALIVE_TIMEOUT + SLACK);
      } finally {
        connection.close();
      }
    });
  });
});
