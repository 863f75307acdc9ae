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
import { BodyTooLargeError, bodyTooLarge, upstreamBody } from './request-limits.js';
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

/** Lets an upstream 401 to a request sent with an injected token be retried once with a fresh token. */
export interface UnauthorizedRetry {
  /** Index in `ForwardRequest.headers` of the injected Authorization value. */
  valueIndex: number;
  /** Resolves with a fresh Authorization value, or undefined when there is none to try. */
  refresh(used: string): Promise<string | undefined>;
}

export interface ForwardRequest {
  method: string;
  path: string;
  headers: string[];
  requestId: string;
  /** Ask the client to close its connection after this response (the server is draining). */
  closeAfter: () => boolean;
  /** Headers the proxy adds to the client response (rate-limit state). */
  extraResponseHeaders?: readonly string[] | undefined;
  retryUnauthorized?: UnauthorizedRetry | undefined;
  /** Largest body passed on (`--max-body`; 0 or absent: no limit). */
  maxBody?: number | undefined;
}

/** A 401 body larger than this is passed on instead of being held for a retry. */
const HELD_BODY_LIMIT = 64 * 1024;

/** Methods that are safe to pipeline and to retry on a fresh connection. */
function isIdempotent(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

const HANDLER = Symbol('forward handler');

type TrackedResponse = ServerResponse & { [HANDLER]?: ForwardHandler | undefined };

function onResponseClose(this: ServerResponse): void {
  (this as TrackedResponse)[HANDLER]?.onClientClose();
}

function onResponseDrain(this: ServerResponse): void {
  (this as TrackedResponse)[HANDLER]?.onClientDrain();
}

class ForwardHandler implements Dispatcher.DispatchHandler {
  /** A 401 being held back while a fresh token is fetched: [statusText, headers, body chunks]. */
  private held: { statusText: string; headers: Buffer[]; chunks: Buffer[]; size: number } | undefined;
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
    private readonly upstream: Dispatcher,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly request: ForwardRequest,
    private readonly observer: ForwardObserver,
  ) {
    // One listener function shared by every request (it finds its handler on the response), and
    // 'drain' only once a write has been refused: no closures or wrappers allocated per request.
    (res as TrackedResponse)[HANDLER] = this;
    res.on('close', onResponseClose);
  }

  dispatch(): void {
    const idempotent = isIdempotent(this.request.method);
    try {
      this.upstream.dispatch(
        {
          path: this.request.path,
          method: this.request.method as Dispatcher.HttpMethod,
          headers: this.request.headers,
          // undici takes async iterables as bodies at runtime; its types leave them out.
          body: upstreamBody(this.req, this.request.maxBody ?? 0) as Dispatcher.DispatchOptions['body'],
          idempotent,
          // Non-idempotent requests must not queue behind (or ahead of) others on a pipelined socket.
          blocking: !idempotent,
        },
        this,
      );
    } catch (error) {
      this.onError(error as Error);
    }
  }

  onConnect(abort: (error?: Error) => void): void {
    // The client left while the request waited for a connection: it is not sent at all. Thrown
    // rather than abort()ed: undici's abort also destroys the (keep-alive, maybe TLS) connection,
    // where a throw here fails only this request. Under overload, clients giving up would
    // otherwise turn into a reconnect per request.
    if (this.res.destroyed) throw new Error('client closed the connection');
    this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx interim responses are the hop's business; Node answers the client's Expect itself.
    if (statusCode < 200) return true;
    this.status = statusCode;
    this.headersAt = performance.now();
    this.resumeUpstream = resume;
    if (this.res.destroyed) {
      // Nobody will read this response: pausing instead would hold the upstream connection (and
      // a graceful shutdown waiting for it) forever.
      this.abortUpstream?.(new Error('client closed the connection'));
      return false;
    }
    if (statusCode === 401 && this.request.retryUnauthorized && !hasBody(this.req)) {
      this.held = { statusText, headers: rawHeaders, chunks: [], size: 0 };
      return true;
    }
    this.writeHead(statusCode, statusText, rawHeaders);
    return true;
  }

  /**
   * Whether the client connection must close after this response: the server is draining, or the
   * request body is not all in. undici stops reading a body once the upstream has answered or failed
   * (it destroys the request after detaching it from its socket, or leaves a counted body's iterator
   * paused), so Node would never read on to the next request on the connection; `connection: close`
   * makes Node end the socket once the response is written instead.
   */
  private closeAfter(): boolean {
    return !this.req.complete || this.request.closeAfter();
  }

  private writeHead(statusCode: number, statusText: string, rawHeaders: Buffer[]): void {
    const headers = clientResponseHeaders(rawHeaders, this.request.requestId, this.closeAfter());
    if (this.request.extraResponseHeaders) headers.push(...this.request.extraResponseHeaders);
    this.res.writeHead(statusCode, statusText || undefined, headers);
  }

  /** Gives up holding a 401: what was held goes to the client as it came. */
  private releaseHeld(): void {
    const held = this.held!;
    this.held = undefined;
    this.writeHead(this.status, held.statusText, held.headers);
    for (const chunk of held.chunks) this.writeChunk(chunk);
  }

  onData(chunk: Buffer): boolean {
    const held = this.held;
    if (held) {
      held.chunks.push(chunk);
      held.size += chunk.length;
      if (held.size <= HELD_BODY_LIMIT) return true;
      this.releaseHeld();
      return !this.upstreamPaused;
    }
    return this.writeChunk(chunk);
  }

  private writeChunk(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    // Returning false pauses the upstream socket until the client drains: memory stays flat.
    if (this.res.write(chunk)) return true;
    if (!this.upstreamPaused) this.res.once('drain', onResponseDrain);
    this.upstreamPaused = true;
    return false;
  }

  onComplete(): void {
    if (this.held) {
      this.retryWithFreshToken();
      return;
    }
    this.res.end();
    this.finish(false);
  }

  /** The upstream refused the injected token: refresh it once and send the request again. */
  private retryWithFreshToken(): void {
    const retry = this.request.retryUnauthorized!;
    const used = this.request.headers[retry.valueIndex]!;
    retry.refresh(used).then(
      (fresh) => this.afterRefresh(fresh !== used ? fresh : undefined),
      () => this.afterRefresh(undefined),
    );
  }

  private afterRefresh(fresh: string | undefined): void {
    if (this.finished || this.res.destroyed) return;
    if (fresh === undefined) {
      this.releaseHeld();
      this.res.end();
      this.finish(false);
      return;
    }
    const retry = this.request.retryUnauthorized!;
    const headers = [...this.request.headers];
    headers[retry.valueIndex] = fresh;
    // The second attempt reports to the same observer; this handler steps aside without finishing
    // (the new handler takes over the response's listeners).
    this.res.off('close', onResponseClose);
    this.res.off('drain', onResponseDrain);
    this.upstreamPaused = false;
    this.finished = true;
    new ForwardHandler(
      this.upstream,
      this.req,
      this.res,
      { ...this.request, headers, retryUnauthorized: undefined },
      this.observer,
    ).dispatch();
  }

  onError(error: Error): void {
    if (this.finished) return;
    if (this.res.destroyed || this.res.writableEnded) {
      this.finish(true);
      return;
    }
    this.held = undefined;
    if (this.req.destroyed && this.req.errored) {
      // The client went away while its body was being sent (or before the end of it was read):
      // its failure, not the upstream's.
      this.res.destroy();
      this.finish(true);
      return;
    }
    if (error instanceof BodyTooLargeError) {
      // The client's fault, not the upstream's: the upstream request is aborted by now.
      this.refuseBody(error.limit);
      return;
    }
    this.failure = classifyUpstreamError(error);
    if (this.res.headersSent) {
      // Too late for a clean error: cutting the connection tells the client the body is incomplete.
      this.res.destroy();
    } else {
      this.status = this.failure.status;
      const extra = ['x-request-id', this.request.requestId];
      if (this.closeAfter()) extra.push('connection', 'close');
      sendApiError(this.res, this.failure.status, this.failure.error, this.failure.message, extra);
    }
    this.finish(false);
  }

  /** 413 while nothing was answered yet, else a cut; the connection closes either way. */
  private refuseBody(limit: number): void {
    if (this.res.headersSent) {
      this.res.destroy();
      this.finish(false);
      return;
    }
    const refusal = bodyTooLarge(limit);
    this.status = refusal.status;
    sendApiError(this.res, refusal.status, refusal.error, refusal.message, [
      'x-request-id',
      this.request.requestId,
      'connection',
      'close',
    ]);
    this.finish(false);
  }

  onClientDrain(): void {
    // The resume function belongs to the connection, which may serve another request by now.
    if (!this.upstreamPaused || this.finished) return;
    this.upstreamPaused = false;
    this.resumeUpstream?.();
  }

  onClientClose(): void {
    if (this.upstreamPaused) this.res.off('drain', onResponseDrain);
    (this.res as TrackedResponse)[HANDLER] = undefined;
    if (this.finished) return;
    // The client left mid-response: free the upstream connection instead of reading on.
    this.abortUpstream?.(new Error('client closed the connection'));
    this.finish(true);
  }

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
  new ForwardHandler(upstream, req, res, request, observer).dispatch();
}
