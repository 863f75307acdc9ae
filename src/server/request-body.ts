/**
 * Receiving a request body before and while it goes upstream. A body that fits in the buffer
 * (`--body-buffer`, like nginx's `client_body_buffer_size`) is read whole before an upstream
 * connection is taken, so a slow small upload never holds one; a larger body streams, counted
 * against `--max-body`. Either way the receiver learns when the proxy is waiting on the client,
 * which is what the stall deadline measures (a wait on the upstream's reading is not the client's).
 */
import type { IncomingMessage } from 'node:http';
import { BodyTooLargeError } from './request-limits.js';

export type UpstreamBody = Buffer | AsyncIterable<Buffer> | null;

export interface BodyReceiver {
  /** The proxy is now waiting for body bytes from the client (`since`), or is not (NaN). */
  bodyWaitingSince: number;
  /** The body as undici should send it: ready to be dispatched. */
  onBodyReady(body: UpstreamBody): void;
  /** More than `--max-body` arrived before anything was dispatched. */
  onBodyTooLarge(limit: number): void;
  /** The client went away before its body was complete. */
  onBodyAborted(): void;
  /** Marks the body complete: nothing more is awaited from the client. */
  onBodyDone(): void;
}

export interface BodyLimits {
  maxBody: number;
  bufferSize: number;
  now: () => number;
}

export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/** Reads (or starts streaming) the body of `req`, which must have one (see hasBody). */
export function receiveBody(req: IncomingMessage, limits: BodyLimits, receiver: BodyReceiver): void {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limits.bufferSize) {
    receiver.onBodyReady(streamed(req, [], 0, limits, receiver));
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  receiver.bodyWaitingSince = limits.now();
  const stop = (): void => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onClose);
  };
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    receiver.bodyWaitingSince = limits.now();
    if (limits.maxBody > 0 && received > limits.maxBody) {
      stop();
      req.pause();
      receiver.onBodyTooLarge(limits.maxBody);
      return;
    }
    chunks.push(chunk);
    if (received > limits.bufferSize) {
      // Too large to hold: the rest streams behind what was read. Until the upstream asks for it
      // (a pooled connection may take a while) the proxy is not waiting on the client.
      stop();
      req.pause();
      receiver.bodyWaitingSince = Number.NaN;
      receiver.onBodyReady(streamed(req, chunks, received, limits, receiver));
    }
  };
  const onEnd = (): void => {
    stop();
    receiver.onBodyDone();
    receiver.onBodyReady(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
  };
  const onClose = (): void => {
    stop();
    if (!req.complete) receiver.onBodyAborted();
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('close', onClose);
}

/** What was read so far, then the rest of the request stream, held to `maxBody`. */
async function* streamed(
  req: IncomingMessage,
  head: Buffer[],
  alreadyReceived: number,
  limits: BodyLimits,
  receiver: BodyReceiver,
): AsyncGenerator<Buffer> {
  for (const chunk of head) yield chunk;
  let received = alreadyReceived;
  // destroyOnReturn false: stopping early must not destroy the socket before a 413 is written.
  const rest = req.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>;
  try {
    for (;;) {
      receiver.bodyWaitingSince = limits.now();
      const next = await rest.next();
      receiver.bodyWaitingSince = Number.NaN;
      if (next.done) break;
      received += next.value.length;
      if (limits.maxBody > 0 && received > limits.maxBody) throw new BodyTooLargeError(limits.maxBody);
      yield next.value;
    }
  } finally {
    receiver.bodyWaitingSince = Number.NaN;
    receiver.onBodyDone();
    await rest.return?.();
  }
}
