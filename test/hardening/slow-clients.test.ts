/**
 * One slow or greedy client cannot take what others need. Each attack runs over real sockets from
 * its own address (127.0.0.2) against a small upstream pool while a well-behaved client (127.0.0.1)
 * keeps sending; that client must get every answer, 200, each within a deadline that only catches
 * a hang. The attacks: bodies trickled slowly (small ones, read whole before an upstream connection
 * is taken, and large ones, which stream), bodies that stop, responses never read, slowloris
 * headers, and 500 connections at once.
 *
 * In one process (startTestProxy), on purpose: each attack aims at one process's upstream pool and
 * sockets, sized here to be exhausted; a worker of `serve --workers` runs the same code with a pool
 * of its own, and the cluster would split the attacker's connections between them.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, RawConnection, rawGet } from '../support/net.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { expectApiError, sleep } from './helpers.js';

const ATTACKER = '127.0.0.2';
const POOL = 4;
const PER_CLIENT = 2;
const STALL_MS = 1500;
/** A request that takes longer than this hangs: no test asserts anything faster. */
const HANG_MS = 15_000;

/** A socket that sends what it is given and never reads: the kernel buffers fill, then nothing moves. */
function openIdle(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), localAddress: ATTACKER });
    socket.pause();
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

interface Tally {
  statuses: number[];
  failures: string[];
}

/**
 * The well-behaved client: one request after another (GETs, and small POSTs) until `rounds` were
 * answered and `until` has settled. Failures (a reset, a hang) are collected, not thrown.
 */
async function wellBehaved(url: string, until: Promise<unknown>, rounds = 5): Promise<Tally> {
  const tally: Tally = { statuses: [], failures: [] };
  let over = false;
  void until.finally(() => {
    over = true;
  });
  for (let i = 0; i < rounds || !over; i++) {
    try {
      const response =
        i % 2 === 0
          ? await httpRequest(url, '/items/MLA1', { timeoutMs: HANG_MS })
          : await httpRequest(url, '/echo', { method: 'POST', body: 'x'.repeat(2000), timeoutMs: HANG_MS });
      tally.statuses.push(response.status);
    } catch (error) {
      tally.failures.push((error as Error).message);
    }
  }
  return tally;
}

function expectAllAnswered(tally: Tally): void {
  expect(tally.failures).toEqual([]);
  expect(tally.statuses.length).toBeGreaterThanOrEqual(5);
  expect(
    tally.statuses.every((status) => status === 200),
    String(tally.statuses),
  ).toBe(true);
}

async function metric(proxy: TestProxy, name: string): Promise<number> {
  const text = (await httpRequest(proxy.url, '/metrics')).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').at(-1)) : Number.NaN;
}

