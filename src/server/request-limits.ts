/**
 * What the proxy refuses before anything goes upstream: framing it cannot pass on faithfully and
 * bodies over `--max-body`. Node's parser (llhttp) already answers 400 to ambiguous framing
 * (Content-Length with Transfer-Encoding, differing Content-Lengths, a final coding other than
 * chunked); these are the cases it lets through that a proxy must not forward as they are.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

export interface Refusal {
  status: number;
  error: string;
  message: string;
}

/** Thrown into the upstream request when a chunked body passes the limit: aborts it. */
export class BodyTooLargeError extends Error {
  readonly code = 'MELI_PROXY_BODY_TOO_LARGE';
  constructor(readonly limit: number) {
    super(`request body over ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

export function bodyTooLarge(limit: number): Refusal {
  return {
    status: 413,
    error: 'payload_too_large',
    message: `The request body is larger than this proxy accepts (${limit} bytes).`,
  };
}

function hostFields(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  return count;
}

/**
 * Why a request must not be forwarded, or undefined. Every refusal closes the connection: the
 * framing (or the size) of what follows on it cannot be trusted.
 */
export function requestRefusal(req: IncomingMessage, maxBody: number): Refusal | undefined {
  if (req.httpVersionMajor !== 1) {
    return {
      status: 505,
      error: 'http_version_not_supported',
      message: 'Only HTTP/1.0 and HTTP/1.1 requests are accepted.',
    };
  }
  const codings = req.headers['transfer-encoding'];
  if (codings !== undefined) {
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means the framing is faulty.
    if (req.httpVersionMinor === 0) {
      return {
        status: 400,
        error: 'bad_request',
        message: 'Transfer-Encoding is not allowed in an HTTP/1.0 request.',
      };
    }
    if (codings.trim().toLowerCase() !== 'chunked') {
      const list = codings.toLowerCase().split(',');
      // RFC 9112 §6.3: without chunked last, the body length cannot be determined.
      if (list[list.length - 1]!.trim() !== 'chunked') {
        return {
          status: 400,
          error: 'bad_request',
          message: 'The body framing is ambiguous: chunked must be the final transfer coding.',
        };
      }
      // RFC 9112 §6.1: the parser removed the chunked framing, and forwarding the body would
      // silently drop the other codings.
      return {
        status: 501,
        error: 'not_implemented',
        message: 'Only the chunked transfer coding is supported.',
      };
    }
  }
  if (hostFields(req.rawHeaders) > 1) {
    return { status: 400, error: 'bad_request', message: 'A request must carry exactly one Host header.' };
  }
  if (maxBody > 0) {
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > maxBody) return bodyTooLarge(maxBody);
  }
  return undefined;
}

/**
 * A `checkContinue` listener for `server`: `100 Continue` only to a request that passes
 * requestRefusal. One that does not is answered (and its connection closed) without it, so the
 * client never starts sending a body the proxy will not read, as nginx does. Every other request
 * gets its 100 at once, as Node would send it: after an early answer (405, 429) the body it brings
 * is read and dropped by Node, and the connection stays usable.
 */
export function continueUnlessRefused(
  server: Server,
  maxBody: number,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (requestRefusal(req, maxBody) === undefined) res.writeContinue();
    server.emit('request', req, res);
  };
}

/** The body as undici should send it: none, the request stream, or the stream held to `maxBody`. */
export function upstreamBody(
  req: IncomingMessage,
  maxBody: number,
): IncomingMessage | AsyncIterable<Buffer> | null {
  const length = req.headers['content-length'];
  if (length !== undefined) return length === '0' ? null : req;
  if (req.headers['transfer-encoding'] === undefined) return null;
  // A declared length was checked up front (and the parser holds the client to it); a chunked body
  // is counted as it streams.
  return maxBody > 0 ? limited(req, maxBody) : req;
}

async function* limited(req: IncomingMessage, maxBody: number): AsyncGenerator<Buffer> {
  let received = 0;
  // destroyOnReturn false: stopping early must not destroy the socket before the 413 is written.
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received > maxBody) throw new BodyTooLargeError(maxBody);
    yield chunk;
  }
}
