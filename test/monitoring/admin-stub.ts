/**
 * A stand-in for the admin stats API, serving the documented contract with fixed numbers, for the
 * CLI rendering tests (`stats`, `top`) and for looking at the dashboard with busy data. End-to-end
 * tests use the real server instead.
 *
 *   GET /admin/stats?from&to&groupBy&limit   FIXTURE_STATS[groupBy], rows cut to limit
 *   GET /admin/stats/live                     liveFixture(now)
 *   /admin/dashboard*                         the real dashboard plugin; its period view answers
 *                                             FIXTURE_STATS (queries logged in statsQueries)
 *
 * With `token`, every route but the dashboard's requires `Authorization: Bearer <token>`.
 */
import { createServer } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import type { GroupBy, LiveStats, StatsResponse } from '../../src/cli/admin-client.js';
import { dashboardRoutes } from '../../src/server/admin-dashboard.js';

export const FIXTURE_FROM = '2025-03-01T10:00:00.000Z';
export const FIXTURE_TO = '2025-03-01T11:00:00.000Z';

const TOTALS = { requests: 12_840, bytes: 18_456_320, latencyMsAvg: 23.4, rateLimited: 412, errors: 37 };

export const FIXTURE_STATS: Record<GroupBy, StatsResponse> = {
  route: {
    from: FIXTURE_FROM,
    to: FIXTURE_TO,
    groupBy: 'route',
    rows: [
      { key: '/items/:id', requests: 6_120, bytes: 9_800_000, latencyMsAvg: 21.7 },
      { key: '/categories/:id', requests: 3_904, bytes: 5_100_000, latencyMsAvg: 18.2 },
      { key: '/sites/:site/search', requests: 2_011, bytes: 3_300_000, latencyMsAvg: 41.9 },
      { key: '/users/:id', requests: 805, bytes: 256_320, latencyMsAvg: 12.05 },
    ],
    totals: TOTALS,
  },
  status: {
    from: FIXTURE_FROM,
    to: FIXTURE_TO,
    groupBy: 'status',
    rows: [
      { key: '2xx', requests: 12_010, bytes: 18_000_000, latencyMsAvg: 23.9 },
      { key: '429', requests: 412, bytes: 60_000, latencyMsAvg: 0.3 },
      { key: '4xx', requests: 381, bytes: 390_000, latencyMsAvg: 15.1 },
      { key: '5xx', requests: 37, bytes: 6_320, latencyMsAvg: 250.2 },
    ],
    totals: TOTALS,
  },
  rule: {
    from: FIXTURE_FROM,
    to: FIXTURE_TO,
    groupBy: 'rule',
    rows: [
      { key: 'ip-items', requests: 300, bytes: 0, latencyMsAvg: 0 },
      { key: 'per-ip', requests: 112, bytes: 0, latencyMsAvg: 0 },
      { key: 'categories-shadow', requests: 55, bytes: 0, latencyMsAvg: 0 },
    ],
    totals: TOTALS,
  },
  ip: {
    from: FIXTURE_FROM,
    to: FIXTURE_TO,
    groupBy: 'ip',
    rows: [
      { key: '152.152.152.152', requests: 5_002, bytes: 7_000_000, latencyMsAvg: 20.1 },
      { key: '10.0.3.17', requests: 2_400, bytes: 3_000_000, latencyMsAvg: 22.4 },
      { key: '2001:db8::7', requests: 990, bytes: 1_200_000, latencyMsAvg: 30.8 },
    ],
    totals: TOTALS,
  },
  account: {
    from: FIXTURE_FROM,
    to: FIXTURE_TO,
    groupBy: 'account',
    rows: [
      { key: '4012345', name: 'TIENDA_SUR', requests: 7_300, bytes: 11_000_000, latencyMsAvg: 24.2 },
      { key: '88120077', requests: 1_204, bytes: 1_500_000, latencyMsAvg: 19.9 },
    ],
    totals: TOTALS,
  },
};

