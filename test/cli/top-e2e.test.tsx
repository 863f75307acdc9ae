/**
 * `meli-proxy top` against the real server (in this process): the last minute's traffic shows in
 * the plain snapshot and in the ink view, which quits on q.
 */
import { render } from 'ink-testing-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LiveStats } from '../../src/cli/admin-client.js';
import { runCli } from '../../src/cli/program.js';
import { runTop } from '../../src/cli/top/index.js';
import { type Origin, startOrigin } from '../peers/origin.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { TEST_SECRETS } from '../support/secrets.js';

const TOKEN = TEST_SECRETS.adminToken;

function plain(frame: string | undefined): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences
  return (frame ?? '').replace(/\u001b\[[0-9;]*m/g, '');
}

describe('top against the real server', () => {
  let origin: Origin;
  let proxy: TestProxy;
  let env: Record<string, string>;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startTestProxy({ upstream: origin.url, adminToken: TOKEN });
    env = { MELI_PROXY_ADMIN_URL: proxy.adminUrl, MELI_PROXY_ADMIN_TOKEN: TOKEN };
    for (let index = 0; index < 8; index++)
      await (await fetch(`${proxy.url}/items/MLA${index}`)).arrayBuffer();
    for (let index = 0; index < 3; index++)
      await (await fetch(`${proxy.url}/categories/MLA97994`)).arrayBuffer();
  });

  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });

  it('the live API answers the documented shape', async () => {
    const response = await fetch(`${proxy.adminUrl}/admin/stats/live`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(response.status).toBe(200);
    const live = (await response.json()) as LiveStats;
    expect(live.seconds).toHaveLength(60);
    expect(live.seconds.reduce((sum, second) => sum + second.requests, 0)).toBe(11);
    expect(live.topRoutes[0]).toEqual({ key: '/items/:id', requests: 8 });
  });

  it('prints a plain snapshot when stdout is not a terminal', async () => {
    let stdout = '';
    let stderr = '';
    const code = await runCli(['top'], {
      stdout: { write: (chunk: string) => (stdout += chunk), isTTY: false },
      stderr: { write: (chunk: string) => (stderr += chunk) },
      env,
      cwd: process.cwd(),
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^\|.{60}\| 11\/min$/m);
    expect(stdout).toMatch(/^TOP ROUTES\s+REQ\/60s\n\/items\/:id\s+8\n\/categories\/:id\s+3$/m);
    expect(stdout).toMatch(/^TOP CLIENT IPS\s+REQ\/60s\n127\.0\.0\.1\s+11$/m);
  });

  it('draws the ink view and quits on q', async () => {
    let view: ReturnType<typeof render> | undefined;
    const done = runTop(
      { interval: '0.2' },
      { stdout: { write: () => true, isTTY: true }, stderr: { write: () => true }, env, cwd: process.cwd() },
      {
        sleep: (ms, signal) =>
          new Promise((resolve) => {
            const timer = setTimeout(resolve, ms);
            signal?.addEventListener('abort', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
        mount: (element) => {
          view = render(element);
          return view;
        },
      },
    );
    const deadline = Date.now() + 5000;
    while (!plain(view?.lastFrame()).includes('/items/:id')) {
      if (Date.now() > deadline) throw new Error(`no routes drawn:\n${plain(view?.lastFrame())}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(plain(view!.lastFrame())).toMatch(/\/items\/:id\s+8\s+127\.0\.0\.1\s+11/);
    view!.stdin.write('q');
    await done;
  });
});