describe('slow and greedy clients', () => {
  let origin: Origin;
  let proxy: TestProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startTestProxy({
      upstream: origin.url,
      upstreamConnections: POOL,
      upstreamConnectionsPerClient: PER_CLIENT,
      clientStallTimeout: STALL_MS,
      upstreamWaitTimeout: 10_000,
      headersTimeout: 1000,
      requestTimeout: 60_000,
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });
  beforeEach(() => origin.reset());

  it('slow small uploads never take an upstream connection (read whole first)', async () => {
    const uploads = await Promise.all(
      Array.from({ length: 50 }, () => RawConnection.open(proxy.url, { localAddress: ATTACKER })),
    );
    try {
      const head = 'POST /echo HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n';
      await Promise.all(uploads.map((upload) => upload.send(`${head}1\r\na\r\n`)));
      // Each sends a byte more, well within the stall timeout, for a while.
      const trickling = (async () => {
        for (let i = 0; i < 6; i++) {
          await sleep(STALL_MS / 5);
          await Promise.all(uploads.map((upload) => upload.send('1\r\nb\r\n').catch(() => undefined)));
        }
      })();
      expectAllAnswered(await wellBehaved(proxy.url, trickling));
      expect(origin.requests.filter((request) => request.remoteAddress !== '127.0.0.1').length).toBe(0);
      // Their bodies still arrive whole once they finish.
      await uploads[0]!.send('0\r\n\r\n');
      expect(JSON.parse((await uploads[0]!.readResponse()).body.toString())).toMatchObject({ bodyLength: 7 });
    } finally {
      for (const upload of uploads) upload.close();
    }
  });

  it('slow large uploads hold at most --upstream-connections-per-client connections; the rest get 503', async () => {
    const uploads = await Promise.all(
      Array.from({ length: 20 }, () => RawConnection.open(proxy.url, { localAddress: ATTACKER })),
    );
    try {
      const head = 'POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: 1000000\r\n\r\n';
      await Promise.all(uploads.map((upload) => upload.send(`${head}${'a'.repeat(100)}`)));
      const trickling = (async () => {
        for (let i = 0; i < 6; i++) {
          await sleep(STALL_MS / 5);
          await Promise.all(uploads.map((upload) => upload.send('a'.repeat(100)).catch(() => undefined)));
        }
      })();
      expectAllAnswered(await wellBehaved(proxy.url, trickling));
      const refused = uploads.filter((upload) =>
        upload.pending.toString('latin1').startsWith('HTTP/1.1 503 '),
      );
      expect(refused.length).toBe(uploads.length - PER_CLIENT);
      expectApiError(await refused[0]!.readResponse(), 503);
    } finally {
      for (const upload of uploads) upload.close();
    }
  });

  it('cuts a body that stops with 408 after --client-stall-timeout, and frees its upstream connection', async () => {
    const upload = await RawConnection.open(proxy.url, { localAddress: ATTACKER });
    try {
      await upload.send(
        `POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: 100000\r\n\r\n${'a'.repeat(20000)}`,
      );
      await origin.waitForRequests(1);
      const response = await upload.readResponse({ timeoutMs: HANG_MS });
      expectApiError(response, 408);
      expect(response.headers.connection).toBe('close');
      expect(await upload.waitForClose(HANG_MS)).toBe(true);
    } finally {
      upload.close();
    }
    await expect.poll(() => origin.requests[0]?.aborted, { timeout: HANG_MS }).toBe(true);
    expect(await metric(proxy, 'meli_proxy_client_stalls_total{direction="body"}')).toBeGreaterThanOrEqual(1);
  });

  it('cuts responses the clients stop reading, and frees their upstream connections', async () => {
    const readers = await Promise.all(Array.from({ length: 6 }, () => openIdle(proxy.url)));
    try {
      for (const reader of readers) reader.write(rawGet('/big?bytes=200000000', 'p'));
      const big = (request: { url: string }) => request.url.startsWith('/big');
      // PER_CLIENT of them reach the upstream (the rest are refused 503), and are cut when stalled.
      const cut = origin
        .waitForRequests(PER_CLIENT, big, HANG_MS)
        .then(() =>
          expect
            .poll(() => origin.requests.filter(big).every((request) => request.aborted), { timeout: HANG_MS })
            .toBe(true),
        );
      expectAllAnswered(await wellBehaved(proxy.url, cut));
      await cut;
      expect(origin.requests.filter(big)).toHaveLength(PER_CLIENT);
    } finally {
      for (const reader of readers) reader.destroy();
    }
    expect(await metric(proxy, 'meli_proxy_client_stalls_total{direction="response"}')).toBe(PER_CLIENT);
    // Every upstream connection is free again.
    await expect
      .poll(
        async () =>
          (await httpRequest(proxy.url, '/ready')).json<{ upstream: { busy: number } }>().upstream.busy,
        {
          timeout: HANG_MS,
        },
      )
      .toBe(0);
  });

  it('keeps serving through slowloris (headers trickled on 200 connections)', async () => {
    const loris = await Promise.all(
      Array.from({ length: 200 }, () => RawConnection.open(proxy.url, { localAddress: ATTACKER })),
    );
    try {
      await Promise.all(loris.map((c) => c.send('GET /items/MLA1 HTTP/1.1\r\nHost: p\r\n')));
      const trickling = (async () => {
        for (let i = 0; i < 5; i++) {
          await sleep(200);
          await Promise.all(loris.map((c) => c.send('X-Slow: a\r\n').catch(() => undefined)));
        }
      })();
      expectAllAnswered(await wellBehaved(proxy.url, trickling));
    } finally {
      for (const c of loris) c.close();
    }
  });

  it('keeps serving while one client opens 500 connections that each wait on the upstream', async () => {
    const flood = await Promise.all(
      Array.from({ length: 500 }, () => RawConnection.open(proxy.url, { localAddress: ATTACKER })),
    );
    try {
      await Promise.all(flood.map((c) => c.send(rawGet('/echo?hold=flood', 'p'))));
      // All but PER_CLIENT are refused at once; those wait upstream until released.
      const answered = Promise.all(
        flood.map((c) => c.readResponse({ timeoutMs: HANG_MS }).catch(() => undefined)),
      );
      const tally = await wellBehaved(proxy.url, sleep(500));
      origin.release('flood');
      expectAllAnswered(tally);
      const statuses = (await answered).map((response) => response?.status);
      expect(statuses.filter((status) => status === 200).length).toBe(PER_CLIENT);
      expect(statuses.filter((status) => status === 503).length).toBe(500 - PER_CLIENT);
    } finally {
      for (const c of flood) c.close();
    }
    expect(await metric(proxy, 'meli_proxy_client_slot_refusals_total')).toBeGreaterThanOrEqual(
      500 - PER_CLIENT,
    );
  });
});

