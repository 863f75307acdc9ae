/**
 * One forwarded request's context: allocated once when the request arrives and carried through
 * every stage (match → decide → forward → record), each stage filling in what the next one reads,
 * so no stage passes values along or allocates its own bookkeeping.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Span } from '@opentelemetry/api';
import type { FastifyReply } from 'fastify';
import type { ForwardContext, UnauthorizedRetry } from './forward-context.js';
import type { ForwardedInfo } from './headers.js';
import type { UpstreamAuth } from './upstream-auth.js';
import type { UpstreamFailure } from './upstream-errors.js';

const NO_HEADERS: string[] = [];

export class ProxyRequest implements ForwardContext, ForwardedInfo {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  // match
  method = '';
  /** The upstream path (origin-form, byte for byte). */
  path = '';
  /** The normalized path the rules and the route table see. */
  normalized = '';
  route = 0;
  clientIp = '';
  /** The socket's peer, and whether it is a trusted proxy. */
  peerIp = '';
  peerTrusted = false;
  /** With several accounts (--inject-token): the chosen account's token and its user id. */
  accountAuth: UpstreamAuth | undefined = undefined;
  account: string | undefined = undefined;
  /** `account` once its token is in the upstream request (statistics count only those). */
  injectedAccount: string | undefined = undefined;
  // decide
  limitHeaders: string[] | undefined = undefined;
  // forward
  headers: string[] = NO_HEADERS;
  retryUnauthorized: UnauthorizedRetry | undefined = undefined;
  // record
  status = 0;
  bytes = 0;
  clientAborted = false;
  failure: UpstreamFailure | undefined = undefined;
  upstreamHeadersMs = Number.NaN;
  // trace (set when forwarded)
  traceId = '';
  span: Span | undefined = undefined;

  constructor(
    readonly reply: FastifyReply,
    /** performance.now() at arrival: durations count any wait for a lease or a token refresh. */
    readonly startedAt: number,
  ) {
    this.req = reply.request.raw;
    this.res = reply.raw;
    this.requestId = String(reply.request.id);
  }
}
