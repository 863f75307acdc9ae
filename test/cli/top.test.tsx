/**
 * `meli-proxy top`: the ink view (ink-testing-library), the command on a terminal (quits on q),
 * plain-text snapshots when stdout is not a terminal, and the figures computed from the live API.
 * Against the stand-in admin API; the real server: top-e2e.test.ts.
 */
import { render } from 'ink-testing-library';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { runTop, type TopDeps } from '../../src/cli/top/index.js';
import { formatTopText, summarizeLive } from '../../src/cli/top/summary.js';
import { TopStore, TopView } from '../../src/cli/top/view.js';
import { type AdminStub, closedPort, liveFixture, startAdminStub } from '../monitoring/admin-stub.js';

const TOKEN = 'top-test-token-0123456789';
const NOW = Date.parse('2025-03-01T10:30:00.500Z');

/** The frame without colour codes. */
function plain(frame: string | undefined): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences
  return (frame ?? '').replace(/\u001b\[[0-9;]*m/g, '');
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function captureIO(
  env: Record<string, string>,
  isTTY: boolean,
): CliIO & { out: () => string; err: () => string } {
  let stdout = '';
  let stderr = '';
  return {
    stdout: { write: (chunk: string) => (stdout += chunk), isTTY },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env,
    cwd: process.cwd(),
    out: () => stdout,
    err: () => stderr,
  };
}

let stub: AdminStub;
let env: Record<string, string>;
let liveCalls = 0;
beforeAll(async () => {
  stub = await startAdminStub({ token: TOKEN });
  stub.live = (now) => {
    liveCalls++;
    return liveFixture(now);
  };
  env = { MELI_PROXY_ADMIN_URL: stub.url, MELI_PROXY_ADMIN_TOKEN: TOKEN };
});
afterAll(() => stub.close());

const views: Array<ReturnType<typeof render>> = [];
afterEach(() => {
  for (const view of views.splice(0)) view.unmount();
});

describe('figures from /admin/stats/live', () => {
  it('rates over the 10 complete seconds before the current one; latency of the newest busy second', () => {
    const live = liveFixture(NOW);
    // Make the window easy to check: the current (last) second is ignored.
    live.seconds = live.seconds.map((second, index) => ({
      ...second,
      requests: index >= 49 && index < 59 ? 100 : index === 59 ? 9_999 : 0,
      rateLimited: index >= 49 && index < 59 ? 10 : 0,
      errors: index === 58 ? 5 : 0,
      p50Ms: 3,
      p99Ms: index === 58 ? 42 : 7,
    }));
    const summary = summarizeLive(live);
    expect(summary.windowSeconds).toBe(10);
    expect(summary.rps).toBe(100);
    expect(summary.rateLimitedPerSecond).toBe(10);
    expect(summary.errorRate).toBeCloseTo(5 / 1000);
    expect(summary.p99Ms).toBe(42);
    expect(summary.requestsLastMinute).toBe(1000 + 9_999);
  });

  it('an idle proxy: zeros and dashes, not NaN', () => {
    const live = liveFixture(NOW);
    live.seconds = live.seconds.map((second) => ({ ...second, requests: 0, rateLimited: 0, errors: 0 }));
    live.topRoutes = [];
    live.topIps = [];
    live.topRules = [];
    const text = formatTopText(summarizeLive(live), 'http://127.0.0.1:8081').join('\n');
    expect(text).toContain('rps 0.0 · 429/s 0.0 · 5xx – · p50 – · p99 –');
    expect(text).toContain('TOP ROUTES: no traffic');
    expect(text).toContain('TOP RULES: no rule hit');
    expect(text).not.toContain('NaN');
  });
});

describe('ink view', () => {
  it('renders the headline, the sparkline and the top routes, IPs and rules side by side', () => {
    const store = new TopStore('http://127.0.0.1:8081');
    store.show(summarizeLive(liveFixture(NOW)));
    const view = render(<TopView store={store} onQuit={() => undefined} />);
    views.push(view);
    const frame = plain(view.lastFrame());
    expect(frame).toContain('meli-proxy top');
    expect(frame).toContain('q: quit');
    expect(frame).toMatch(/rps \d+/);
    expect(frame).toMatch(/p99 \d+\.\d ms/);
    const header = frame.split('\n').find((line) => line.includes('TOP ROUTES'));
    expect(header).toMatch(/TOP ROUTES .* TOP CLIENT IPS .* TOP RULES/);
    expect(frame).toMatch(/\/items\/:id\s+5,120\s+152\.152\.152\.152\s+4,410\s+ip-items\s+288/);
  });

  it('shows a failed refresh under the last numbers', () => {
    const store = new TopStore('http://127.0.0.1:8081');
    store.show(summarizeLive(liveFixture(NOW)));
    store.fail('no proxy admin API at http://127.0.0.1:8081: is `meli-proxy serve` running?');
    const view = render(<TopView store={store} onQuit={() => undefined} />);
    views.push(view);
    const frame = plain(view.lastFrame());
    expect(frame).toContain('/items/:id');
    expect(frame).toContain('no proxy admin API');
  });

  it('q quits', async () => {
    const store = new TopStore('http://127.0.0.1:8081');
    let quits = 0;
    const view = render(<TopView store={store} onQuit={() => quits++} />);
    views.push(view);
    expect(plain(view.lastFrame())).toContain('waiting for the first numbers');
    await new Promise((resolve) => setTimeout(resolve, 20));
    view.stdin.write('x');
    view.stdin.write('q');
    await until(() => quits === 1, 'onQuit');
  });
});

describe('top on a terminal', () => {
  it('draws its first frame at once, before the first answer arrives', async () => {
    const io = captureIO(env, true);
    let view: ReturnType<typeof render> | undefined;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const deps: TopDeps = {
      sleep: (_ms, signal) =>
        new Promise((resolve) => {
          signal?.addEventListener('abort', () => resolve());
        }),
      fetch: async (input, init) => {
        await gate;
        return fetch(input, init);
      },
      mount: (element) => {
        view = render(element);
        views.push(view);
        return { unmount: () => view!.unmount() };
      },
    };
    const running = runTop({ interval: '1' }, io, deps);
    await until(() => view !== undefined, 'the first frame');
    expect(plain(view!.lastFrame())).toContain('waiting for the first numbers');
    release();
    await until(() => /\/items\/:id\s+5,120/.test(plain(view!.lastFrame())), 'the numbers');
    view!.stdin.write('q');
    await running;
  });

  it('still fails with exit 1 and the message when the first answer is an error', async () => {
    const io = captureIO({ ...env, MELI_PROXY_ADMIN_URL: `http://127.0.0.1:${await closedPort()}` }, true);
    let unmounted = false;
    const deps: TopDeps = {
      sleep: async () => undefined,
      mount: () => ({
        unmount: () => {
          unmounted = true;
        },
      }),
    };
    await expect(runTop({ interval: '1' }, io, deps)).rejects.toThrow(/no proxy admin API/);
    expect(unmounted).toBe(true);
  });

  it('draws live numbers, refreshes, and returns when q is pressed', async () => {
    const io = captureIO(env, true);
    let view: ReturnType<typeof render> | undefined;
    let unmounted = false;
    const deps: TopDeps = {
      sleep: (ms, signal) =>
        new Promise((resolve) => {
          const timer = setTimeout(resolve, Math.min(ms, 50));
          signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
      mount: (element) => {
        view = render(element);
        views.push(view);
        return {
          unmount: () => {
            unmounted = true;
            view!.unmount();
          },
        };
      },
    };
    const before = liveCalls;
    const running = runTop({ interval: '1' }, io, deps);
    await until(() => view !== undefined && liveCalls >= before + 3, 'three refreshes');
    expect(plain(view!.lastFrame())).toMatch(/\/items\/:id\s+5,120/);
    view!.stdin.write('q');
    await running;
    expect(unmounted).toBe(true);
    const calls = liveCalls;
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(liveCalls, 'no refresh after quitting').toBe(calls);
    expect(io.out()).toBe('');
  });

  it('--count N stops by itself after N refreshes', async () => {
    const io = captureIO(env, true);
    const before = liveCalls;
    await runTop({ interval: '0.2', count: '3' }, io, {
      sleep: async () => undefined,
      mount: (element) => {
        const view = render(element);
        views.push(view);
        return view;
      },
    });
    expect(liveCalls - before).toBe(3);
  });
});

describe('top without a terminal', () => {
  const noSleep: TopDeps = {
    sleep: async () => undefined,
    mount: () => {
      throw new Error('no ink view without a terminal');
    },
  };

  it('prints one plain snapshot', async () => {
    const io = captureIO(env, false);
    await runTop({ interval: '1' }, io, noSleep);
    const text = io.out();
    expect(text).toMatch(
      new RegExp(
        `^meli-proxy top · ${stub.url.replace(/[.:/]/g, '\\$&')} · \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\n`,
      ),
    );
    expect(text).toMatch(
      /^rps [\d.,]+ · 429\/s [\d.]+ · 5xx [\d.]+% · p50 [\d.]+ ms · p99 [\d.]+ ms \(last 10 s\)$/m,
    );
    expect(text).toMatch(/^\|.{60}\| [\d,]+\/min$/m);
    expect(text).toMatch(/^TOP ROUTES\s+REQ\/60s\n\/items\/:id\s+5,120$/m);
    expect(text).toMatch(/^TOP CLIENT IPS\s+REQ\/60s\n152\.152\.152\.152\s+4,410$/m);
    expect(text).toMatch(/^TOP RULES\s+HITS\/60s\nip-items\s+288\ncategories-shadow \(shadow\)\s+40$/m);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no escape sequences in plain mode
    expect(text).not.toMatch(/\u001b/);
  });

  it('fits 80 columns with a busy minute (sparkline line included)', () => {
    const live = liveFixture(NOW);
    for (const second of live.seconds) second.requests *= 10_000;
    const lines = formatTopText(summarizeLive(live), 'http://127.0.0.1:8081');
    const spark = lines.find((line) => /^\|.{60}\| /.test(line));
    expect(spark).toBeDefined();
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(80);
  });

  it('p99 comes from the 10 s window the headline claims when the server sends it', () => {
    const live = { ...liveFixture(NOW), window: { seconds: 10, p50Ms: 3.5, p99Ms: 2_600 } };
    const summary = summarizeLive(live);
    expect(summary.p99Ms).toBe(2_600);
    expect(summary.p50Ms).toBe(3.5);
  });

  it('--count 3 prints three snapshots separated by blank lines', async () => {
    const io = captureIO(env, false);
    const before = liveCalls;
    await runTop({ interval: '0.2', count: '3' }, io, noSleep);
    expect(io.out().match(/^meli-proxy top · /gm)).toHaveLength(3);
    expect(io.out()).toContain('\n\nmeli-proxy top · ');
    expect(liveCalls - before).toBe(3);
  });

  it('through the CLI: errors and bad flags exit with 1 and 2', async () => {
    const port = await closedPort();
    const refused = captureIO(
      { MELI_PROXY_ADMIN_URL: `http://127.0.0.1:${port}`, MELI_PROXY_ADMIN_TOKEN: TOKEN },
      false,
    );
    expect(await runCli(['top'], refused)).toBe(1);
    expect(refused.err()).toBe(
      `meli-proxy: error: no proxy admin API at http://127.0.0.1:${port}: is \`meli-proxy serve\` running?\n`,
    );

    const rejected = captureIO({ MELI_PROXY_ADMIN_URL: stub.url }, false);
    expect(await runCli(['top'], rejected)).toBe(1);
    expect(rejected.err()).toMatch(/admin token rejected: set MELI_PROXY_ADMIN_TOKEN/);

    for (const argv of [
      ['top', '--interval', '0'],
      ['top', '--count', 'many'],
    ]) {
      const bad = captureIO(env, false);
      expect(await runCli(argv, bad), argv.join(' ')).toBe(2);
      expect(bad.err()).toMatch(/Invalid --(interval|count)/);
    }

    const ok = captureIO(env, false);
    expect(await runCli(['top'], ok)).toBe(0);
    expect(ok.out()).toContain('TOP ROUTES');
  });
});
