/**
 * An upstream that sends more than it declares (a body past its Content-Length, shaped as a whole
 * second response) must never hand those bytes to another client. Upstream connections carry one
 * request at a time, so undici reads the extra bytes while no request is waiting on the
 * connection, and closes it as the protocol error it is.
 *
 * The real `serve`, with one process and with the default worker count (four upstream connections
 * per worker).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest } from '../support/net.js';
import { HANG_DEADLINE_MS, WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';

const STOLEN = 'STOLEN-RESPONSE';

/** A raw HTTP/1.1 server: /liar answers with a forged second response appended; anything else echoes its path. */
async function startLyingOrigin(): Promise<{ url: string; server: Server; liesTold: () => number }> {
  let lies = 0;
  const server = createServer((socket: Socket) => {
    let buffered = '';
    socket.on('error', () => socket.destroy());
    socket.on('data', (data: Buffer) => {
      buffered += data.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const path = head.split(' ')[1] ?? '/';
        if (path === '/liar') {
          lies++;
          const forged = `HTTP/1.1 200 OK\r\ncontent-length: ${STOLEN.length}\r\n\r\n${STOLEN}`;
          socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nliar${forged}`);
        } else {
          socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(path)}\r\n\r\n${path}`);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, server, liesTold: () => lies };
}

describe.each(WORKER_MODES)('an upstream that sends bytes past the end of its response ($name)', (mode) => {
  let origin: Awaited<ReturnType<typeof startLyingOrigin>>;
  let proxy: ServedProxy;

  beforeAll(async () => {
    origin = await startLyingOrigin();
    // 240 requests at once from one address share four connections, and every lie costs one: the
    // per-client cap and the wait for a connection, whose 503s are not what this suite is about, are
    // lifted (a cap of 0 is none; the wait only catches a hang).
    proxy = await startServeProxy(mode, {
      upstream: origin.url,
      upstreamConnections: 4,
      upstreamConnectionsPerClient: 0,
      upstreamWaitTimeout: HANG_DEADLINE_MS,
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await new Promise((resolve) => origin?.server.close(resolve));
  });

  it('never hands them to another client: every victim gets its own response or a 502', async () => {
    const victims = Array.from({ length: 200 }, (_, i) => `/victim/${i}`);
    const liars = Array.from({ length: 40 }, () => '/liar');
    const targets = victims.flatMap((victim, i) => (i % 5 === 0 ? [liars[i / 5]!, victim] : [victim]));
    const results = await Promise.all(
      targets.map((target) =>
        httpRequest(proxy.url, target, { timeoutMs: 15_000 }).then(
          (response) => ({ target, status: response.status, body: response.body.toString() }),
          (error: Error) => ({ target, status: -1, body: error.message }),
        ),
      ),
    );
    expect(origin.liesTold()).toBeGreaterThan(0);
    const wrong = results.filter(
      (result) =>
        result.body.includes(STOLEN) ||
        (result.status === 200 && result.body !== (result.target === '/liar' ? 'liar' : result.target)),
    );
    expect(wrong).toEqual([]);
    for (const result of results) expect([200, 502]).toContain(result.status);
    expect(
      results.filter((result) => result.target !== '/liar' && result.status === 200).length,
    ).toBeGreaterThan(0);
  });
});