describe('an exhausted upstream pool', () => {
  let origin: Origin;

  beforeAll(async () => {
    origin = await startOrigin();
  });
  afterAll(async () => {
    await origin?.close();
  });
  beforeEach(() => origin.reset());

  it('shows in /ready and /metrics while requests wait for a connection', async () => {
    const proxy = await startTestProxy({
      upstream: origin.url,
      upstreamConnections: 1,
      upstreamWaitTimeout: 60_000,
    });
    try {
      const holding = httpRequest(proxy.url, '/echo?hold=pool', { timeoutMs: HANG_MS });
      await origin.waitForRequests(1);
      const waiting = httpRequest(proxy.url, '/items/MLA1', { timeoutMs: HANG_MS });
      await expect
        .poll(async () => (await httpRequest(proxy.url, '/ready')).json<{ upstream: unknown }>().upstream, {
          timeout: HANG_MS,
        })
        .toEqual({ connections: 1, busy: 1, waiting: 1, exhausted: true });
      expect(await metric(proxy, 'meli_proxy_upstream_waiting_requests')).toBe(1);
      origin.release('pool');
      expect((await holding).status).toBe(200);
      expect((await waiting).status).toBe(200);
      expect(await metric(proxy, 'meli_proxy_upstream_waiting_requests')).toBe(0);
      expect(await metric(proxy, 'meli_proxy_upstream_connections_taken_total')).toBe(2);
    } finally {
      await proxy.close();
    }
  });

  it('does not count a wait for a pooled connection against a streaming body as a stall', async () => {
    const proxy = await startTestProxy({
      upstream: origin.url,
      upstreamConnections: 1,
      upstreamWaitTimeout: 60_000,
      clientStallTimeout: 200,
    });
    try {
      const holding = httpRequest(proxy.url, '/echo?hold=stall', { timeoutMs: HANG_MS });
      await origin.waitForRequests(1);
      // Chunked and larger than --body-buffer: it streams once a connection frees.
      const body = Buffer.alloc(40_000, 0x61);
      const waiting = httpRequest(proxy.url, '/echo', {
        method: 'POST',
        body: (async function* () {
          yield body;
        })(),
        timeoutMs: HANG_MS,
      });
      await sleep(1000);
      origin.release('stall');
      expect((await holding).status).toBe(200);
      const response = await waiting;
      expect(response.status).toBe(200);
      expect(response.json()).toMatchObject({ bodyLength: body.length });
    } finally {
      await proxy.close();
    }
  });

  it('answers 503 in the API shape to a request that waits past --upstream-wait-timeout', async () => {
    const proxy = await startTestProxy({
      upstream: origin.url,
      upstreamConnections: 1,
      upstreamWaitTimeout: 300,
    });
    try {
      const holding = httpRequest(proxy.url, '/echo?hold=timeout', { timeoutMs: HANG_MS });
      await origin.waitForRequests(1, (request) => request.url === '/echo?hold=timeout');
      const late = await httpRequest(proxy.url, '/items/MLA1', { timeoutMs: HANG_MS });
      expect(late.status).toBe(503);
      expect(late.headers['retry-after']).toBe('1');
      expect(late.json()).toMatchObject({ status: 503, error: 'service_unavailable', cause: [] });
      origin.release('timeout');
      expect((await holding).status).toBe(200);
      // The request that gave up is never sent once the connection frees.
      await sleep(100);
      expect(origin.requests.filter((request) => request.url === '/items/MLA1')).toEqual([]);
      expect(await metric(proxy, 'meli_proxy_upstream_wait_timeouts_total')).toBe(1);
    } finally {
      await proxy.close();
    }
  });
});
