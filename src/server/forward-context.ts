/**
 * What the forwarding step works with: the per-request context it reads and writes its outcome
 * into, the settings fixed once per app, and the running totals it keeps for metrics.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { ClientSlots } from './client-slots.js';
import type { DeadlineSweep } from './deadline-sweep.js';
import type { UpstreamFailure } from './upstream-errors.js';

/** Lets an upstream 401 to a request sent with an injected token be retried once with a fresh token. */
export interface UnauthorizedRetry {
  /** Index in `ForwardContext.headers` of the injected Authorization value. */
  valueIndex: number;
  /** Resolves with a fresh Authorization value, or undefined when there is none to try. */
  refresh(used: string): Promise<string | undefined>;
}

/** What forwarding reads from the request's context, and the outcome it writes back into it. */
export interface ForwardContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  readonly path: string;
  readonly requestId: string;
  readonly clientIp: string;
  /** The upstream request headers, flat [name, value, …]. */
  headers: string[];
  /** Headers the proxy adds to the client response (rate-limit state). */
  limitHeaders: string[] | undefined;
  retryUnauthorized: UnauthorizedRetry | undefined;
  /** Outcome: the status answered (0 when none was). */
  status: number;
  /** Outcome: response body bytes written to the client. */
  bytes: number;
  /** Outcome: the client went away, or was cut, before the response was complete. */
  clientAborted: boolean;
  failure: UpstreamFailure | undefined;
  /** Outcome: ms from dispatch to the upstream's response headers (NaN when none came). */
  upstreamHeadersMs: number;
}

export interface ForwardSettings<C extends ForwardContext> {
  upstream: Dispatcher;
  /** Size of the upstream pool: more requests in flight than this wait for a connection. */
  connections: number;
  /** Ask clients to close their connection after this response (the server is draining). */
  isDraining: () => boolean;
  maxBody: number;
  bodyBuffer: number;
  stallTimeoutMs: number;
  waitTimeoutMs: number;
  slots: ClientSlots;
  sweep: DeadlineSweep;
  /** Called once per forwarded request when the client response is done or abandoned. */
  onEnd(ctx: C): void;
}

/** Running totals, read when metrics are scraped. */
export class ForwardCounters {
  /** Upstream requests dispatched and not finished. */
  inFlight = 0;
  /** Of those, the ones still waiting for a pooled connection. */
  waiting = 0;
  /** Requests that got an upstream connection, and their total wait for it. */
  connected = 0;
  waitMsTotal = 0;
  waitTimeouts = 0;
  bodyStalls = 0;
  readStalls = 0;
  slotRefusals = 0;
}
