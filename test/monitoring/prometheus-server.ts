/**
 * A real Prometheus (Debian's `prometheus`) for tests: started on a free loopback port with a
 * scrape config of the test's making, queried over its HTTP API, stopped after. Missing
 * prometheus: a loud skip locally, a failure under CI=true.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

function prometheusPath(): string | undefined {
  const chosen = process.env.MELI_TEST_PROMETHEUS;
  if (chosen) return existsSync(chosen) ? chosen : undefined;
  for (const dir of ['/usr/bin', ...(process.env.PATH ?? '').split(path.delimiter)]) {
    const candidate = path.join(dir, 'prometheus');
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The prometheus binary, or undefined after a loud notice (throws under CI=true). */
export function requirePrometheus(suite: string): string | undefined {
  const found = prometheusPath();
  if (found) return found;
  const message = `prometheus is not installed: ${suite} needs it (apt-get install prometheus, or set MELI_TEST_PROMETHEUS)`;
  if (process.env.CI === 'true') throw new Error(message);
  const bar = '!'.repeat(Math.min(100, message.length + 10));
  console.warn(`\n${bar}\n!!!  SKIPPED: ${message}\n${bar}\n`);
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface PrometheusServer {
  url: string;
  /** What prometheus printed so far (for failure messages). */
  readonly output: string;
  get<T>(apiPath: string): Promise<T>;
  stop(): Promise<void>;
}

/** Starts prometheus with `config` (YAML text) and extra flags; resolves once it is ready. */
export async function startPrometheus(
  binary: string,
  config: string,
  flags: readonly string[] = [],
): Promise<PrometheusServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'meli-prometheus-'));
  writeFileSync(path.join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = '';
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
      ...flags,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Only a hang guard: prometheus is normally ready within a second.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited (${child.exitCode}):\n${output}`);
    }
    const ready = await fetch(`${url}/-/ready`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready within 30 s:\n${output}`);
    }
    await sleep(200);
  }
  return {
    url,
    get output() {
      return output;
    },
    async get<T>(apiPath: string): Promise<T> {
      return (await (await fetch(`${url}${apiPath}`)).json()) as T;
    },
    stop,
  };
}
