/**
 * The real `meli-proxy serve` (bin/meli-proxy.js, as a child process) under a given worker mode,
 * with the test-facing shape of startTestProxy: url, adminUrl, logs, dataDir, close().
 *
 *   startServeProxy(mode, { upstream, ...settings }, options?)
 *       Settings are given as to startTestProxy (keys of src/config.ts) and passed as their flags;
 *       the memory store, free loopback ports and a fresh data dir as startTestProxy uses them.
 *
 * Suites that need no in-process internals (`server`, `store`) run over every worker mode with it:
 *
 *   describe.each(WORKER_MODES)('forwarding ($name)', (mode) => {
 *     beforeAll(async () => { proxy = await startServeProxy(mode, { upstream: origin.url }); });
 *   });
 */
import { SETTINGS, type SettingKey } from '../../src/config.js';
import {
  type CliProcess,
  HANG_DEADLINE_MS,
  type LogRecord,
  spawnCli,
  type TestProxySettings,
  tempDir,
  type WorkerMode,
} from './proxy.js';

/** What a test reads of the proxy's log: every process's JSON lines (primary and workers). */
export interface ProxyLogs {
  readonly records: LogRecord[];
  withMessage(msg: string): LogRecord[];
  /** Everything written, for "this string never appears" assertions. */
  readonly text: string;
  /**
   * The first record with `msg` that `matches`, once some process has written it: log lines of a
   * child arrive through a pipe, after the response that caused them.
   */
  waitForRecord(msg: string, matches?: (record: LogRecord) => boolean): Promise<LogRecord>;
}

/** The shape startTestProxy and startServeProxy share, for suites that run over both. */
export interface ProxyUnderTest {
  url: string;
  adminUrl: string;
  logs: ProxyLogs;
  dataDir: string;
  /** Graceful shutdown (idempotent); also removes the data dir. */
  close(): Promise<void>;
}

export interface ServedProxy extends ProxyUnderTest {
  mode: WorkerMode;
  cli: CliProcess;
}

export interface ServeOptions {
  /** Extra environment for the child (MELI_* settings, a token file …). */
  env?: Record<string, string>;
  /** Arguments after the settings' flags. */
  args?: readonly string[];
}

/**
 * Each setting as a user would give it: `--flag value`, or for a secret (admin token, client secret)
 * its environment variable, which keeps it off the command line that `ps` shows.
 */
export function settingArgs(settings: Partial<Record<SettingKey, unknown>>): {
  flags: string[];
  env: Record<string, string>;
} {
  const flags: string[] = [];
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(settings)) {
    if (value === undefined) continue;
    const spec = SETTINGS[key as SettingKey];
    if (!spec) throw new Error(`settingArgs: ${key} is not a setting of src/config.ts`);
    const text = Array.isArray(value) ? value.join(',') : String(value);
    if (spec.secret) env[spec.env] = text;
    else flags.push(spec.flag, text);
  }
  return { flags, env };
}

/** Starts `meli-proxy serve` with `mode`'s worker count and waits until every worker serves. */
export async function startServeProxy(
  mode: WorkerMode,
  settings: TestProxySettings,
  options: ServeOptions = {},
): Promise<ServedProxy> {
  const data = tempDir();
  const { flags, env } = settingArgs({
    port: 0,
    adminPort: 0,
    store: 'memory',
    dataDir: data.dir,
    logLevel: 'info',
    ...settings,
  });
  let cli: CliProcess;
  try {
    cli = await spawnCli(['serve', ...flags, ...mode.args, ...(options.args ?? [])], {
      ...env,
      ...options.env,
    });
  } catch (error) {
    data.remove();
    throw error;
  }
  const logs: ProxyLogs = {
    get records() {
      return cli.logRecords();
    },
    withMessage: (msg) => cli.logRecords().filter((record) => record.msg === msg),
    get text() {
      return `${cli.stdout}\n${cli.stderr}`;
    },
    waitForRecord: async (msg, matches = () => true) => {
      const deadline = Date.now() + HANG_DEADLINE_MS;
      for (;;) {
        const found = logs.withMessage(msg).find(matches);
        if (found) return found;
        if (Date.now() > deadline)
          throw new Error(`no "${msg}" log line as expected within ${HANG_DEADLINE_MS} ms:\n${cli.stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
  };
  let closing: Promise<void> | undefined;
  return {
    mode,
    cli,
    url: cli.url,
    adminUrl: cli.adminUrl,
    logs,
    dataDir: data.dir,
    close: () => {
      closing ??= cli
        .stop('SIGTERM', HANG_DEADLINE_MS)
        .then((code) => {
          if (code !== 0)
            throw new Error(`meli-proxy serve (${mode.name}) exited with ${code}:\n${cli.stderr}`);
        })
        .finally(() => data.remove());
      return closing;
    },
  };
}
