/**
 * `GET /admin/dashboard`: a self-contained statistics page on the admin port, and its assets under
 * /admin/dashboard/*. The page and assets hold no data, so they are served without the admin token
 * (their routes carry `config.adminPublic`; the admin app's token check lets those through); the
 * page asks for the token and sends it with each API call (`Authorization: Bearer`).
 *
 * A strict Content-Security-Policy keeps the page to its own origin: no CDN, no inline script,
 * nothing sent elsewhere.
 *
 * `GET /admin/dashboard/period` (token required, like the rest of the admin API) answers one
 * refresh of the page's tiles and tables from one read of the statistics.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { apiErrorReply } from './api-error.js';
import { FAVICON_SVG, INDEX_HTML } from './dashboard/index-html.js';
import { STYLE_CSS } from './dashboard/style-css.js';
import type { StatsRecorder } from './stats/recorder.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without the admin token (static assets holding no data). */
    adminPublic?: boolean;
  }
}

export const DASHBOARD_PATH = '/admin/dashboard';

/**
 * The script: checked browser modules of their own (dashboard/*.js, app.js importing the others);
 * the build copies them next to this file.
 */
export const DASHBOARD_MODULES = [
  'app.js',
  'dom.js',
  'format.js',
  'lists.js',
  'live.js',
  'period.js',
] as const;
const moduleText = (name: string): string =>
  readFileSync(new URL(`./dashboard/${name}`, import.meta.url), 'utf8');
export const SCRIPTS: ReadonlyMap<string, string> = new Map(
  DASHBOARD_MODULES.map((name) => [name, moduleText(name)]),
);
export const APP_JS = SCRIPTS.get('app.js') ?? '';

/** Where the period view's numbers come from (the statistics recorder). */
export type PeriodSource = Pick<StatsRecorder, 'reportGroups'>;

const PERIOD_GROUPS = ['route', 'status', 'rule', 'ip', 'account'] as const;
const HOUR_MS = 3_600_000;

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  body: string;
  type: string;
  etag: string;
}

function asset(body: string, type: string): Asset {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, type, etag };
}

/** Path (under /admin/dashboard) → asset. */
export const DASHBOARD_ASSETS: ReadonlyMap<string, Asset> = new Map([
  ['', asset(INDEX_HTML, 'text/html; charset=utf-8')],
  ...[...SCRIPTS].map(([name, text]): [string, Asset] => [
    `/${name}`,
    asset(text, 'text/javascript; charset=utf-8'),
  ]),
  ['/style.css', asset(STYLE_CSS, 'text/css; charset=utf-8')],
  ['/favicon.svg', asset(FAVICON_SVG, 'image/svg+xml')],
]);

function send(request: FastifyRequest, reply: FastifyReply, item: Asset): FastifyReply {
  reply
    .header('cache-control', 'no-cache')
    .header('etag', item.etag)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-resource-policy', 'same-origin');
  if (item.type.startsWith('text/html')) {
    reply.header('content-security-policy', DASHBOARD_CSP).header('x-frame-options', 'DENY');
  }
  if (request.headers['if-none-match'] === item.etag) return reply.code(304).send();
  return reply.type(item.type).send(item.body);
}

interface PeriodQuery {
  from?: string;
  limit?: string;
}

/** Why the period query is refused, or undefined when it is fine. */
function periodProblem(from: number, limit: number, now: number, query: PeriodQuery): string | undefined {
  if (!Number.isSafeInteger(from) || from < 0 || from >= now) {
    return `from "${query.from}" must be a time in the past, in milliseconds since 1970`;
  }
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    return `limit "${query.limit}" must be an integer from 1 to 100`;
  }
  return undefined;
}

export function dashboardRoutes(period?: PeriodSource): FastifyPluginAsync {
  return async (app) => {
    if (period) {
      app.get<{ Querystring: PeriodQuery }>(`${DASHBOARD_PATH}/period`, async (request, reply) => {
        const now = Date.now();
        const from = request.query.from === undefined ? now - HOUR_MS : Number(request.query.from);
        const limit = request.query.limit === undefined ? 10 : Number(request.query.limit);
        const problem = periodProblem(from, limit, now, request.query);
        if (problem) return apiErrorReply(reply, 400, 'bad_request', problem);
        try {
          return await period.reportGroups(from, now, PERIOD_GROUPS, limit);
        } catch (error) {
          const message = `Statistics cannot be read now: ${(error as Error).message}`;
          return apiErrorReply(reply, 503, 'store_unavailable', message);
        }
      });
    }
    for (const [suffix, item] of DASHBOARD_ASSETS) {
      app.get(`${DASHBOARD_PATH}${suffix}`, { config: { adminPublic: true } }, async (request, reply) =>
        send(request, reply, item),
      );
    }
    app.get(`${DASHBOARD_PATH}/`, { config: { adminPublic: true } }, async (_request, reply) =>
      reply.redirect(DASHBOARD_PATH, 302),
    );
  };
}
