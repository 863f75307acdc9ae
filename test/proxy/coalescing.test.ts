/**
 * Response bytes that reach the proxy together leave it together: the chunks undici hands over in
 * one turn of the event loop (the TLS records of one read, the chunks of a chunked body) go to the
 * client in few writes, not one write each after a pause and a resume of the upstream. A 16 KB
 * chunk fills the client socket's high-water mark on its own, which is no slow client and must not
 * stall the upstream. Every write on a loopback or pod socket is a system call and a trip through
 * the TCP stack, what large answers and connection-per-request clients pay most for.
 *
 * The origin here answers with 16 KB chunks in a single TCP write; the proxy runs in this process,
 * and the writes on its client-side socket are counted through `net.server.socket`.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from '../support/net.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const CHUNKS = 6;
const CHUNK = `${'x'.repeat(16 * 1024 - 1)}\n`;

/** An origin that sends its whole chunked answer (head and CHUNKS chunks) in one write. */
function startChunkedOrigin(): Promise<Server> {
  let body = '';
  for (let i = 0; i < CHUNKS; i++) body += `${CHUNK.length.toString(16)}\r\n${CHUNK}\r\n`;
  const answer = `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n${body}0\r\n\r\n`;
  const server = createServer((socket) => {
    let head = '';
    socket.on('error', () => socket.destroy());
    socket.on('data', (data) => {
      head += data.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      head = '';
      socket.write(answer);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

type WritableSocket = Socket & {
  _write: (...args: unknown[]) => unknown;
  _writev: (...args: unknown[]) => unknown;
};

describe('response coalescing', () => {
  let origin: Server;
  let proxy: TestProxy;
  /** Writes (write or writev calls) on each of the proxy's accepted client sockets, by client port. */
  const writes = new Map<number, number>();
  let proxyPort = 0;

  const onAccepted = (message: unknown) => {
    const socket = (message as { socket: WritableSocket }).socket;
    if (socket.localPort !== proxyPort) return;
    const port = socket.remotePort ?? 0;
    writes.set(port, 0);
    const count = () => writes.set(port, (writes.get(port) ?? 0) + 1);
    const write = socket._write.bind(socket);
    const writev = socket._writev.bind(socket);
    socket._write = (...args) => {
      count();
      return write(...args);
    };
    socket._writev = (...args) => {
      count();
      return writev(...args);
    };
  };

  beforeAll(async () => {
    origin = await startChunkedOrigin();
    const { port } = origin.address() as { port: number };
    proxy = await startTestProxy({ upstream: `http://127.0.0.1:${port}` });
    proxyPort = Number(new URL(proxy.url).port);
    subscribe('net.server.socket', onAccepted);
  });

  afterAll(async () => {
    unsubscribe('net.server.socket', onAccepted);
    await proxy?.close();
    await new Promise((resolve) => origin?.close(resolve));
  });

  it('writes the chunks of one upstream read to the client in few writes, intact', async () => {
    const response = await rawRequest(
      proxy.url,
      'GET /items/MLA1 HTTP/1.1\r\nhost: proxy\r\nconnection: close\r\n\r\n',
    );
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe(CHUNK.repeat(CHUNKS));
    expect(writes.size).toBe(1);
    const [count] = [...writes.values()];
    // 96 KB in 64 KB writes: two, or three when the origin's write arrives in two reads. Pausing
    // the upstream whenever the high-water mark is reached would take a write per chunk.
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThanOrEqual(3);
  });
});
