import type { FastifyPluginAsync } from 'fastify';
import { parseInstant } from '../instant.js';
import { apiErrorReply } from './api-error.js';
import type { StatsRecorder, StatsReport } from './stats/recorder.js';

const GROUPS: ReadonlyArray<StatsReport['groupBy']> = ['route', 'ip', 'status', 'rule', 'account'];
const HOUR_MS = 3_600_000;

/** A time given as ISO-8601 or epoch milliseconds; undefined when absent, NaN when malformed. */
function parseTime(value: string | string[] | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  return typeof value === 'string' ? (parseInstant(value) ?? Number.NaN) : Number.NaN;
}

/** Why a `from` or `to` parameter is refused. */
function timeProblem(name: string, value: string | string[] | undefined): string {
  return typeof value === 'string'
    ? `${name} "${value}" is not an ISO-8601 time or epoch milliseconds`
    : `give ${name} once, as an ISO-8601 time or epoch milliseconds`;
}

/** A repeated parameter arrives as a list. */
interface StatsQuerystring {
  from?: string | string[];
  to?: string | string[];
  groupBy?: string;
  limit?: string;
}

/** `GET /admin/stats` (stored per-minute usage) and `GET /admin/stats/live` (last 60 s). */
export function statsRoutes(stats: StatsRecorder): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Querystring: StatsQuerystring }>('/admin/stats', async (request, reply) => {
      const now = Date.now();
      const to = parseTime(request.query.to) ?? now;
      const fromGiven = parseTime(request.query.from);
      const from = fromGiven ?? to - HOUR_MS;
      const groupBy = (request.query.groupBy ?? 'route') as StatsReport['groupBy'];
      const limit = request.query.limit === undefined ? 20 : Number(request.query.limit);
      const problem = Number.isNaN(fromGiven)
        ? timeProblem('from', request.query.from)
        : Number.isNaN(to)
          ? timeProblem('to', request.query.to)
          : from >= to
            ? 'from must be before to'
            : !GROUPS.includes(groupBy)
              ? `groupBy "${request.query.groupBy}" must be one of ${GROUPS.join(', ')}`
              : !Number.isInteger(limit) || limit < 1 || limit > 1000
                ? `limit "${request.query.limit}" must be an integer from 1 to 1000`
                : undefined;
      if (problem) {
        return apiErrorReply(reply, 400, 'bad_request', problem);
      }
      try {
        return await stats.report(from, to, groupBy, limit);
      } catch (error) {
        return apiErrorReply(
          reply,
          503,
          'store_unavailable',
          `Statistics cannot be read now: ${(error as Error).message}`,
        );
      }
    });

    app.get('/admin/stats/live', async () => stats.liveSummary());
  };
}
