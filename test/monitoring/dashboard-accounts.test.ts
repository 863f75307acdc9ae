/**
 * Statistics by account, end to end: `meli-proxy serve --inject-token` with two sellers and the
 * default worker count (the built binary, the fake MercadoLibre as origin and token endpoint).
 * Requests routed to each seller are counted exactly under that seller's user id, with its
 * nickname, in `GET /admin/stats?groupBy=account`, in `meli-proxy stats --group-by account` and
 * in the dashboard's Accounts table (headless Chromium); requests sent without an injected token
 * (a refused account, a client's own token) are in no account's row.
 *
 * Needs `npm run build` and chromium (a loud skip of the page part locally, a failure under CI).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../auth/helpers/build.js';
import { adminJson, spawnInjectingServe } from '../auth/helpers/serve.js';
import { fileAccounts, loggedInToken } from '../auth/helpers/tokens.js';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { type ChromiumSession, launchChromium, requireChromium } from '../support/chromium.js';
import { type CliProcess, killChildren, REPO_ROOT, runCliProcess, tempDir } from '../support/proxy.js';

const CHROMIUM = requireChromium('dashboard accounts table');
const TOKEN = 'accounts-stats-admin-token-7c1e9b';
const SELLER_B = { id: 222333444, nickname: 'SELLER_B', site_id: 'MLB' };
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

interface AccountRow {
  key: string;
  name?: string;
  requests: number;
}

describe('statistics by account, serve with the default workers and two sellers', () => {
  let meli: FakeMeli;
  let proxy: CliProcess;
  const data = tempDir('meli-accounts-stats-');
  let a: string;
  const b = String(SELLER_B.id);

  const admin = <T>(target: string): Promise<T> => adminJson<T>(proxy.adminUrl, TOKEN, target);

  async function send(times: number, headers: Record<string, string>): Promise<number[]> {
    const statuses: number[] = [];
    for (let n = 0; n < times; n++) {
      const response = await fetch(`${proxy.url}/items/MLA${n}`, { headers });
      await response.arrayBuffer();
      statuses.push(response.status);
    }
    return statuses;
  }

  beforeAll(async () => {
    [meli] = await Promise.all([startFakeMeli({ users: [SELLER_B] }), ensureBuilt()]);
    a = String(meli.user.id);
    const accounts = fileAccounts(data.dir);
    await accounts.saveLogin(loggedInToken(meli));
    await accounts.saveLogin(loggedInToken(meli, Date.now(), SELLER_B.id));
    // No --workers: the default (auto, one per core) is what users run.
    proxy = await spawnInjectingServe(meli, data.dir, { args: ['--admin-token', TOKEN] });
  }, 120_000);

  afterAll(async () => {
    await proxy?.stop().catch(() => undefined);
    killChildren();
    await meli?.close();
    data.remove();
  });

  it('counts each seller exactly, in the admin API and in `stats --group-by account`', async () => {
    expect(await send(7, {})).toEqual(Array(7).fill(200)); // the default account: the first login
    expect(await send(4, { 'x-meli-account': 'seller_b' })).toEqual(Array(4).fill(200));
    expect(await send(2, { 'x-meli-account': b })).toEqual(Array(2).fill(200));
    // Not sent with an injected token: refused, or the client's own token kept.
    expect(await send(3, { 'x-meli-account': 'NOBODY' })).toEqual(Array(3).fill(403));
    await send(2, { authorization: 'Bearer APP_USR-client-own-token' });
    const all = 7 + 4 + 2 + 3 + 2;

    let stats: { rows: AccountRow[]; totals: { requests: number } };
    const deadline = Date.now() + 30_000; // only a hang guard: counts land once responses end
    for (;;) {
      stats = await admin('/admin/stats?groupBy=account');
      if (stats.totals.requests >= all) break;
      if (Date.now() > deadline) throw new Error(`stats never reached ${all}: ${JSON.stringify(stats)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(stats.totals.requests).toBe(all);
    expect(stats.rows.map(({ key, name, requests }) => ({ key, name, requests }))).toEqual([
      { key: a, name: meli.user.nickname, requests: 7 },
      { key: b, name: SELLER_B.nickname, requests: 6 },
    ]);

    const env = { MELI_PROXY_ADMIN_URL: proxy.adminUrl, MELI_PROXY_ADMIN_TOKEN: TOKEN };
    const table = await runCliProcess(['stats', '--group-by', 'account'], env);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/^Requests by account/);
    expect(lines).toContainEqual(expect.stringMatching(/^ACCOUNT\s+NICKNAME\s+REQUESTS\s+SHARE/));
    expect(lines).toContainEqual(
      expect.stringMatching(
        new RegExp(`^${a}\\s+${meli.user.nickname}\\s+7\\s+${((7 / all) * 100).toFixed(1)}%`),
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^${b}\\s+SELLER_B\\s+6\\s+${((6 / all) * 100).toFixed(1)}%`)),
    );
    const json = await runCliProcess(['stats', '--group-by', 'account', '--json'], env);
    expect(json.code, json.stderr).toBe(0);
    expect((JSON.parse(json.stdout) as { rows: AccountRow[] }).rows.map((row) => row.requests)).toEqual([
      7, 6,
    ]);
  }, 60_000);

  it.skipIf(!CHROMIUM)(
    'shows the same counts and nicknames in the dashboard Accounts table',
    async () => {
      const browser: ChromiumSession = await launchChromium(CHROMIUM);
      try {
        const expected = await admin<{ groups: { account: AccountRow[] } }>(
          `/admin/dashboard/period?from=${Date.now() - 3_600_000}&limit=10`,
        );
        expect(expected.groups.account.map((row) => row.requests)).toEqual([7, 6]);
        const page = await browser.context.newPage();
        await page.setViewportSize({ width: 1360, height: 1200 });
        const pageErrors: string[] = [];
        page.on('pageerror', (error) => pageErrors.push(error.message));
        await page.goto(`${proxy.adminUrl}/admin/dashboard`);
        await page.fill('#token', TOKEN);
        await page.click('#login-submit');
        await page.waitForSelector('#accounts-body tr[data-key]', { timeout: 15_000 });
        const rows = await page.$$eval('#accounts-body tr[data-key]', (found) =>
          found.map((row) => ({
            key: row.getAttribute('data-key'),
            requests: Number(row.getAttribute('data-value')),
            name: row.querySelector('[data-testid="account-name"]')?.textContent,
          })),
        );
        expect(rows).toEqual([
          { key: a, requests: 7, name: meli.user.nickname },
          { key: b, requests: 6, name: SELLER_B.nickname },
        ]);
        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-accounts.png'), fullPage: true });
        expect(pageErrors).toEqual([]);
        await page.close();
      } finally {
        await browser.close();
      }
    },
    60_000,
  );
});