/** 60 seconds ending at `now`, with a wave of traffic, some 429s and a few 5xx. */
export function liveFixture(now: number): LiveStats {
  const last = Math.floor(now / 1000);
  const seconds = Array.from({ length: 60 }, (_, index) => {
    const t = last - 59 + index;
    const requests = index < 8 ? 0 : Math.round(180 + 90 * Math.sin(index / 6) + (index % 7) * 11);
    return {
      t,
      requests,
      rateLimited: requests > 0 ? Math.round(requests * (index > 40 ? 0.12 : 0.03)) : 0,
      errors: requests > 0 && index % 13 === 0 ? 4 : 0,
      p50Ms: requests > 0 ? 8 + (index % 5) : 0,
      p99Ms: requests > 0 ? 40 + ((index * 17) % 35) : 0,
    };
  });
  return {
    now,
    seconds,
    topRoutes: [
      { key: '/items/:id', requests: 5_120 },
      { key: '/categories/:id', requests: 3_311 },
      { key: '/sites/:site/search', requests: 1_208 },
    ],
    topIps: [
      { key: '152.152.152.152', requests: 4_410 },
      { key: '10.0.3.17', requests: 2_002 },
    ],
    topRules: [
      { key: 'ip-items', requests: 288 },
      { key: 'categories-shadow', requests: 40 },
    ],
  };
}

export interface AdminStub {
  url: string;
  app: FastifyInstance;
  /** Query strings received by /admin/stats (and the dashboard's period view), in order. */
  statsQueries: Record<string, string>[];
  /** Authorization headers received (any route). */
  authorizations: Array<string | undefined>;
  /** Replace the live answer (e.g. to test refreshes). */
  live: (now: number) => LiveStats;
  close(): Promise<void>;
}

export async function startAdminStub(options: { token?: string } = {}): Promise<AdminStub> {
  const app = Fastify();
  const stub: AdminStub = {
    url: '',
    app,
    statsQueries: [],
    authorizations: [],
    live: liveFixture,
    close: () => app.close(),
  };
  app.addHook('onRequest', async (request, reply) => {
    stub.authorizations.push(request.headers.authorization);
    if (!options.token || request.routeOptions.config.adminPublic) return;
    if (request.headers.authorization !== `Bearer ${options.token}`) {
      return reply
        .code(401)
        .send({ message: 'A valid admin token is required.', error: 'unauthorized', status: 401, cause: [] });
    }
  });
  app.get('/admin/stats', async (request, reply) => {
    const query = request.query as Record<string, string>;
    stub.statsQueries.push(query);
    const groupBy = (query.groupBy ?? 'route') as GroupBy;
    const fixture = FIXTURE_STATS[groupBy];
    if (!fixture) {
      return reply
        .code(400)
        .send({ message: `Unknown groupBy "${groupBy}".`, error: 'bad_request', status: 400, cause: [] });
    }
    const limit = Number(query.limit ?? 20);
    return { ...fixture, rows: fixture.rows.slice(0, limit) };
  });
  app.get('/admin/stats/live', async () => stub.live(Date.now()));
  app.get('/admin/limits', async () => ({
    rules: [
      { id: 'ip-items', mode: 'enforce', matched: 900, rejected: 300, shadowExceeded: 0 },
      { id: 'per-ip', mode: 'enforce', matched: 500, rejected: 112, shadowExceeded: 0 },
      { id: 'categories-shadow', mode: 'shadow', matched: 800, rejected: 0, shadowExceeded: 55 },
    ],
  }));
  await app.register(
    dashboardRoutes({
      reportGroups: async (from, to, groupBys, limit) => {
        stub.statsQueries.push({ from: String(from), to: String(to), limit: String(limit) });
        const groups = Object.fromEntries(
          groupBys.map((groupBy) => [groupBy, FIXTURE_STATS[groupBy].rows.slice(0, limit)]),
        ) as Record<GroupBy, StatsResponse['rows']>;
        return { from: FIXTURE_FROM, to: FIXTURE_TO, totals: TOTALS, groups };
      },
    }),
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('stub did not listen');
  stub.url = `http://127.0.0.1:${address.port}`;
  return stub;
}

/** A loopback port nothing listens on. */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
