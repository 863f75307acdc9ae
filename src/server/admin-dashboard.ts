/**
 * `GET /admin/dashboard`: a self-contained statistics page on the admin port, and its assets under
 * /admin/dashboard/*. The page and assets hold no data, so they are served without the admin token
 * (their routes carry `config.adminPublic`; the admin app's token check lets those through); the
 * page asks for the token and sends it with each API call (`Authorization: Bearer`).
 *
 * A strict Content-Security-Policy keeps the page to its own origin: no CDN, no inline script,
 * nothing sent elsewhere.
 */
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { APP_JS } from './dashboard/app-js.js';
import { FAVICON_SVG, INDEX_HTML } from './dashboard/index-html.js';
import { STYLE_CSS } from './dashboard/style-css.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without the admin token (static assets holding no data). */
    adminPublic?: boolean;
  }
}

export const DASHBOARD_PATH = '/admin/dashboard';

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
  ['/app.js', asset(APP_JS, 'text/javascript; charset=utf-8')],
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

export function dashboardRoutes(): FastifyPluginAsync {
  return async (app) => {
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
