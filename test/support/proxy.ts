/**
 * Starting the proxy for tests, two ways:
 *
 *   startTestProxy({ upstream, ...settings })  in this process: loadConfig + openStore('memory') +
 *       startServer, log lines captured in memory. Settings are given as the CLI would pass flags.
 *   spawnCli(args, env)  the real `bin/meli-proxy.js` as a child process (needs `npm run build`);
 *       resolves once it logged "proxy listening" and "admin listening" (and, under `--workers`,
 *       "all workers ready").
 *   runCliProcess(args, env)  runs the binary to completion (for --help, bad configuration …).
 *   useOriginAndDataDir()  the hooks a suite of such children needs: a test origin, a data dir, cleanup.
 * Everything either way logs (LogCapture, the children's stdout and stderr) is also appended to the
 * run's captured logs, which the final secret scan reads (see secrets.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { loadConfig, type SettingKey } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server/index.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';
import { type Origin, startOrigin } from '../peers/origin.js';
import { type LogSink, logSink } from './secrets.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The launcher under test; MELI_TEST_BIN points the CLI tests at another build (e.g. an installed package). */
export const BIN = process.env.MELI_TEST_BIN ?? path.join(REPO_ROOT, 'bin', 'meli-proxy.js');

export type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

/** Log lines as written (one JSON document per line) and parsed. */
export class LogCapture {
  readonly lines: string[] = [];
  private partial = '';
  /** Everything written also goes to the run's secret scan (see secrets.ts). */
  private sink: LogSink | undefined;

  /** pino's DestinationStream. */
  write(chunk: string): void {
    this.sink ??= logSink('logger');
    this.sink.write(chunk);
    const text = this.partial + chunk;
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) if (line.length > 0) this.lines.push(line);
  }

  get records(): LogRecord[] {
    return this.lines.map((line) => JSON.parse(line) as LogRecord);
  }

  withMessage(msg: string): LogRecord[] {
    return this.records.filter((record) => record.msg === msg);
  }

  /** Everything captured, for "this string never appears" assertions. */
  get text(): string {
    return this.lines.join('\n') + this.partial;
  }
}

export type TestProxySettings = Partial<Record<SettingKey, unknown>> & { upstream: string };

export interface TestProxy {
  url: string;
  adminUrl: string;
  server: RunningServer;
  store: Store;
  logs: LogCapture;
  dataDir: string;
  /** Graceful shutdown (idempotent); also removes the data dir. */
  close(): Promise<void>;
}

export interface TestProxyOptions {
  /** A store to use instead of openStore('memory'), e.g. one whose check() fails. */
  store?: (memory: Store) => Store;
}

/** Starts the proxy in this process on free loopback ports, with a memory store. */
export async function startTestProxy(
  settings: TestProxySettings,
  options: TestProxyOptions = {},
): Promise<TestProxy> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'meli-proxy-test-'));
  const config = loadConfig({
    env: {},
    flags: { port: 0, adminPort: 0, store: 'memory', dataDir, logLevel: 'info', ...settings },
  });
  const logs = new LogCapture();
  const logger = createLogger(config.logLevel, logs);
  const memory = await openStore('memory', { dataDir, logger });
  const store = options.store ? options.store(memory) : memory;
  const server = await startServer(config, { logger, store, version: 'test' });
  let closing: Promise<void> | undefined;
  return {
    url: server.proxyUrl,
    adminUrl: server.adminUrl,
    server,
    store,
    logs,
    dataDir,
    close: () => {
      closing ??= server
        .shutdown('test over')
        .finally(() => rmSync(dataDir, { recursive: true, force: true }));
      return closing;
    },
  };
}

/**
 * The environment a child gets: this one without any MELI_* or NODE_OPTIONS, plus `env`. The worker
 * count is left at the default (`auto`, one worker per core) as a user starting the proxy gets it;
 * a test that needs one serving process says so with ONE_PROCESS (and why).
 */
