/**
 * The Fastify app on the proxy port: the reserved endpoints and one catch-all route that forwards
 * everything else to the configured upstream, and only there.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP, type Socket } from 'node:net';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Dispatcher } from 'undici';
import type { Config } from '../config.js';
import { type Decision, normalizePath } from '../limits/index.js';
import { type Logger, loggableUrl } from '../logger.js';
import { sendApiError } from './api-error.js';
import { createClientErrorHandler, serverOptions } from './client-guards.js';
import { type ForwardObserver, type ForwardOutcome, forward, type UnauthorizedRetry } from './forward.js';
import { upstreamRequestHeaders } from './headers.js';
import { createInjectionGuard } from './injection-guard.js';
import { methodIndex, type ProxyMetrics } from './metrics.js';
import type { RateLimitGate } from './rate-limit.js';
import { continueUnlessRefused, requestRefusal } from './request-limits.js';
import type { RouteTable } from './routes.js';
import type { ServerState } from './state.js';
import type { StatsRecorder } from './stats/recorder.js';
import type { TrustFunction } from './trusted-proxies.js';
import { injectAuthorization, type UpstreamAuth } from './upstream-auth.js';

export const RESERVED_PATHS = ['/health', '/ready', '/metrics'] as const;
const RESERVED = new Set<string>(RESERVED_PATHS);

const REQUEST_ID = /^[\w.:@+=/-]{1,128}$/;

/** Keeps a caller's X-Request-Id when it is sane, so one id follows a call through every hop. */
export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * The upstream path for a request target. Origin-form is passed on byte for byte (percent-encoding
 * preserved); absolute-form keeps only its path and query, so the destination never changes.
 */
