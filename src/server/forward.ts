/**
 * The forwarding step: one client request streamed to the upstream through undici's dispatcher and
 * the response streamed back. A raw dispatch handler (rather than @fastify/http-proxy or
 * `Pool.stream`) avoids stream plumbing per request; see "Forwarding" in docs/architecture.md for the numbers.
 *
 * undici's legacy handler callbacks (onConnect/onHeaders/onData/onComplete/onError) are used on
 * purpose: they receive raw header buffers and skip undici's per-request wrapper objects.
 *
 * No client may hold what others need: a body the client stops sending, or a response it stops
 * reading, is cut after `--client-stall-timeout`; a request that waits longer than
 * `--upstream-wait-timeout` for a pooled connection is answered 503; one client address holds at
 * most `--upstream-connections-per-client` upstream requests at once.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import { sendApiError } from './api-error.js';
import type { Watched } from './deadline-sweep.js';
import { type ForwardContext, ForwardCounters, type ForwardSettings } from './forward-context.js';
import { clientResponseHeaders } from './headers.js';
import {
  type BodyLimits,
  type BodyReceiver,
  hasBody,
  receiveBody,
  type UpstreamBody,
} from './request-body.js';
import { BodyTooLargeError, bodyTooLarge } from './request-limits.js';
import { classifyUpstreamError } from './upstream-errors.js';

/** A 401 body larger than this is passed on instead of being held for a retry. */
const HELD_BODY_LIMIT = 64 * 1024;

export class Forwarder<C extends ForwardContext> {
  readonly counters = new ForwardCounters();
  readonly bodyLimits: BodyLimits;

  constructor(readonly settings: ForwardSettings<C>) {
    this.bodyLimits = { maxBody: settings.maxBody, bufferSize: settings.bodyBuffer, now: settings.sweep.now };
  }

  /** Streams the request to the upstream and the answer back. Never throws. */
  forward(ctx: C): void {
    const handler = new ForwardHandler(this, ctx, false);
    const ahead = (ctx.req.socket as OrderedSocket)[RECEIVING];
    // A request pipelined behind one whose body is still being read goes upstream after it, in order.
    if (ahead !== undefined) ahead.follow(() => handler.start());
    else handler.start();
  }
}

const RECEIVING = Symbol('request body being received');

/** A client connection, with the request on it whose body is being read before it goes upstream. */
type OrderedSocket = Socket & { [RECEIVING]?: Leader | undefined };

interface Leader {
  follow(start: () => void): void;
}

const HANDLER = Symbol('forward handler');

type TrackedResponse = ServerResponse & { [HANDLER]?: ForwardHandler<ForwardContext> | undefined };

function onResponseClose(this: ServerResponse): void {
  (this as TrackedResponse)[HANDLER]?.onClientClose();
}

function onResponseDrain(this: ServerResponse): void {
  (this as TrackedResponse)[HANDLER]?.onClientDrain();
}

