/**
 * The last stage of a request: metrics, statistics, and the log lines (upstream failure, access
 * log) once its response is done or abandoned. Forwarded requests and the proxy's own answers
 * (429, 405, 413, …) are recorded alike, with their real duration and body bytes, so a refusal
 * never reads as an instant empty response in latency or traffic figures.
 */
import type { Logger } from '../logger.js';
import { loggableUrl } from '../logger.js';
import { methodIndex, type ProxyMetrics } from './metrics.js';
import type { ProxyRequest } from './request-context.js';
import type { StatsRecorder } from './stats/recorder.js';

export interface RecordDeps {
  metrics: ProxyMetrics;
  stats: StatsRecorder;
  logger: Logger;
  accessLog: boolean;
}

/** One answer the proxy made itself instead of forwarding, once it is written. */
export interface ProxyAnswer {
  requestId: string;
  method: string;
  /** The request target as received (logged masked). */
  url: string;
  route: number;
  status: number;
  /** Body bytes written. */
  bytes: number;
  /** performance.now() when the request reached the proxy's handler, like a forwarded one's. */
  startedAt: number;
  clientIp: string;
}

/** Records one finished request; bound once per app, called with each request's context. */
export function forwardRecorder(deps: RecordDeps): (ctx: ProxyRequest) => void {
  const { metrics, stats, logger } = deps;
  const logAccess = accessLogger(deps);
  return (ctx) => {
    const status = ctx.clientAborted && ctx.status === 0 ? 499 : ctx.status;
    const now = performance.now();
    const ms = now - ctx.startedAt;
    const { route, upstreamHeadersMs, bytes, traceId } = ctx;
    metrics.requestFinished(
      methodIndex(ctx.method),
      route,
      status,
      ms,
      upstreamHeadersMs,
      bytes,
      traceId,
      now,
    );
    stats.record(ctx.route, status, ctx.bytes, ms, ctx.clientIp, ctx.injectedAccount);
    if (ctx.failure) {
      metrics.upstreamError(ctx.failure.kind);
      logger.warn(
        { reqId: ctx.requestId, kind: ctx.failure.kind, status, url: loggableUrl(ctx.req.url ?? '') },
        'upstream request failed',
      );
    }
    logAccess(
      ctx.requestId,
      ctx.method,
      ctx.req.url ?? '',
      status,
      ctx.bytes,
      ms,
      ctx.clientIp,
      ctx.clientAborted,
      ctx.traceId,
      ctx.account,
    );
  };
}

/** Records the proxy's own answers (never in flight upstream, so no in-flight gauge to lower). */
export function answerRecorder(deps: RecordDeps): (answer: ProxyAnswer) => void {
  const { metrics, stats } = deps;
  const logAccess = accessLogger(deps);
  return (answer) => {
    const ms = performance.now() - answer.startedAt;
    metrics.countResponse(methodIndex(answer.method), answer.route, answer.status, ms, answer.bytes);
    stats.record(answer.route, answer.status, answer.bytes, ms, answer.clientIp);
    logAccess(
      answer.requestId,
      answer.method,
      answer.url,
      answer.status,
      answer.bytes,
      ms,
      answer.clientIp,
      false,
    );
  };
}

type AccessLog = (
  reqId: string,
  method: string,
  url: string,
  status: number,
  bytes: number,
  ms: number,
  ip: string,
  aborted: boolean,
  traceId?: string,
  /** Whose token was injected (the user id), never the token. */
  account?: string,
) => void;

function accessLogger({ logger, accessLog }: RecordDeps): AccessLog {
  if (!accessLog) return () => {};
  return (reqId, method, url, status, bytes, ms, ip, aborted, traceId, account) =>
    logger.info(
      {
        reqId,
        method,
        url: loggableUrl(url),
        status,
        bytes,
        ms: Math.round(ms * 10) / 10,
        ip,
        account,
        aborted: aborted || undefined,
        traceId: traceId || undefined,
      },
      'request',
    );
}
