/**
 * The admin dashboard as an operator uses it: the real `meli-proxy serve` (built binary, a config
 * file with a rate-limit rule), real traffic (forwarded, rate limited, upstream 5xx), headless
 * Chromium signing in through the page's form. The numbers on the page must equal the admin API's,
 * the token must never travel in a URL, and the page must load nothing from anywhere else.
 * Screenshot: test-artifacts/dashboard.png.
 *
 * Needs `npm run build` (npm test does it) and chromium (a loud skip locally, a failure under CI).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminJson } from '../auth/helpers/serve.js';
import { type Origin, startOrigin } from '../peers/origin.js';
import { type ChromiumSession, launchChromium, requireChromium } from '../support/chromium.js';
import { type CliProcess, killChildren, REPO_ROOT, serveArgs, spawnCli, tempDir } from '../support/proxy.js';
import { type AdminStub, FIXTURE_STATS, startAdminStub } from './admin-stub.js';

const CHROMIUM = requireChromium('admin dashboard');
const TOKEN = 'dashboard-e2e-admin-token-4f9a2c';
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

interface StatsAnswer {
  rows: Array<{ key: string; requests: number }>;
  totals: { requests: number; rateLimited: number; errors: number; bytes: number };
}

describe.skipIf(!CHROMIUM)('admin dashboard in Chromium', () => {
  let origin: Origin;
  let proxy: CliProcess;
  let browser: ChromiumSession;
  const data = tempDir('meli-dashboard-');

  const admin = <T>(target: string): Promise<T> => adminJson<T>(proxy.adminUrl, TOKEN, target);

  beforeAll(async () => {
    origin = await startOrigin();
    const config = path.join(data.dir, 'meli-proxy.yaml');
    writeFileSync(
      config,
      [
        'limits:',
        '  - id: local-items',
        '    match: { ip: 127.0.0.1, path: /items/* }',
        '    limit: 5/m',
        '',
      ].join('\n'),
    );
    proxy = await spawnCli(serveArgs(origin.url, data.dir, '--config', config, '--admin-token', TOKEN));
    browser = await launchChromium(CHROMIUM);
  });

  afterAll(async () => {
    await browser?.close();
    await proxy?.stop().catch(() => undefined);
    killChildren();
    await origin?.close();
    data.remove();
  });

  it('signs in with the token and shows the same numbers as GET /admin/stats', async () => {
    // Traffic: 12 item reads (local-items allows 5 a minute), categories, searches, two upstream 503s.
    const targets = [
      ...Array.from({ length: 12 }, (_, index) => `/items/MLA${1000 + index}`),
      ...Array.from({ length: 9 }, () => '/categories/MLA97994'),
      '/sites/MLA/search?q=mochila',
      '/sites/MLA/search?q=zapatillas',
      '/status/503',
      '/status/503',
    ];
    const statuses: number[] = [];
    for (const target of targets) {
      const response = await fetch(`${proxy.url}${target}`);
      await response.arrayBuffer();
      statuses.push(response.status);
    }
    // local-items allows 5 a minute: the rest of the 12 are rejected.
    const rejected = statuses.filter((status) => status === 429).length;
    expect(rejected).toBeGreaterThanOrEqual(6);

    // Counted once the responses ended: wait until the API's totals include everything.
    let stats: StatsAnswer;
    const deadline = Date.now() + 10_000;
    for (;;) {
      stats = await admin<StatsAnswer>('/admin/stats?groupBy=route&limit=10');
      if (stats.totals.requests >= targets.length) break;
      if (Date.now() > deadline)
        throw new Error(`stats never reached ${targets.length}: ${JSON.stringify(stats)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(stats.totals.requests).toBe(targets.length);
    expect(stats.totals.rateLimited).toBe(rejected);
    expect(stats.totals.errors).toBe(2);

    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 1360, height: 1000 });
    const requested: string[] = [];
    const authorizations: Array<string | undefined> = [];
    page.on('request', (request) => {
      requested.push(request.url());
      authorizations.push(request.headers().authorization);
    });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));

    const response = await page.goto(`${proxy.adminUrl}/admin/dashboard`);
    expect(response?.status()).toBe(200);
    await page.waitForSelector('#login-form', { state: 'visible' });

    // A wrong token first: refused on the page, nothing stored.
    await page.fill('#token', 'not-the-admin-token-000');
    await page.click('#login-submit');
    await page.waitForSelector('#login-error:not([hidden])');
    expect(await page.textContent('#login-error')).toContain('rejected');
    expect(await page.evaluate<number>('sessionStorage.length')).toBe(0);

    await page.fill('#token', TOKEN);
    await page.click('#login-submit');
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 15_000 });
    await page.waitForSelector('#live-routes li[data-key]', { timeout: 15_000 });

    const value = (id: string) => page.getAttribute(`#${id}`, 'data-value');
    expect(Number(await value('total-requests'))).toBe(stats.totals.requests);
    expect(Number(await value('total-rate-limited'))).toBe(stats.totals.rateLimited);
    expect(Number(await value('total-errors'))).toBe(stats.totals.errors);
    expect(await page.textContent('#total-requests')).toBe(String(stats.totals.requests));
    expect(await page.textContent('#total-rate-limited')).toBe(String(rejected));

    const routes = await page.$$eval('#routes-body tr[data-key]', (rows) =>
      rows.map((row) => ({
        key: row.getAttribute('data-key'),
        requests: Number(row.getAttribute('data-value')),
      })),
    );
    expect(routes).toEqual(stats.rows.map((row) => ({ key: row.key, requests: row.requests })));
    expect(routes[0]).toEqual({ key: '/items/:id', requests: 12 });
    expect(await page.textContent('#routes-body tr:first-child td.key')).toBe('/items/:id');

    const byStatus = await admin<StatsAnswer>('/admin/stats?groupBy=status');
    const statusRows = await page.$$eval('#status-body tr[data-key]', (rows) =>
      rows.map((row) => ({
        key: row.getAttribute('data-key'),
        requests: Number(row.getAttribute('data-value')),
      })),
    );
    expect(statusRows).toEqual(byStatus.rows.map((row) => ({ key: row.key, requests: row.requests })));
    const byRule = await admin<StatsAnswer>('/admin/stats?groupBy=rule');
    expect(byRule.rows).toEqual([expect.objectContaining({ key: 'local-items', requests: rejected })]);
    expect(await page.textContent('#rules-body tr[data-key="local-items"] td.num')).toBe(String(rejected));

    // Live: this replica's last minute has the same routes.
    const liveRoutes = await page.$$eval('#live-routes li[data-key]', (items) =>
      items.map((item) => item.getAttribute('data-key')),
    );
    expect(liveRoutes).toContain('/items/:id');
    expect(liveRoutes).toContain('/categories/:id');

    // Let a few live refreshes happen, then look at it.
    await page.waitForTimeout(2500);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    // The token went in headers only; everything came from the admin origin.
    const adminOrigin = new URL(proxy.adminUrl).origin;
    for (const url of requested) {
      expect(url).not.toContain(TOKEN);
      expect(new URL(url).origin, url).toBe(adminOrigin);
    }
    expect(authorizations).toContain(`Bearer ${TOKEN}`);
    expect(await page.evaluate<number>('localStorage.length')).toBe(0);
    expect(pageErrors).toEqual([]);

    // Signing out forgets the token.
    await page.click('#sign-out');
    await page.waitForSelector('#login-form', { state: 'visible' });
    expect(await page.evaluate<number>('sessionStorage.length')).toBe(0);
    await page.close();
  }, 60_000);

  it('the page and its assets need no token, the data does', async () => {
    for (const asset of ['/admin/dashboard', '/admin/dashboard/app.js', '/admin/dashboard/style.css']) {
      const response = await fetch(`${proxy.adminUrl}${asset}`);
      expect(response.status, asset).toBe(200);
    }
    expect((await fetch(`${proxy.adminUrl}/admin/stats`)).status).toBe(401);
    expect((await fetch(`${proxy.adminUrl}/admin/stats/live`)).status).toBe(401);
    expect((await fetch(`${proxy.adminUrl}/admin/status`)).status).toBe(401);
    expect((await fetch(`${proxy.adminUrl}/admin/dashboard/period`)).status).toBe(401);
  });

  it('one period answer holds the tiles and every table, and they agree with each other', async () => {
    const period = await admin<{
      totals: StatsAnswer['totals'];
      groups: Record<'route' | 'status' | 'rule' | 'ip', StatsAnswer['rows']>;
    }>(`/admin/dashboard/period?from=${Date.now() - 3_600_000}&limit=100`);
    const sum = (rows: StatsAnswer['rows']) => rows.reduce((total, row) => total + row.requests, 0);
    expect(period.totals.requests).toBeGreaterThan(0);
    expect(sum(period.groups.route)).toBe(period.totals.requests);
    expect(sum(period.groups.status)).toBe(period.totals.requests);
    expect(sum(period.groups.ip)).toBe(period.totals.requests);
    expect(sum(period.groups.rule)).toBe(period.totals.rateLimited);
    const refused = await fetch(`${proxy.adminUrl}/admin/dashboard/period?from=soon`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { message: string }).message).toContain('from "soon"');
  });
});

describe.skipIf(!CHROMIUM)('admin dashboard with busy data (stand-in admin API)', () => {
  let stub: AdminStub;
  let browser: ChromiumSession;

  beforeAll(async () => {
    stub = await startAdminStub({ token: TOKEN });
    browser = await launchChromium(CHROMIUM);
  });
  afterAll(async () => {
    await browser?.close();
    await stub?.close();
  });

  it('draws charts, chips and bars without a script error; a rejected saved token asks again', async () => {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 1360, height: 1000 });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${stub.url}/admin/dashboard`);
    await page.fill('#token', TOKEN);
    await page.press('#token', 'Enter');
    await page.waitForSelector('body[data-loaded="true"]');
    await page.waitForSelector('#chart-requests svg rect');
    expect(await page.locator('#chart-requests svg rect.bar-ok').count()).toBeGreaterThan(40);
    expect(await page.locator('#chart-requests svg rect.bar-warn').count()).toBeGreaterThan(10);
    expect(await page.locator('#chart-latency svg path.line-p99').count()).toBe(1);
    expect(await page.textContent('#total-requests')).toBe('12,840');
    expect(await page.textContent('#total-bytes')).toBe('18.5 MB');
    expect(await page.locator('#status-body .chip.warn').textContent()).toBe('429');
    expect(
      await page.$$eval('#ips-body tr[data-key]', (rows) => rows.map((row) => row.getAttribute('data-key'))),
    ).toEqual(FIXTURE_STATS.ip.rows.map((row) => row.key));
    // Accounts by user id, with the nickname where the proxy holds one.
    expect(
      await page.$$eval('#accounts-body tr[data-key]', (rows) =>
        rows.map((row) => [row.getAttribute('data-key'), row.querySelector('.chip')?.textContent ?? null]),
      ),
    ).toEqual(FIXTURE_STATS.account.rows.map((row) => [row.key, row.name ?? null]));
    // Shadow rules are told apart from enforced ones, in the live list and the period table.
    await page.waitForSelector('#rules-body tr[data-key="categories-shadow"] .chip.mode');
    expect(await page.textContent('#rules-body tr[data-key="categories-shadow"] .chip.mode')).toBe('shadow');
    expect(await page.locator('#rules-body tr[data-key="ip-items"] .chip.mode').count()).toBe(0);
    await page.waitForSelector('#live-rules li[data-key="categories-shadow"] .chip.mode');
    expect(await page.locator('#live-rules li[data-key="ip-items"] .chip.mode').count()).toBe(0);
    // The period buttons ask for another range.
    const before = stub.statsQueries.length;
    await page.click('#ranges button[data-range="86400000"]');
    await expect.poll(() => stub.statsQueries.length).toBeGreaterThan(before);
    const from = Number(stub.statsQueries.at(-1)?.from);
    expect(Date.now() - from).toBeGreaterThan(86_000_000);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-busy.png'), fullPage: true });

    // A token that stops working (rotated) sends the page back to the form.
    await page.evaluate("sessionStorage.setItem('meli-proxy.adminToken', 'rotated-away-token-000')");
    await page.reload();
    await page.waitForSelector('#login-error:not([hidden])');
    expect(await page.textContent('#login-error')).toContain('rejected');
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('fits a 390 px phone: no table or card wider than its container, headers apart', async () => {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${stub.url}/admin/dashboard`);
    await page.fill('#token', TOKEN);
    await page.press('#token', 'Enter');
    await page.waitForSelector('body[data-loaded="true"]');
    await page.waitForSelector('#routes-body tr[data-key]');
    // A string, evaluated in the page (the test's own types have no DOM).
    const overflowing = await page.evaluate<string[]>(`(() => {
      const found = [];
      for (const table of Array.from(document.querySelectorAll('table'))) {
        const container = table.parentElement;
        if (table.scrollWidth > container.clientWidth) {
          found.push(\`#\${table.id}: \${table.scrollWidth} px in \${container.clientWidth} px\`);
        }
        // Header cells must not run into each other ("REQUESTSHARE"): each one's text fits its box.
        for (const th of Array.from(table.querySelectorAll('th'))) {
          if (th.scrollWidth > th.clientWidth + 1) found.push(\`#\${table.id} th "\${th.textContent}" is cut\`);
        }
      }
      for (const card of Array.from(document.querySelectorAll('.card, .kpi'))) {
        if (card.scrollWidth > card.clientWidth + 1) {
          found.push(
            \`\${card.className} "\${card.querySelector('h3')?.textContent ?? ''}": \${card.scrollWidth} px in \${card.clientWidth} px\`,
          );
        }
      }
      if (document.documentElement.scrollWidth > window.innerWidth) {
        found.push(\`page: \${document.documentElement.scrollWidth} px in \${window.innerWidth} px\`);
      }
      return found;
    })()`);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
    expect(overflowing).toEqual([]);
    await page.close();
  });
});