class ForwardHandler<C extends ForwardContext> implements Dispatcher.DispatchHandler, Watched, BodyReceiver {
  /** A 401 being held back while a fresh token is fetched: [statusText, headers, body chunks]. */
  private held: { statusText: string; headers: Buffer[]; chunks: Buffer[]; size: number } | undefined;
  private abortUpstream: ((error?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private upstreamPaused = false;
  private pausedAt = 0;
  private finished = false;
  private watched = false;
  private dispatchedAt = Number.NaN;
  private connected = false;
  private bodyComplete = true;
  bodyWaitingSince = Number.NaN;

  constructor(
    private readonly forwarder: Forwarder<C>,
    private readonly ctx: C,
    /** Takes over the client slot and in-flight count of a first attempt. */
    private holdsSlot: boolean,
  ) {
    // One listener function shared by every request (it finds its handler on the response), and
    // 'drain' only once a write has been refused: no closures or wrappers allocated per request.
    (ctx.res as TrackedResponse)[HANDLER] = this as unknown as ForwardHandler<ForwardContext>;
    ctx.res.on('close', onResponseClose);
  }

  start(): void {
    if (!hasBody(this.ctx.req)) {
      this.dispatch(null);
      return;
    }
    this.bodyComplete = false;
    this.watch();
    (this.ctx.req.socket as OrderedSocket)[RECEIVING] = this;
    receiveBody(this.ctx.req, this.forwarder.bodyLimits, this);
  }

  /** Requests pipelined behind this one while its body is read, started once it is dispatched. */
  private followers: Array<() => void> | undefined;

  follow(start: () => void): void {
    this.followers ??= [];
    this.followers.push(start);
  }

  /** This request is dispatched (or over): the requests behind it on the connection may go. */
  private releaseFollowers(): void {
    const socket = this.ctx.req.socket as OrderedSocket;
    if (socket[RECEIVING] !== this) return;
    socket[RECEIVING] = undefined;
    const followers = this.followers;
    this.followers = undefined;
    if (followers === undefined) return;
    for (let i = 0; i < followers.length; i++) {
      followers[i]!();
      // A follower that reads a body of its own has set itself as the connection's leader.
      const next = socket[RECEIVING] as Leader | undefined;
      if (next !== undefined) {
        // That one reads a body in turn: the rest wait for it.
        for (let j = i + 1; j < followers.length; j++) next.follow(followers[j]!);
        return;
      }
    }
  }

  dispatch(body: UpstreamBody): void {
    if (this.finished) return;
    const { settings, counters } = this.forwarder;
    const ctx = this.ctx;
    if (!this.holdsSlot) {
      if (!settings.slots.acquire(ctx.clientIp)) {
        counters.slotRefusals++;
        this.answer(
          503,
          'service_unavailable',
          'This client has too many requests in flight through the proxy; retry once some are answered.',
          'retry-after',
          '1',
        );
        this.finish(false);
        return;
      }
      this.holdsSlot = true;
      counters.inFlight++;
    }
    this.dispatchedAt = settings.sweep.now();
    counters.waiting++;
    // Only a request that may queue behind a busy pool needs its wait watched.
    if (counters.inFlight > settings.connections) this.watch();
    try {
      settings.upstream.dispatch(
        {
          path: ctx.path,
          method: ctx.method as Dispatcher.HttpMethod,
          headers: ctx.headers,
          // undici takes async iterables as bodies at runtime; its types leave them out.
          body: body as Dispatcher.DispatchOptions['body'],
        },
        this,
      );
    } catch (error) {
      this.onError(error as Error);
    }
  }

  onBodyReady(body: UpstreamBody): void {
    this.dispatch(body);
    this.releaseFollowers();
  }

  onBodyDone(): void {
    this.bodyComplete = true;
  }

  onBodyTooLarge(limit: number): void {
    if (!this.finished) this.refuseBody(limit);
  }

  onBodyAborted(): void {
    if (this.finished) return;
    this.ctx.res.destroy();
    this.finish(true);
  }

  private watch(): void {
    if (this.watched) return;
    this.watched = true;
    this.forwarder.settings.sweep.watch(this);
  }

  checkDeadlines(now: number): boolean {
    const { stallTimeoutMs, waitTimeoutMs } = this.forwarder.settings;
    const waiting = !this.connected && !Number.isNaN(this.dispatchedAt);
    if (!this.finished) {
      if (waiting && now - this.dispatchedAt >= waitTimeoutMs) this.noConnectionInTime();
      else if (now - this.bodyWaitingSince >= stallTimeoutMs) this.bodyStalled();
      else if (this.upstreamPaused && now - this.pausedAt >= stallTimeoutMs) this.readStalled();
    }
    this.watched = !this.finished && (waiting || !this.bodyComplete || this.upstreamPaused);
    return this.watched;
  }

  /** Every pooled connection stayed busy past --upstream-wait-timeout: 503, never a hang. */
  private noConnectionInTime(): void {
    const { counters, settings } = this.forwarder;
    counters.waitTimeouts++;
    this.answer(
      503,
      'service_unavailable',
      `No upstream connection became free within ${settings.waitTimeoutMs} ms.`,
      'retry-after',
      '1',
    );
    // The request stays queued in the pool until a connection frees; onConnect aborts it then.
    this.finish(false);
  }

  /** The client stopped sending its body: free the upstream connection, 408 if nothing was answered. */
  private bodyStalled(): void {
    this.forwarder.counters.bodyStalls++;
    if (this.ctx.res.headersSent) this.ctx.res.destroy();
    else {
      this.answer(
        408,
        'request_timeout',
        `The request body stalled for more than ${this.forwarder.settings.stallTimeoutMs} ms.`,
      );
    }
    // Finished first: the abort reports back through onError, which must not answer again.
    this.finish(true);
    this.abortUpstream?.(new Error('the client stopped sending its body'));
  }

  /** The client stopped reading the response: cut it and free the upstream connection. */
  private readStalled(): void {
    this.forwarder.counters.readStalls++;
    this.ctx.res.destroy();
    this.finish(true);
    this.abortUpstream?.(new Error('the client stopped reading the response'));
  }

  onConnect(abort: (error?: Error) => void): void {
    if (!this.connected) {
      this.connected = true;
      const counters = this.forwarder.counters;
      if (!this.finished) {
        counters.waiting--;
        counters.connected++;
        counters.waitMsTotal += this.forwarder.settings.sweep.now() - this.dispatchedAt;
      }
    }
    // The client left (or was answered) while the request waited for a connection: not sent at
    // all. Thrown rather than abort()ed: undici's abort also destroys the (keep-alive, maybe TLS)
    // connection, where a throw here fails only this request; under overload, clients giving up
    // would otherwise turn into a reconnect per request.
    // (Kept before abortUpstream is set: the error handler of a thrown request must not abort.)
    if (this.finished || this.ctx.res.destroyed) throw new Error('client closed the connection');
    this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx interim responses are the hop's business; Node answers the client's Expect itself.
    if (statusCode < 200) return true;
    const ctx = this.ctx;
    ctx.status = statusCode;
    ctx.upstreamHeadersMs = this.forwarder.settings.sweep.now() - this.dispatchedAt;
    this.resumeUpstream = resume;
    if (ctx.res.destroyed) {
      // Nobody will read this response: pausing instead would hold the upstream connection (and
      // a graceful shutdown waiting for it) forever.
      this.abortUpstream?.(new Error('client closed the connection'));
      return false;
    }
    if (statusCode === 401 && ctx.retryUnauthorized && !hasBody(ctx.req)) {
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
    return !this.ctx.req.complete || this.forwarder.settings.isDraining();
  }

  private writeHead(statusCode: number, statusText: string, rawHeaders: Buffer[]): void {
    const ctx = this.ctx;
    const headers = clientResponseHeaders(rawHeaders, ctx.requestId, this.closeAfter());
    if (ctx.limitHeaders) headers.push(...ctx.limitHeaders);
    ctx.res.writeHead(statusCode, statusText || undefined, headers);
  }

  /** An answer of the proxy's own in MercadoLibre's error shape. */
  private answer(status: number, error: string, message: string, ...extra: string[]): void {
    const ctx = this.ctx;
    ctx.status = status;
    extra.push('x-request-id', ctx.requestId);
    if (this.closeAfter()) extra.push('connection', 'close');
    ctx.bytes = sendApiError(ctx.res, status, error, message, extra);
  }

  /** Gives up holding a 401: what was held goes to the client as it came. */
  private releaseHeld(): void {
    const held = this.held!;
    this.held = undefined;
    this.writeHead(this.ctx.status, held.statusText, held.headers);
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
    const res = this.ctx.res;
    this.ctx.bytes += chunk.length;
    // Returning false pauses the upstream socket until the client drains: memory stays flat.
    if (res.write(chunk)) return true;
    if (!this.upstreamPaused) {
      res.once('drain', onResponseDrain);
      this.upstreamPaused = true;
      this.pausedAt = this.forwarder.settings.sweep.now();
      this.watch();
    }
    return false;
  }

  onComplete(): void {
    if (this.held) {
      this.retryWithFreshToken();
      return;
    }
    this.ctx.res.end();
    this.finish(false);
  }

  /** The upstream refused the injected token: refresh it once and send the request again. */
  private retryWithFreshToken(): void {
    const retry = this.ctx.retryUnauthorized!;
    const used = this.ctx.headers[retry.valueIndex]!;
    retry.refresh(used).then(
      (fresh) => this.afterRefresh(fresh !== used ? fresh : undefined),
      () => this.afterRefresh(undefined),
    );
  }

  private afterRefresh(fresh: string | undefined): void {
    const ctx = this.ctx;
    if (this.finished || ctx.res.destroyed) return;
    if (fresh === undefined) {
      this.releaseHeld();
      ctx.res.end();
      this.finish(false);
      return;
    }
    const retry = ctx.retryUnauthorized!;
    const headers = [...ctx.headers];
    headers[retry.valueIndex] = fresh;
    ctx.headers = headers;
    ctx.retryUnauthorized = undefined;
    // The second attempt reports through the same context; this handler steps aside without
    // finishing, handing over its client slot (the new handler takes over the response's listeners).
    ctx.res.off('close', onResponseClose);
    ctx.res.off('drain', onResponseDrain);
    this.upstreamPaused = false;
    this.finished = true;
    this.holdsSlot = false;
    new ForwardHandler(this.forwarder, ctx, true).dispatch(null);
  }

  onError(error: Error): void {
    if (this.finished) return;
    const ctx = this.ctx;
    const res = ctx.res;
    if (res.destroyed || res.writableEnded) {
      this.finish(true);
      return;
    }
    this.held = undefined;
    if (ctx.req.destroyed && ctx.req.errored) {
      // The client went away while its body was being sent (or before the end of it was read):
      // its failure, not the upstream's.
      res.destroy();
      this.finish(true);
      return;
    }
    if (error instanceof BodyTooLargeError) {
      // The client's fault, not the upstream's: the upstream request is aborted by now.
      this.refuseBody(error.limit);
      return;
    }
    const failure = classifyUpstreamError(error);
    ctx.failure = failure;
    // Too late for a clean error once headers left: cutting the connection tells the client the
    // body is incomplete.
    if (res.headersSent) res.destroy();
    else this.answer(failure.status, failure.error, failure.message);
    this.finish(false);
  }

  /** 413 while nothing was answered yet, else a cut; the connection closes either way. */
  private refuseBody(limit: number): void {
    const res = this.ctx.res;
    if (res.headersSent) res.destroy();
    else {
      const refusal = bodyTooLarge(limit);
      this.ctx.status = refusal.status;
      this.ctx.bytes = sendApiError(res, refusal.status, refusal.error, refusal.message, [
        'x-request-id',
        this.ctx.requestId,
        'connection',
        'close',
      ]);
    }
    this.finish(false);
    this.abortUpstream?.(new BodyTooLargeError(limit));
  }

  onClientDrain(): void {
    // The resume function belongs to the connection, which may serve another request by now.
    if (!this.upstreamPaused || this.finished) return;
    this.upstreamPaused = false;
    this.resumeUpstream?.();
  }

  onClientClose(): void {
    const res = this.ctx.res as TrackedResponse;
    if (this.upstreamPaused) res.off('drain', onResponseDrain);
    res[HANDLER] = undefined;
    if (this.finished) return;
    // The client left mid-response: free the upstream connection instead of reading on.
    this.abortUpstream?.(new Error('client closed the connection'));
    this.finish(true);
  }

  private finish(clientAborted: boolean): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.connected && !Number.isNaN(this.dispatchedAt)) this.forwarder.counters.waiting--;
    if (this.holdsSlot) {
      this.holdsSlot = false;
      this.forwarder.counters.inFlight--;
      this.forwarder.settings.slots.release(this.ctx.clientIp);
    }
    this.ctx.clientAborted = clientAborted;
    this.forwarder.settings.onEnd(this.ctx);
    this.releaseFollowers();
  }
}