export function childEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('MELI_') || name === 'NODE_OPTIONS' || name.startsWith('VITEST')) continue;
    clean[name] = value;
  }
  return { ...clean, ...env };
}

/** Arguments of `serve` for one serving process (no cluster primary, no workers). */
export const ONE_PROCESS: readonly string[] = ['--workers', '1'];

/** One way of running `serve`, for suites parametrised over the worker count. */
export interface WorkerMode {
  /** For the describe title. */
  name: string;
  /** Arguments added to `serve`. */
  args: readonly string[];
}

/**
 * The worker counts the end-to-end suites run under: one process, and the default (`auto`, one
 * worker per core), which is what `npm start` runs. Use with `describe.each(WORKER_MODES)`.
 */
export const WORKER_MODES: readonly WorkerMode[] = [
  { name: '--workers 1', args: ONE_PROCESS },
  { name: 'default workers (auto)', args: [] },
];

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CliProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  adminUrl: string;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as JSON log lines (non-JSON lines skipped). */
  logRecords(): LogRecord[];
  readonly exited: Promise<ExitResult>;
  /** Resident set size of the child in bytes, from /proc/<pid>/status. */
  rss(): number;
  /** Sends `signal` and resolves with the exit code; SIGKILLs after timeoutMs and rejects. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/**
 * How long a child may take to start, or to exit, before it counts as hung. Only a hang guard: a
 * cluster of workers on a machine busy with other work can take many seconds to start, and a test
 * that needs a prompt exit asserts that on its own terms.
 */
export const HANG_DEADLINE_MS = 60_000;

const children = new Set<ChildProcess>();

/** Appends a child's stdout and stderr to a log of the run's secret scan (see secrets.ts). */
function recordOutput(child: ChildProcess, label: string): void {
  const sink = logSink(label);
  child.stdout!.on('data', (chunk: Buffer | string) => sink.write(String(chunk)));
  child.stderr!.on('data', (chunk: Buffer | string) => sink.write(String(chunk)));
  child.once('exit', () => sink.flush());
}

/** Pids of the live processes whose parent is `pid` (e.g. the workers of `serve --workers`), from /proc. */
export function childPids(pid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** SIGKILLs every child this module started that is still running (for afterAll hooks). */
export function killChildren(): void {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
}

export interface SpawnOptions {
  /** How long to wait for the listening lines (default HANG_DEADLINE_MS). */
  timeoutMs?: number;
  cwd?: string;
  /** Options for node itself, placed before the script (e.g. --max-semi-space-size=1). */
  nodeArgs?: string[];
}

/** Runs `node bin/meli-proxy.js …args` and waits until both ports listen. */
export async function spawnCli(
  args: string[],
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): Promise<CliProcess> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), BIN, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  recordOutput(child, `cli-${args[0] ?? 'run'}`);
  const exited = new Promise<ExitResult>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });

  const listening = new Promise<{ url: string; adminUrl: string }>((resolve, reject) => {
    let url: string | undefined;
    let adminUrl: string | undefined;
    // Under `--workers` N > 1 each worker logs where it listens: the cluster serves fully (and
    // stops cleanly) once the primary says all of them are ready.
    let clustered = false;
    let allReady = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `meli-proxy did not start within ${options.timeoutMs ?? HANG_DEADLINE_MS} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`,
        ),
      );
    }, options.timeoutMs ?? HANG_DEADLINE_MS);
    child.stdout!.on('data', (chunk: string) => {
      stdout += chunk;
      if (url && adminUrl && (!clustered || allReady)) return;
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const record = JSON.parse(line) as LogRecord;
          if (record.msg === 'starting workers') clustered = true;
          if (record.msg === 'all workers ready') allReady = true;
          if (record.msg === 'proxy listening') url = String(record.url);
          if (record.msg === 'admin listening') adminUrl = String(record.url);
        } catch {
          // a partial line; the next chunk completes it
        }
      }
      if (url && adminUrl && (!clustered || allReady)) {
        clearTimeout(timer);
        resolve({ url, adminUrl });
      }
    });
    child.stderr!.on('data', (chunk: string) => {
      stderr += chunk;
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        new Error(
          `meli-proxy exited (code ${code}, signal ${signal}) before listening\nstdout:\n${stdout}\nstderr:\n${stderr}`,
        ),
      );
    });
  });

  const { url, adminUrl } = await listening;
  return {
    child,
    pid: child.pid!,
    url,
    adminUrl,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    logRecords: () =>
      stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as LogRecord];
          } catch {
            return [];
          }
        }),
    exited,
    rss: () => {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
      if (!match) throw new Error(`no VmRSS in /proc/${child.pid}/status`);
      return Number(match[1]) * 1024;
    },
    stop: async (signal = 'SIGTERM', timeoutMs = HANG_DEADLINE_MS) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        exited,
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (result === 'timeout') {
        child.kill('SIGKILL');
        throw new Error(
          `meli-proxy did not exit within ${timeoutMs} ms of ${signal}\nstdout:\n${stdout}\nstderr:\n${stderr}`,
        );
      }
      return result.code;
    },
  };
}

