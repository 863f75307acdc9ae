/**
 * Protections below the routes, shared by the proxy and admin ports: Node's server limits set from
 * the configuration, and the answer to what Node's parser refuses before any route runs (malformed
 * request lines, invalid header bytes, ambiguous framing, oversized headers, slow clients), in
 * MercadoLibre's error shape like every other answer of the proxy, after which the connection closes.
 */
import { randomUUID } from 'node:crypto';
import { maxHeaderSize, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Config } from '../config.js';
import { apiErrorBody } from './api-error.js';

/**
 * Node's own protections, configured: the request head within --headers-timeout (slowloris), the
 * whole request within --request-timeout, headers within Node's 16 KB (`maxHeaderSize`, left at its
 * default; 431 beyond). Timeouts are checked every second, or sooner for short ones (Node's
 * default interval of 30 s would let a slow client hold its connection far past the limit).
 */
export function serverOptions(config: Config): {
  headersTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  connectionsCheckingInterval: number;
} {
  const shortest =
    config.requestTimeout > 0
      ? Math.min(config.headersTimeout, config.requestTimeout)
      : config.headersTimeout;
  return {
    headersTimeout: config.headersTimeout,
    requestTimeout: config.requestTimeout,
    keepAliveTimeout: config.keepAliveTimeout,
    connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(shortest / 4))),
  };
}

type HttpSocket = Socket & { _httpMessage?: ServerResponse | null };

function isTimeout(code: string | undefined): boolean {
  return code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT';
}

interface ClientErrorAnswer {
  status: number;
  error: string;
  message: string;
}

export function clientErrorAnswer(code: string | undefined): ClientErrorAnswer {
  if (isTimeout(code)) {
    return { status: 408, error: 'request_timeout', message: 'The request was not received in time.' };
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    return {
      status: 431,
      error: 'request_header_fields_too_large',
      message: `The request headers are larger than ${maxHeaderSize} bytes.`,
    };
  }
  return { status: 400, error: 'bad_request', message: 'The request is not valid HTTP/1.1.' };
}

/**
 * A Fastify `clientErrorHandler`: answers in MercadoLibre's error shape, then closes the connection.
 * A response still owed to an earlier request on the connection (pipelining) goes out first, whole,
 * and the error after it, so that no client reads the error as the answer to a request the upstream
 * did perform. A response in progress for the failed request itself (its body was malformed, or too
 * slow) is never corrupted: the connection is cut instead, as Node's own handler does.
 * `onAnswer` counts what was answered: its status, body bytes and Node's error code (which says
 * which timeout, if any, ended the request).
 */
export function createClientErrorHandler(
  onAnswer: (status: number, bytes: number, code: string | undefined) => void,
): (error: Error & { code?: string }, socket: Socket) => void {
  /** Connections whose error answer waits for the responses ahead of it. */
  const waiting = new WeakSet<Socket>();

  const answer = (code: string | undefined, socket: Socket): void => {
    if (socket.destroyed) return;
    const pending = (socket as HttpSocket)._httpMessage;
    if (pending?.req.complete) {
      // After its 'close', Node has handed the socket to the next response owed, if any.
      pending.once('close', () => answer(code, socket));
      return;
    }
    if (socket.writable && !pending?.headersSent) {
      const reply = clientErrorAnswer(code);
      const body = apiErrorBody(reply.status, reply.error, reply.message);
      socket.write(
        `HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status]}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncache-control: no-store\r\nx-request-id: ${randomUUID()}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      onAnswer(reply.status, Buffer.byteLength(body), code);
    }
    socket.destroy();
  };

  return (error, socket) => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    if (waiting.has(socket)) {
      // Node reports every later byte as another error: the answer is decided already. A timeout
      // means the responses ahead took too long: the connection goes without them.
      if (isTimeout(error.code)) socket.destroy();
      return;
    }
    waiting.add(socket);
    answer(error.code, socket);
  };
}
