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
import type { Logger } from '../logger.js';
import { endingSpans, PROPAGATE_ONLY, type Tracing } from '../tracing/index.js';
import { sendApiError } from './api-error.js';
import { createClientErrorHandler, serverOptions } from './client-guards.js';
import { ClientSlots } from './client-slots.js';
import { DeadlineSweep } from './deadline-sweep.js';
import { Forwarder } from './forward.js';
import { answerRecorder, forwardRecorder } from './forward-record.js';
import { upstreamRequestHeaders } from './headers.js';
import { createInjectionGuard } from './injection-guard.js';
import { methodIndex, type ProxyMetrics } from './metrics.js';
import { contentTypeOf, negotiateMetricsFormat } from './metrics-openmetrics.js';
import type { RateLimitGate } from './rate-limit.js';
import { ProxyRequest } from './request-context.js';
import { continueUnlessRefused, requestRefusal } from './request-limits.js';
import type { RouteTable } from './routes.js';
import type { ServerState } from './state.js';
import type { StatsRecorder } from './stats/recorder.js';
import type { TrustFunction } from './trusted-proxies.js';
import { injectAuthorization, stripAccountHeader, type UpstreamAuth } from './upstream-auth.js';
import { registerUpstreamLoadMetrics, upstreamLoad } from './upstream-load.js';

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
  /** W3C trace propagation, and span export when configured (default: propagation only). */
  tracing?: Tracing | undefined;
}

const METHODS_ALLOWED = ['allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'];