export function upstreamPath(target: string): string | undefined {
  if (target.startsWith('/')) return target;
  const match = /^https?:\/\/[^/?#]*(.*)$/i.exec(target);
  if (!match) return undefined;
  const rest = match[1]!;
  if (rest.startsWith('/')) return rest;
  if (rest.startsWith('?')) return `/${rest}`;
  return rest.length === 0 ? '/' : undefined;
}

export interface ProxyAppOptions {
  config: Config;
  logger: Logger;
  metrics: ProxyMetrics;
  upstream: Dispatcher;
  state: ServerState;
  trust: TrustFunction;
  upstreamAuth?: UpstreamAuth | undefined;
  stats: StatsRecorder;
  routes: RouteTable;
  rateLimit?: RateLimitGate | undefined;
}

/** One forwarded request's bookkeeping: metrics, statistics and the access log line when it ends. */
class ForwardRecord implements ForwardObserver {
  constructor(
    private readonly options: ProxyAppOptions,
    private readonly req: IncomingMessage,
    private readonly requestId: string,
    private readonly clientIp: string,
    private readonly method: number,
    private readonly route: number,
    private readonly startedAt: number,
  ) {}

  onForwardEnd(outcome: ForwardOutcome): void {
    const { metrics, logger, config, stats } = this.options;
    const status = outcome.clientAborted && outcome.status === 0 ? 499 : outcome.status;
    const ms = performance.now() - this.startedAt;
    metrics.requestFinished(this.method, this.route, status, ms, outcome.upstreamHeadersMs);
    stats.record(this.route, status, outcome.bytes, ms, this.clientIp);
    if (outcome.failure) {
      metrics.upstreamError(outcome.failure.kind);
      logger.warn(
        { reqId: this.requestId, kind: outcome.failure.kind, status, url: loggableUrl(this.req.url ?? '') },
        'upstream request failed',
      );
    }
    if (config.accessLog) {
      logger.info(
        {
          reqId: this.requestId,
          method: this.req.method,
          url: loggableUrl(this.req.url ?? ''),
          status,
          bytes: outcome.bytes,
          ms: Math.round(ms * 10) / 10,
          ip: this.clientIp,
          aborted: outcome.clientAborted || undefined,
        },
        'request',
      );
    }
  }
}

/** Answers a request the proxy will not forward; counted like any other response. */
function refuse(
  options: ProxyAppOptions,
  reply: FastifyReply,
  route: number,
  status: number,
  error: string,
  message: string,
  extra?: string[],
): void {
  reply.hijack();
  const ms = reply.elapsedTime;
  options.metrics.countResponse(methodIndex(reply.request.raw.method ?? ''), route, status, ms);
  options.stats.record(route, status, 0, ms, reply.request.ip);
  sendApiError(reply.raw, status, error, message, [
    ...(extra ?? []),
    'x-request-id',
    String(reply.request.id),
  ]);
}

export async function buildProxyApp(options: ProxyAppOptions): Promise<FastifyInstance> {
  const { config, logger, metrics, upstream, state, trust, upstreamAuth, routes, rateLimit } = options;
  const upstreamHost = config.upstream.host;
  // With --inject-token: which clients get the token, and which Host names are refused.
  const injection = upstreamAuth ? createInjectionGuard(config) : undefined;
  const injects = (clientIp: string): boolean => injection?.allowsClient(clientIp) === true;

  const app = Fastify({
    // No logger for Fastify here: given one, it adds 'finish'/'error' listeners and timestamps to
    // every response (to log request completion, which is off anyway). What this app logs, it logs
    // itself through `logger`: failures in the error handler, upstream errors, the access log.
    trustProxy: config.trustProxy.length > 0 ? (address: string) => trust(address) : false,
    genReqId: requestIdFor,
    return503OnClosing: true,
    // Slow or oversized clients: Node's limits, set from the configuration (see serverOptions).
    http: serverOptions(config),
    requestTimeout: config.requestTimeout,
    keepAliveTimeout: config.keepAliveTimeout,
    clientErrorHandler: createClientErrorHandler((status) =>
      metrics.countResponse(methodIndex(''), routes.otherId, status, 0),
    ),
    // A target the router cannot decode (`/items/%ZZ`) is still just a path to the upstream: it is
    // forwarded byte for byte like any other, and the upstream answers it.
    frameworkErrors: (error, request, reply) => {
      if (error.code === 'FST_ERR_BAD_URL') handleForward(request, reply);
      else refuse(options, reply, routes.otherId, 400, 'bad_request', 'The request target is not valid.');
    },
  });

  // Bodies are never parsed here: they stream to the upstream untouched.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  // Probes and scrapes are not usage: they are answered without counting.
  app.get('/health', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'ok' };
  });

  app.get('/ready', async (_request, reply) => {
    const readiness = await state.readiness();
    reply.code(readiness.ready ? 200 : 503).header('cache-control', 'no-store');
    return { status: readiness.ready ? 'ready' : 'not_ready', reasons: readiness.reasons };
  });

  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.contentType).header('cache-control', 'no-store');
    return metrics.render();
  });

  const refuseTarget = (reply: FastifyReply): void =>
    refuse(
      options,
      reply,
      routes.otherId,
      400,
      'bad_request',
      'The request target must be a path such as /items/MLA123.',
    );

  const METHODS_ALLOWED = ['allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'];

  /**
   * Connections answered with `connection: close` because their framing or size was refused. Node
   * goes on parsing what the client already sent on them; none of it may reach the upstream.
   */
  const closing = new WeakSet<Socket>();

  const handleForward = (request: FastifyRequest, reply: FastifyReply): void => {
    // A request's duration (metrics, access log) counts from its arrival, any wait for a
    // rate-limit lease or a token refresh included.
    const startedAt = performance.now();
    const req = request.raw;
    if (closing.has(req.socket)) {
      // Never answered: Node closes the connection once the refusal is written.
      reply.hijack();
      return;
    }
    const method = req.method ?? 'GET';
    const path = upstreamPath(req.url ?? '');
    if (path === undefined) {
      refuseTarget(reply);
      return;
    }
    const normalized = normalizePath(path);
    const route = routes.idOf(normalized);
    if (method === 'TRACE') {
      refuse(
        options,
        reply,
        route,
        405,
        'method_not_allowed',
        'TRACE is not forwarded by this proxy.',
        METHODS_ALLOWED,
      );
      return;
    }
    // GET and HEAD on these paths have their own routes; any other method lands here.
    if (RESERVED.has(normalized)) {
      refuse(options, reply, route, 405, 'method_not_allowed', `${normalized} only answers GET and HEAD.`, [
        'allow',
        'GET, HEAD',
      ]);
      return;
    }
    const refusal = requestRefusal(req, config.maxBody);
    if (refusal) {
      closing.add(req.socket);
      refuse(options, reply, route, refusal.status, refusal.error, refusal.message, ['connection', 'close']);
      return;
    }
    // A trusted peer's X-Forwarded-For names the client; a value there that is no address (a port
    // appended, garbage passed through) must not become a counter key of its own.
    const clientIp =
      config.trustProxy.length > 0 && isIP(request.ip) === 0 ? (req.socket.remoteAddress ?? '') : request.ip;
    const misdirected = injection?.refuseHost(req.headers.host);
    if (misdirected) {
      refuse(options, reply, route, misdirected.status, misdirected.error, misdirected.message);
      return;
    }
    const decision = rateLimit?.decide(req, clientIp, method, normalized);
    if (decision instanceof Promise) {
      // Rare (workers of `serve --workers N` holding rate-limit leases): a counter of this request
      // has no permit yet; the decision comes once the primary has answered (or --on-store-error
      // has decided). Anything thrown after it still ends in the error handler, never in a crash.
      decision
        .then((later) => {
          if (closing.has(req.socket)) {
            // Another request on this connection was refused meanwhile: the connection is closing.
            reply.hijack();
            return;
          }
          admit(request, reply, method, path, clientIp, route, later, startedAt);
        })
        .catch((error: unknown) => {
          if (!reply.sent) reply.send(error instanceof Error ? error : new Error(String(error)));
          else {
            logger.error({ reqId: request.id, err: error }, 'request failed inside the proxy');
            req.socket.destroy();
          }
        });
      return;
    }
    admit(request, reply, method, path, clientIp, route, decision, startedAt);
  };

  /** Applies the rate-limit decision (undefined: no rule applied) and forwards what it admits. */
  const admit = (
    request: FastifyRequest,
    reply: FastifyReply,
    method: string,
    path: string,
    clientIp: string,
    route: number,
    decision: Decision | undefined,
    startedAt: number,
  ): void => {
    let limitHeaders: string[] | undefined;
    if (decision && rateLimit) {
      limitHeaders = rateLimit.headers(decision);
      for (const rule of decision.shadowExceeded) {
        metrics.shadowExceededBy(rule);
        options.stats.recordRule(rule);
      }
      if (!decision.allowed) {
        const rule = decision.rejectedBy ?? 'unknown';
        metrics.rateLimitedBy(rule);
        options.stats.recordRule(rule);
        refuse(
          options,
          reply,
          route,
          429,
          'too_many_requests',
          `Rate limit "${rule}" exceeded: retry in ${decision.retryAfterSeconds} s.`,
          limitHeaders,
        );
        return;
      }
    }
    reply.hijack();
    const req = request.raw;
    const res: ServerResponse = reply.raw;
    if (
      upstreamAuth?.authorizationSoon &&
      injects(clientIp) &&
      (req.headers.authorization === undefined || upstreamAuth.overrideClientToken) &&
      upstreamAuth.currentAuthorization() === undefined
    ) {
      // Rare: the token is past its usable time and its refresh is under way. A moment's wait
      // (bounded by the token manager) beats a call the upstream would take as anonymous.
      const soon = upstreamAuth.authorizationSoon();
      if (soon) {
        soon
          .then(() => sendUpstream(request, res, method, path, clientIp, route, limitHeaders, startedAt))
          .catch((error: unknown) => {
            logger.error({ reqId: request.id, err: error }, 'request failed inside the proxy');
            res.destroy();
          });
        return;
      }
    }
    sendUpstream(request, res, method, path, clientIp, route, limitHeaders, startedAt);
  };

  /** Builds the upstream request (forwarding headers, injected token) and forwards it. */
  const sendUpstream = (
    request: FastifyRequest,
    res: ServerResponse,
    method: string,
    path: string,
    clientIp: string,
    route: number,
    limitHeaders: string[] | undefined,
    startedAt: number,
  ): void => {
    const req = request.raw;
    const peerIp = req.socket.remoteAddress ?? '';
    const requestId = String(request.id);
    const headers = upstreamRequestHeaders(req.rawHeaders, {
      clientIp,
      peerIp,
      peerTrusted: config.trustProxy.length > 0 && trust(peerIp),
      upstreamHost,
      requestId,
    });
    let retryUnauthorized: UnauthorizedRetry | undefined;
    if (upstreamAuth && injects(clientIp)) {
      const valueIndex = injectAuthorization(headers, upstreamAuth, req.headers.authorization !== undefined);
      if (valueIndex !== -1 && (method === 'GET' || method === 'HEAD' || method === 'OPTIONS')) {
        retryUnauthorized = { valueIndex, refresh: (used) => upstreamAuth.refreshAfterUnauthorized(used) };
      }
    }
    metrics.requestStarted();
    forward(
      upstream,
      req,
      res,
      {
        method,
        path,
        headers,
        requestId,
        closeAfter: state.isDraining,
        extraResponseHeaders: limitHeaders,
        retryUnauthorized,
        maxBody: config.maxBody,
      },
      new ForwardRecord(options, req, requestId, clientIp, methodIndex(method), route, startedAt),
    );
  };

  app.all('/*', handleForward);
  app.all('/', handleForward);

  app.setNotFoundHandler((request, reply) => {
    const target = request.raw.url ?? '';
    if (!target.startsWith('/') && upstreamPath(target) === undefined) {
      refuseTarget(reply);
      return;
    }
    const route = routes.idOf(normalizePath(upstreamPath(target) ?? '/'));
    refuse(
      options,
      reply,
      route,
      405,
      'method_not_allowed',
      `Method ${request.raw.method} is not forwarded by this proxy.`,
      METHODS_ALLOWED,
    );
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status >= 500) logger.error({ reqId: request.id, err: error }, 'request failed inside the proxy');
    refuse(
      options,
      reply,
      routes.otherId,
      status,
      status === 500 ? 'internal_error' : 'bad_request',
      status === 500 ? 'The proxy failed to handle the request.' : error.message,
    );
  });

  app.server.on('checkContinue', continueUnlessRefused(app.server, config.maxBody));

  // CONNECT never reaches routing: Node hands it to 'connect' listeners, or drops the socket without one.
  app.server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    // The socket is detached from the HTTP server here: it needs its own error handling, reading
    // (or it never closes while the client keeps sending) and an idle timeout.
    socket.on('error', () => socket.destroy());
    socket.resume();
    socket.setTimeout(5000, () => socket.destroy());
    const body = JSON.stringify({
      message: 'CONNECT is not supported by this proxy.',
      error: 'method_not_allowed',
      status: 405,
      cause: [],
    });
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\nx-request-id: ${randomUUID()}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    metrics.countResponse(methodIndex('CONNECT'), routes.otherId, 405, 0);
  });

  return app;
}
