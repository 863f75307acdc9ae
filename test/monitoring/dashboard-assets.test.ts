/**
 * The dashboard plugin on its own (Fastify inject): routes, content types, caching, security
 * headers; the assets are self-contained (no external URL) and the script compiles.
 */
import { readdirSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APP_JS,
  DASHBOARD_ASSETS,
  DASHBOARD_CSP,
  dashboardRoutes,
  SCRIPTS,
} from '../../src/server/admin-dashboard.js';
import { INDEX_HTML } from '../../src/server/dashboard/index-html.js';
import { STYLE_CSS } from '../../src/server/dashboard/style-css.js';

let app: FastifyInstance;
beforeAll(async () => {
  app = Fastify();
  await app.register(dashboardRoutes());
  await app.ready();
});
afterAll(() => app.close());

describe('dashboard routes', () => {
  it('GET /admin/dashboard is the page, with a strict CSP and no caching surprises', async () => {
    const response = await app.inject({ method: 'GET', url: '/admin/dashboard' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.headers['content-security-policy']).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).toContain("default-src 'none'");
    expect(DASHBOARD_CSP).toContain("connect-src 'self'");
    expect(DASHBOARD_CSP).not.toContain('unsafe-inline');
    expect(response.headers['x-frame-options']).toBe('DENY');
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['referrer-policy']).toBe('no-referrer');
    expect(response.headers['cache-control']).toBe('no-cache');
    expect(response.body).toContain('<form id="login-form"');
  });

  it('serves the script, the stylesheet and the icon with their types', async () => {
    for (const [path, type] of [
      ['/admin/dashboard/app.js', 'text/javascript; charset=utf-8'],
      ['/admin/dashboard/style.css', 'text/css; charset=utf-8'],
      ['/admin/dashboard/favicon.svg', 'image/svg+xml'],
    ] as const) {
      const response = await app.inject({ method: 'GET', url: path });
      expect(response.statusCode, path).toBe(200);
      expect(response.headers['content-type'], path).toBe(type);
    }
  });

  it('answers 304 to a matching If-None-Match, and HEAD without a body', async () => {
    const first = await app.inject({ method: 'GET', url: '/admin/dashboard/app.js' });
    const etag = String(first.headers.etag);
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await app.inject({
      method: 'GET',
      url: '/admin/dashboard/app.js',
      headers: { 'if-none-match': etag },
    });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const head = await app.inject({ method: 'HEAD', url: '/admin/dashboard' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
  });

  it('redirects the trailing-slash form to the page', async () => {
    const response = await app.inject({ method: 'GET', url: '/admin/dashboard/' });
    expect(response.statusCode).toBe(302);
    expect(response.headers.location).toBe('/admin/dashboard');
  });

  it('marks every dashboard route public (config.adminPublic) and nothing else', async () => {
    const seen: Array<{ url: string; public: boolean }> = [];
    const probe = Fastify();
    probe.addHook('onRequest', async (request) => {
      seen.push({ url: request.url, public: request.routeOptions.config.adminPublic === true });
    });
    await probe.register(dashboardRoutes());
    probe.get('/admin/stats', async () => ({}));
    for (const suffix of DASHBOARD_ASSETS.keys()) await probe.inject({ url: `/admin/dashboard${suffix}` });
    await probe.inject({ url: '/admin/dashboard/' });
    await probe.inject({ url: '/admin/stats' });
    await probe.inject({ url: '/admin/dashboard/nope.js' });
    await probe.close();
    expect(
      seen
        .filter((item) => item.public)
        .map((item) => item.url)
        .sort(),
    ).toEqual([
      '/admin/dashboard',
      '/admin/dashboard/',
      '/admin/dashboard/app.js',
      '/admin/dashboard/dom.js',
      '/admin/dashboard/favicon.svg',
      '/admin/dashboard/format.js',
      '/admin/dashboard/lists.js',
      '/admin/dashboard/live.js',
      '/admin/dashboard/period.js',
      '/admin/dashboard/style.css',
    ]);
    expect(seen.find((item) => item.url === '/admin/stats')?.public).toBe(false);
    expect(seen.find((item) => item.url === '/admin/dashboard/nope.js')?.public).toBe(false);
  });
});

describe('dashboard assets', () => {
  it('load nothing from elsewhere: every URL is same-origin (the SVG namespace is not fetched)', () => {
    for (const [name, text] of Object.entries({ INDEX_HTML, STYLE_CSS, ...Object.fromEntries(SCRIPTS) })) {
      const urls = [...text.matchAll(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"')]*/gi)].map(
        (match) => match[0],
      );
      expect(
        urls.filter((url) => url !== 'http://www.w3.org/2000/svg'),
        name,
      ).toEqual([]);
      expect(text, name).not.toMatch(/@import|<iframe|\beval\(|new Function/);
    }
    const references = [...INDEX_HTML.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]);
    expect(references.length).toBeGreaterThan(0);
    for (const reference of references) expect(reference).toMatch(/^\/admin\/dashboard\//);
  });

  it('the scripts are the checked modules, served as they are, and every module they import is served', async () => {
    expect(SCRIPTS.get('app.js')).toBe(APP_JS);
    const sources = readdirSync(new URL('../../src/server/dashboard/', import.meta.url)).filter((name) =>
      name.endsWith('.js'),
    );
    expect([...SCRIPTS.keys()].sort()).toEqual(sources.sort());
    for (const [name, text] of SCRIPTS) {
      const response = await app.inject({ method: 'GET', url: `/admin/dashboard/${name}` });
      expect(response.body, name).toBe(text);
      expect(text.startsWith('// @ts-check'), name).toBe(true);
      for (const [, imported] of text.matchAll(/^import [^;]* from '\.\/([^']+)';$/gm)) {
        expect(SCRIPTS.has(imported!), `${name} imports ${imported}`).toBe(true);
      }
    }
  });
});