export async function buildProxyApp(options: ProxyAppOptions): Promise<FastifyInstance> {
  const { config, logger, metrics, upstream, state, trust, upstreamAuth, routes, rateLimit, stats } = options;
  const upstreamHost = config.upstream.host;
  // With --inject-token: which clients get the token, and which Host names are refused.
  const injection = upstreamAuth ? createInjectionGuard(config) : undefined;
  const injects = (clientIp: string): boolean => injection?.allowsClient(clientIp) === true;
  const requestLimits = { maxBody: config.maxBody, maxHeaderFields: config.maxHeaderFields };
  const tracing = options.tracing ?? PROPAGATE_ONLY;
  const headerPolicy = { upstreamHost, underscoresInHeaders: config.underscoresInHeaders, tracing };

  const recordAnswer = answerRecorder({ metrics, stats, logger, accessLog: config.accessLog });

  /**
   * Answers a request the proxy will not forward; recorded like any other response. `ctx`, when the
   * request got that far, gives its arrival time and client; otherwise the handler's entry is the
   * arrival, as it is for a forwarded request.
   */
  const refuse = (
    reply: FastifyReply,
    route: number,
    status: number,
    error: string,
    message: string,
    extra?: string[],
    ctx?: ProxyRequest,
  ): void => {
    const startedAt = ctx?.startedAt ?? performance.now();
    reply.hijack();
    const request = reply.request;
    const requestId = String(request.id);
    const bytes = sendApiError(reply.raw, status, error, message, [
      ...(extra ?? []),
      'x-request-id',
      requestId,
    ]);
    recordAnswer({
      requestId,
      method: request.raw.method ?? '',
      url: request.raw.url ?? '',
      route,
      status,
      bytes,
      startedAt,
      clientIp: ctx?.clientIp || request.ip,
    });
  };

  const app = Fastify({
    // No logger for Fastify here: given one, it adds 'finish'/'error' listeners and timestamps to
    // every response (to log request completion, which is off anyway). What this app logs, it logs
    // itself through `logger`: failures in the error handler, upstream errors, the access log.
    trustProxy: config.trustProxy.length > 0 ? (address: string) => trust(address) : false,
    genReqId: requestIdFor,
    return503OnClosing: true,
    // Slow or oversized clients: Node's limits, set from the configuration (see serverOptions).
    // Node's own answer to a missing Host is a bare 400 that keeps the connection open, so a request
    // pipelined behind it would still be served: requestRefusal answers it instead, and closes.
    http: { ...serverOptions(config), requireHostHeader: false },
    requestTimeout: config.requestTimeout,
    keepAliveTimeout: config.keepAliveTimeout,
    // A timed-out request lasted at least the timeout that ended it; a malformed one is answered as
    // its bytes arrive, and when its first byte came is not known.
    clientErrorHandler: createClientErrorHandler((status, bytes, code) => {
      const ms =
        code === 'ERR_HTTP_HEADERS_TIMEOUT'
          ? config.headersTimeout
          : code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? config.requestTimeout
            : 0;
      metrics.countResponse(methodIndex(''), routes.otherId, status, ms, bytes);
    }),
    // A target the router cannot decode (`/items/%ZZ`) is still just a path to the upstream: it is
    // forwarded byte for byte like any other, and the upstream answers it.
    frameworkErrors: (error, request, reply) => {
      if (error.code === 'FST_ERR_BAD_URL') handleForward(request, reply);
      else refuse(reply, routes.otherId, 400, 'bad_request', 'The request target is not valid.');
    },
  });
  // Node would drop the fields past its count silently, the body's framing among them; every field
  // is kept and a request with too many is refused (requestRefusal).
  app.server.maxHeadersCount = 0;

  // Bodies are never parsed here: they stream to the upstream untouched.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  const forwarder = new Forwarder<ProxyRequest>({
    upstream,
    connections: config.upstreamConnections,
    isDraining: state.isDraining,
    maxBody: config.maxBody,
    bodyBuffer: config.bodyBuffer,
    stallTimeoutMs: config.clientStallTimeout,
    waitTimeoutMs: config.upstreamWaitTimeout,
    slots: new ClientSlots(config.upstreamConnectionsPerClient),
    // A deadline is acted on at most a quarter of the shortest one late.
    sweep: new DeadlineSweep({
      intervalMs: Math.max(
        10,
        Math.min(1000, Math.min(config.clientStallTimeout, config.upstreamWaitTimeout) / 4),
      ),
    }),
    onEnd: endingSpans(tracing, forwardRecorder({ metrics, stats, logger, accessLog: config.accessLog })),
  });
  registerUpstreamLoadMetrics(metrics.registry, forwarder.counters);
  app.addHook('onClose', async () => forwarder.settings.sweep.stop());

  // Probes and scrapes are not usage: they are answered without counting.
  app.get('/health', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'ok' };
  });

  app.get('/ready', async (_request, reply) => {
    const readiness = await state.readiness();
    reply.code(readiness.ready ? 200 : 503).header('cache-control', 'no-store');
    return {
      status: readiness.ready ? 'ready' : 'not_ready',
      reasons: readiness.reasons,
      dependencies: readiness.dependencies,
      upstream: upstreamLoad(forwarder.counters, config.upstreamConnections),
    };
  });

  app.get('/metrics', async (request, reply) => {
    const format = negotiateMetricsFormat(request.headers.accept);
    reply.header('content-type', contentTypeOf(format)).header('cache-control', 'no-store');
    return metrics.render(format);
  });

  const refuseTarget = (reply: FastifyReply): void =>
    refuse(
      reply,
      routes.otherId,
      400,
      'bad_request',
      'The request target must be a path such as /items/MLA123.',
    );

  /**
   * Connections answered with `connection: close` because their framing or size was refused. Node
   * goes on parsing what the client already sent on them; none of it may reach the upstream.
   */
  const closing = new WeakSet<Socket>();

  /** The pipeline of a forwarded request: match → decide → forward → record (forwarder.settings.onEnd). */
  const handleForward = (_request: FastifyRequest, reply: FastifyReply): void => {
    const ctx = new ProxyRequest(reply, performance.now());
    if (!match(ctx)) return;
    const decision = rateLimit?.decide(ctx.req, ctx.clientIp, ctx.method, ctx.normalized);
    if (decision instanceof Promise) awaitDecision(ctx, decision);
    else decide(ctx, decision);
  };

  /** Fills in what the request is (method, path, route, client) or refuses it; false when refused. */
  const match = (ctx: ProxyRequest): boolean => {
    const { reply, req } = ctx;
    if (closing.has(req.socket)) {
      // Never answered: Node closes the connection once the refusal is written.
      reply.hijack();
      return false;
    }
    const path = upstreamPath(req.url ?? '');
    if (path === undefined) {
      refuseTarget(reply);
      return false;
    }
    ctx.method = req.method ?? 'GET';
    ctx.path = path;
    ctx.normalized = normalizePath(path);
    ctx.route = routes.idOf(ctx.normalized);
    if (ctx.method === 'TRACE') {
      refuse(
        reply,
        ctx.route,
        405,
        'method_not_allowed',
        'TRACE is not forwarded by this proxy.',
        METHODS_ALLOWED,
        ctx,
      );
      return false;
    }
    // GET and HEAD on these paths have their own routes; any other method lands here.
    if (RESERVED.has(ctx.normalized)) {
      const allow = ['allow', 'GET, HEAD'];
      refuse(
        reply,
        ctx.route,
        405,
        'method_not_allowed',
        `${ctx.normalized} only answers GET and HEAD.`,
        allow,
        ctx,
      );
      return false;
    }
    const refusal = requestRefusal(req, requestLimits);
    if (refusal) {
      closing.add(req.socket);
      refuse(reply, ctx.route, refusal.status, refusal.error, refusal.message, ['connection', 'close'], ctx);
      return false;
    }
    // A trusted peer's X-Forwarded-For names the client; a value there that is no address (a port
    // appended, garbage passed through) must not become a counter key of its own.
    const ip = reply.request.ip;
    ctx.clientIp = config.trustProxy.length > 0 && isIP(ip) === 0 ? (req.socket.remoteAddress ?? '') : ip;
    const misdirected = injection?.refuseHost(req.headers.host);
    if (misdirected) {
      refuse(reply, ctx.route, misdirected.status, misdirected.error, misdirected.message, undefined, ctx);
      return false;
    }
    if (upstreamAuth?.forRequest && injects(ctx.clientIp)) {
      const choice = upstreamAuth.forRequest(req, ctx.clientIp, ctx.normalized);
      if ('status' in choice) {
        refuse(reply, ctx.route, choice.status, choice.error, choice.message);
        return false;
      }
      ctx.accountAuth = choice.auth;
      ctx.account = choice.account;
    }
    return true;
  };

  /**
   * Rare (workers of `serve --workers N` holding rate-limit leases): a counter of this request has
   * no permit yet; the decision comes once the primary has answered (or --on-store-error has
   * decided). Anything thrown after it still ends in the error handler, never in a crash.
   */
  const awaitDecision = (ctx: ProxyRequest, decision: Promise<Decision | undefined>): void => {
    decision
      .then((later) => {
        // Another request on this connection was refused meanwhile: the connection is closing.
        if (closing.has(ctx.req.socket)) ctx.reply.hijack();
        else decide(ctx, later);
      })
      .catch((error: unknown) => failInside(ctx, error));
  };

  const failInside = (ctx: ProxyRequest, error: unknown): void => {
    if (!ctx.reply.sent) ctx.reply.send(error instanceof Error ? error : new Error(String(error)));
    else {
      logger.error({ reqId: ctx.requestId, err: error }, 'request failed inside the proxy');
      ctx.req.socket.destroy();
    }
  };

  /** Applies the rate-limit decision (undefined: no rule applied) and forwards what it admits. */
  const decide = (ctx: ProxyRequest, decision: Decision | undefined): void => {
    if (decision && rateLimit) {
      ctx.limitHeaders = rateLimit.headers(decision);
      for (const rule of decision.shadowExceeded) {
        metrics.shadowExceededBy(rule);
        stats.recordRule(rule);
      }
      if (!decision.allowed) {
        const rule = decision.rejectedBy ?? 'unknown';
        metrics.rateLimitedBy(rule);
        stats.recordRule(rule);
        const message = `Rate limit "${rule}" exceeded: retry in ${decision.retryAfterSeconds} s.`;
        refuse(ctx.reply, ctx.route, 429, 'too_many_requests', message, ctx.limitHeaders, ctx);
        return;
      }
    }
    ctx.reply.hijack();
    const soon = tokenSoon(ctx);
    if (soon) {
      soon.then(() => forward(ctx)).catch((error: unknown) => failInside(ctx, error));
      return;
    }
    forward(ctx);
  };

  /**
   * Rare: the token is past its usable time and its refresh is under way. A moment's wait (bounded
   * by the token manager) beats a call the upstream would take as anonymous.
   */
  const tokenSoon = (ctx: ProxyRequest): Promise<unknown> | undefined => {
    const auth = authFor(ctx);
    if (!auth?.authorizationSoon || !injects(ctx.clientIp)) return undefined;
    if (ctx.req.headers.authorization !== undefined && !auth.overrideClientToken) return undefined;
    if (auth.currentAuthorization() !== undefined) return undefined;
    return auth.authorizationSoon();
  };

  /** The token source of this request: its account's with several accounts, else the one. */
  const authFor = (ctx: ProxyRequest): UpstreamAuth | undefined =>
    upstreamAuth?.forRequest ? ctx.accountAuth : upstreamAuth;

  /** Builds the upstream request (forwarding headers, injected token) and forwards it. */
  const forward = (ctx: ProxyRequest): void => {
    const req = ctx.req;
    ctx.peerIp = req.socket.remoteAddress ?? '';
    ctx.peerTrusted = config.trustProxy.length > 0 && trust(ctx.peerIp);
    ctx.headers = upstreamRequestHeaders(req.rawHeaders, headerPolicy, ctx);
    if (upstreamAuth?.forRequest) stripAccountHeader(ctx.headers);
    const auth = authFor(ctx);
    if (auth && injects(ctx.clientIp)) {
      const valueIndex = injectAuthorization(ctx.headers, auth, req.headers.authorization !== undefined);
      if (valueIndex !== -1) ctx.injectedAccount = ctx.account;
      const method = ctx.method;
      if (valueIndex !== -1 && (method === 'GET' || method === 'HEAD' || method === 'OPTIONS')) {
        ctx.retryUnauthorized = {
          valueIndex,
          refresh: (used) => auth.refreshAfterUnauthorized(used),
        };
      }
    }
    metrics.requestStarted();
    forwarder.forward(ctx);
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
    const message = `Method ${request.raw.method} is not forwarded by this proxy.`;
    refuse(reply, route, 405, 'method_not_allowed', message, METHODS_ALLOWED);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    // A Content-Type Fastify cannot parse (`json`, `a/b/c`) is the upstream's to judge: bodies are
    // never parsed here, so it is forwarded like any other.
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' && request.routeOptions.url !== undefined) {
      handleForward(request, reply);
      return;
    }
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status >= 500) logger.error({ reqId: request.id, err: error }, 'request failed inside the proxy');
    refuse(
      reply,
      routes.otherId,
      status,
      status === 500 ? 'internal_error' : 'bad_request',
      status === 500 ? 'The proxy failed to handle the request.' : error.message,
    );
  });

  app.server.on('checkContinue', continueUnlessRefused(app.server, requestLimits));

  // An Expect other than 100-continue: Node would answer a bare 417 and read on to the next request.
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    closing.add(req.socket);
    const startedAt = performance.now();
    const bytes = sendApiError(res, 417, 'expectation_failed', 'Only "Expect: 100-continue" is supported.', [
      'x-request-id',
      requestIdFor(req),
      'connection',
      'close',
    ]);
    metrics.countResponse(
      methodIndex(req.method ?? ''),
      routes.otherId,
      417,
      performance.now() - startedAt,
      bytes,
    );
  });

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
    metrics.countResponse(methodIndex('CONNECT'), routes.otherId, 405, 0, Buffer.byteLength(body));
  });

  return app;
}