export interface CompletedProcess extends ExitResult {
  stdout: string;
  stderr: string;
}

/** Runs `node bin/meli-proxy.js …args` to completion (SIGKILL after timeoutMs). */
export function runCliProcess(
  args: string[],
  env: Record<string, string> = {},
  options: { timeoutMs?: number; cwd?: string } = {},
): Promise<CompletedProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: childEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    recordOutput(child, `cli-${args[0] ?? 'run'}`);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `meli-proxy ${args.join(' ')} did not exit within ${options.timeoutMs ?? HANG_DEADLINE_MS} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`,
        ),
      );
    }, options.timeoutMs ?? HANG_DEADLINE_MS);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * The arguments of `meli-proxy serve` as most process tests start it: in front of `upstream`, on
 * free ports, with the in-memory store and `dataDir`, then `extra`.
 */
export function serveArgs(upstream: string, dataDir: string, ...extra: string[]): string[] {
  return [
    'serve',
    '--upstream',
    upstream,
    '--port',
    '0',
    '--admin-port',
    '0',
    '--store',
    'memory',
    '--data-dir',
    dataDir,
    ...extra,
  ];
}

/**
 * The arguments of `meli-proxy serve` as a replica on a shared store (a PostgreSQL or Redis URL):
 * in front of `upstream`, on free ports, without an access log, then `extra`.
 */
export function replicaServeArgs(upstream: string, storeUrl: string, ...extra: string[]): string[] {
  return [
    'serve',
    '--store',
    storeUrl,
    '--port',
    '0',
    '--admin-port',
    '0',
    '--upstream',
    upstream,
    '--access-log',
    'off',
    ...extra,
  ];
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(prefix = 'meli-proxy-test-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface OriginAndDataDir {
  /** Started in beforeAll, so read it from tests and hooks, not while the suite is being collected. */
  readonly origin: Origin;
  /** For the children's --data-dir. */
  readonly dir: string;
}

/**
 * The scaffolding of a suite that runs CLI children against a test origin: starts the origin before
 * the suite and gives it a temporary data dir; after the suite SIGKILLs the children still running
 * (a failed test may leave one), closes the origin and removes the dir. `resetOrigin` forgets the
 * origin's recorded requests before each test, for suites that assert on what one test sent.
 */
export function useOriginAndDataDir(options: { resetOrigin?: boolean } = {}): OriginAndDataDir {
  let origin: Origin | undefined;
  const data = tempDir();
  const fixture: OriginAndDataDir = {
    get origin() {
      if (!origin) throw new Error('the test origin is started in beforeAll; it is not there yet');
      return origin;
    },
    dir: data.dir,
  };
  beforeAll(async () => {
    origin = await startOrigin();
  });
  afterAll(async () => {
    killChildren();
    await origin?.close();
    data.remove();
  });
  if (options.resetOrigin) beforeEach(() => fixture.origin.reset());
  return fixture;
}
