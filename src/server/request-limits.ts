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

export interface RequestLimits {
  /** `--max-body`; 0: no limit. */
  maxBody: number;
  /** `--max-header-fields`. */
  maxHeaderFields: number;
}

/**
 * Why a request must not be forwarded, or undefined. Every refusal closes the connection: the
 * framing (or the size) of what follows on it cannot be trusted.
 */
export function requestRefusal(req: IncomingMessage, limits: RequestLimits): Refusal | undefined {
  // The server keeps every field (maxHeadersCount 0): one cut off silently could be the body's framing.
  if (req.rawHeaders.length > 2 * limits.maxHeaderFields) {
    return {
      status: 431,
      error: 'request_header_fields_too_large',
      message: `The request has more than ${limits.maxHeaderFields} header fields.`,
    };
  }
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
  // RFC 9112 §3.2: an HTTP/1.1 request without Host, or any with two, is answered 400.
  const hosts = hostFields(req.rawHeaders);
  if (hosts > 1 || (hosts === 0 && req.httpVersionMinor === 1)) {
    return { status: 400, error: 'bad_request', message: 'A request must carry exactly one Host header.' };
  }
  if (limits.maxBody > 0) {
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > limits.maxBody) return bodyTooLarge(limits.maxBody);
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
  limits: RequestLimits,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (requestRefusal(req, limits) === undefined) res.writeContinue();
    server.emit('request', req, res);
  };
}
