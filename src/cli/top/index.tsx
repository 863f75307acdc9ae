/**
 * `meli-proxy top`: a live view of a running proxy, refreshed every second from
 * `GET /admin/stats/live`. On a terminal it draws with ink and quits on `q`; otherwise (a pipe, a
 * file, CI) it prints one plain-text snapshot, or `--count N` of them, one `--interval` apart.
 *
 * On a terminal the first frame is drawn at once and filled by the first answer; an unreachable
 * proxy or a rejected token still ends the command with its message and exit status 1.
 */
import type { Command } from 'commander';
import type { ReactElement } from 'react';
import { UsageError } from '../../errors.js';
import { AdminClient, adminClientOptions, DEFAULT_ADMIN_URL, type FetchLike } from '../admin-client.js';
import type { CliIO } from '../io.js';
import { formatTopText, summarizeLive } from './summary.js';

export interface MountedView {
  unmount(): void;
}

export interface TopDeps {
  fetch?: FetchLike;
  /** Resolves after `ms`, or early when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Draws the live view; called only when io.stdout is a terminal. `onExit` is called if the view
   * ends by itself (Ctrl-C). Default: ink on process.stdin/stdout.
   */
  mount(element: ReactElement, onExit: () => void): MountedView;
}

let loadedInk: typeof import('ink') | undefined;

export function defaultTopDeps(): TopDeps {
  return {
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          resolve();
        }
        signal?.addEventListener('abort', done, { once: true });
      }),
    mount: (element, onExit) => {
      // ink is loaded only by a terminal that shows it: every other command starts faster without it.
      const instance = loadedInk!.render(element, {
        stdout: process.stdout,
        stdin: process.stdin,
        exitOnCtrlC: true,
        patchConsole: false,
      });
      void instance.waitUntilExit().then(onExit, onExit);
      return instance;
    },
  };
}

interface TopFlags {
  interval: string;
  count?: string;
  adminUrl?: string;
}

function parseInterval(text: string): number {
  const value = Number(text);
  if (!(Number.isFinite(value) && value >= 0.2 && value <= 60)) {
    throw new UsageError(`Invalid --interval "${text}": expected seconds from 0.2 to 60, e.g. 1 or 2.5.`);
  }
  return Math.round(value * 1000);
}

function parseCount(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!(value >= 1 && value <= 1_000_000)) {
    throw new UsageError(`Invalid --count "${text}": expected a whole number of refreshes, 1 or more.`);
  }
  return value;
}

export async function runTop(flags: TopFlags, io: CliIO, deps: TopDeps): Promise<void> {
  const intervalMs = parseInterval(flags.interval);
  const count = parseCount(flags.count);
  const client = new AdminClient({
    ...adminClientOptions(io.env, flags),
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  });
  // One refresh: the live figures, and which rules are shadow rules (left unmarked when the
  // rules cannot be read: the figures matter more).
  const snapshot = async () => {
    const [live, limits] = await Promise.all([
      client.live(),
      client
        .getJson<{ rules?: Array<{ id: string; mode?: string }> }>('/admin/limits')
        .catch(() => undefined),
    ]);
    const shadow = new Set(
      (limits?.rules ?? []).filter((rule) => rule.mode === 'shadow').map((rule) => rule.id),
    );
    return summarizeLive(live, undefined, shadow);
  };

  if (io.stdout.isTTY !== true) {
    // Fails fast (exit 1, clear message) when the API is not there.
    let summary = await snapshot();
    const snapshots = count ?? 1;
    for (let index = 0; ; index++) {
      io.stdout.write(`${index > 0 ? '\n' : ''}${formatTopText(summary, client.baseUrl).join('\n')}\n`);
      if (index + 1 >= snapshots) return;
      await deps.sleep(intervalMs);
      summary = await snapshot();
    }
  }

  loadedInk ??= await import('ink');
  const { TopStore, TopView } = await import('./view.js');
  // The first frame is drawn at once ("waiting for the first numbers"); the first answer fills it.
  const store = new TopStore(client.baseUrl);
  const stop = new AbortController();
  const quit = () => stop.abort();
  const view = deps.mount(<TopView store={store} onQuit={quit} />, quit);
  try {
    // Still fails fast (exit 1, clear message) when the API is not there.
    store.show(await snapshot());
  } catch (error) {
    view.unmount();
    throw error;
  }
  try {
    let refreshes = 1;
    while (!stop.signal.aborted && (count === undefined || refreshes < count)) {
      await deps.sleep(intervalMs, stop.signal);
      if (stop.signal.aborted) break;
      try {
        store.show(await snapshot());
      } catch (error) {
        // Keep the last numbers on screen and try again next second.
        store.fail(error instanceof Error ? error.message : String(error));
      }
      refreshes++;
    }
  } finally {
    view.unmount();
  }
}

export function registerTop(program: Command, io: CliIO, deps: TopDeps = defaultTopDeps()): void {
  program
    .command('top')
    .description(
      'Live view of a running proxy: requests/s, errors, latency, top routes, client IPs and rules.',
    )
    .option('--interval <seconds>', 'time between refreshes', '1')
    .option('--count <n>', 'stop after n refreshes (without a terminal: print n snapshots; default 1)')
    .option(
      '--admin-url <url>',
      `admin API of the proxy (env MELI_PROXY_ADMIN_URL, default ${DEFAULT_ADMIN_URL})`,
    )
    .addHelpText(
      'after',
      '\nThe admin token is read from MELI_PROXY_ADMIN_TOKEN. Press q to quit. Figures are those of the\n' +
        'replica that answers (in Kubernetes, point --admin-url at one pod); `meli-proxy stats` covers all.',
    )
    .action(async (flags: TopFlags) => runTop(flags, io, deps));
}
