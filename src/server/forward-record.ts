/**
 * The last stage of a forwarded request: metrics, statistics, and the log lines (upstream failure,
 * access log) once its response is done or abandoned.
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

/** Records one finished request; bound once per app, called with each request's context. */
export function forwardRecorder(deps: RecordDeps): (ctx: ProxyRequest) => void {
  const { metrics, stats, logger, accessLog } = deps;
  return (ctx) => {
    const status = ctx.clientAborted && ctx.status === 0 ? 499 : ctx.status;
    const ms = performance.now() - ctx.startedAt;
    metrics.requestFinished(methodIndex(ctx.method), ctx.route, status, ms, ctx.upstreamHeadersMs, ctx.bytes);
    stats.record(ctx.route, status, ctx.bytes, ms, ctx.clientIp);
    if (ctx.failure) {
      metrics.upstreamError(ctx.failure.kind);
      logger.warn(
        { reqId: ctx.requestId, kind: ctx.failure.kind, status, url: loggableUrl(ctx.req.url ?? '') },
        'upstream request failed',
      );
    }
    if (accessLog) {
      logger.info(
        {
          reqId: ctx.requestId,
          method: ctx.method,
          url: loggableUrl(ctx.req.url ?? ''),
          status,
          bytes: ctx.bytes,
          ms: Math.round(ms * 10) / 10,
          ip: ctx.clientIp,
          // Whose token was injected (the user id), never the token.
          account: ctx.account,
          aborted: ctx.clientAborted || undefined,
        },
        'request',
      );
    }
  };
}
