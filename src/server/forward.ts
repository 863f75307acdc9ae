/**
 * The forwarding step: one client request streamed to the upstream through undici's dispatcher and
 * the response streamed back. A raw dispatch handler (rather than @fastify/http-proxy or
 * `Pool.stream`) avoids stream plumbing per request; see "Forwarding" in the README for the numbers.
 *
 * undici's legacy handler callbacks (onConnect/onHeaders/onData/onComplete/onError) are used on
 * purpose: they receive raw header buffers and skip undici's per-request wrapper objects.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { sendApiError } from './api-error.js';
import { clientResponseHeaders } from './headers.js';
import { classifyUpstreamError, type UpstreamFailure } from './upstream-errors.js';

export interface ForwardObserver {
  /** Called once per forwarded request when the client response is done or abandoned. */
  onForwardEnd(outcome: ForwardOutcome): void;
}

export interface ForwardOutcome {
  status: number;
  failure: UpstreamFailure | undefined;
  /** Response body bytes written to the client. */
  bytes: number;
  /** The client went away before the response was complete. */
  clientAborted: boolean;
  /** Milliseconds from dispatch to the upstream's response headers (NaN when none came). */
  upstreamHeadersMs: number;
}

export interface ForwardRequest {
  method: string;
  path: string;
  headers: string[];
  requestId: string;
  /** Ask the client to close its connection after this response (the server is draining). */
  closeAfter: () => boolean;
}

/** Methods that are safe to pipeline and to retry on a fresh connection. */
function isIdempotent(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

class ForwardHandler implements Dispatcher.DispatchHandler {
  private abortUpstream: ((error?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private upstreamPaused = false;
  private status = 0;
  private bytes = 0;
  private finished = false;
  private failure: UpstreamFailure | undefined;
  private readonly startedAt = performance.now();
  private headersAt = Number.NaN;

  constructor(
    private readonly res: ServerResponse,
    private readonly request: ForwardRequest,
    private readonly observer: ForwardObserver,
  ) {
    res.once('close', this.onClientClose);
    res.on('drain', this.onClientDrain);
  }

  onConnect(abort: (error?: Error) => void): void {
    this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx interim responses are the hop's business; Node answers the client's Expect itself.
    if (statusCode < 200) return true;
    this.status = statusCode;
    this.headersAt = performance.now();
    this.resumeUpstream = resume;
    if (this.res.destroyed) return false;
    const headers = clientResponseHeaders(rawHeaders, this.request.requestId, this.request.closeAfter());
    this.res.writeHead(statusCode, statusText || undefined, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    // Returning false pauses the upstream socket until the client drains: memory stays flat.
    if (this.res.write(chunk)) return true;
    this.upstreamPaused = true;
    return false;
  }

  onComplete(): void {
    this.res.end();
    this.finish(false);
  }

  onError(error: Error): void {
    if (this.finished) return;
    if (this.res.destroyed || this.res.writableEnded) {
      this.finish(true);
      return;
    }
    this.failure = classifyUpstreamError(error);
    if (this.res.headersSent) {
      // Too late for a clean error: cutting the connection tells the client the body is incomplete.
      this.res.destroy();
    } else {
      this.status = this.failure.status;
      sendApiError(this.res, this.failure.status, this.failure.error, this.failure.message, [
        'x-request-id',
        this.request.requestId,
      ]);
    }
    this.finish(false);
  }

  private readonly onClientDrain = (): void => {
    // The resume function belongs to the connection, which may serve another request by now.
    if (!this.upstreamPaused || this.finished) return;
    this.upstreamPaused = false;
    this.resumeUpstream?.();
  };

  private readonly onClientClose = (): void => {
    this.res.off('drain', this.onClientDrain);
    if (this.finished) return;
    // The client left mid-response: free the upstream connection instead of reading on.
    this.abortUpstream?.(new Error('client closed the connection'));
    this.finish(true);
  };

  private finish(clientAborted: boolean): void {
    if (this.finished) return;
    this.finished = true;
    this.observer.onForwardEnd({
      status: this.status,
      failure: this.failure,
      bytes: this.bytes,
      clientAborted,
      upstreamHeadersMs: this.headersAt - this.startedAt,
    });
  }
}

/** Streams `req` to the upstream and the answer back into `res`. Never throws. */
export function forward(
  upstream: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  request: ForwardRequest,
  observer: ForwardObserver,
): void {
  const handler = new ForwardHandler(res, request, observer);
  const idempotent = isIdempotent(request.method);
  try {
    upstream.dispatch(
      {
        path: request.path,
        method: request.method as Dispatcher.HttpMethod,
        headers: request.headers,
        body: hasBody(req) ? req : null,
        idempotent,
        // Non-idempotent requests must not queue behind (or ahead of) others on a pipelined socket.
        blocking: !idempotent,
      },
      handler,
    );
  } catch (error) {
    handler.onError(error as Error);
  }
}
