/**
 * A real Redis for tests: the `redis-server` on PATH (Debian's `redis-server` package; CI installs
 * it with apt), listening on 127.0.0.1 only, in a temp dir of its own, persisting nothing unless
 * asked to (appendOnly: AOF in that dir, which a restart reads back).
 *
 * API
 *   skipWithoutRedis()   → true when redis-server is missing and the suite should be skipped (with a
 *                          loud warning); throws instead when CI=true, where a missing tool is a
 *                          failure. Use it as `describe.skipIf(skipWithoutRedis())(…)`.
 *   startRedis(opts?)    → RedisServer on a free port, answering PING; opts.appendOnly keeps every
 *                          acknowledged write across stop() and start().
 *     .url                 redis://[:password@]127.0.0.1:<port> (add /<n> for database n)
 *     .port, .password
 *     .stop()              kill the server and wait for it to exit; the port is kept
 *     .start()             start it again on the same port and dir (empty unless appendOnly)
 *     .pause() / .resume() SIGSTOP / SIGCONT: the server keeps its connections but answers nothing
 *     .dispose()           stop and delete the temp dir (idempotent)
 *   Servers still running when the process exits are killed, and their temp dirs removed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './postgres.js';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly password: string | undefined;
  stop(): Promise<void>;
  start(): Promise<void>;
  pause(): void;
  resume(): void;
  dispose(): Promise<void>;
}

export interface StartRedisOptions {
  /** Require this password (`requirepass`); none by default. */
  password?: string | undefined;
  /** How long startup may take. Default 10 s. */
  startTimeoutMs?: number;
  /**
   * Keep every acknowledged write across stop() and start(), as production Redis should (AOF with
   * an fsync before each reply, in the server's own dir); by default nothing is persisted.
   */
  appendOnly?: boolean;
}

/** The redis-server executable on PATH, if any. */
export function findRedisServer(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

let warned = false;

export function skipWithoutRedis(): boolean {
  if (findRedisServer()) return false;
  const message =
    'redis-server is not on PATH: the Redis store tests cannot run. Install it (apt-get install redis-server).';
  if (process.env.CI === 'true') throw new Error(`${message} CI must provide it.`);
  if (!warned) {
    warned = true;
    console.warn(`\n${'!'.repeat(100)}\n!! SKIPPING Redis store tests: ${message}\n${'!'.repeat(100)}\n`);
  }
  return true;
}

/** Servers alive at exit are killed and their temp dirs removed, so none outlive a crashed run. */
const live = new Map<ChildProcess, string>();
let exitHookInstalled = false;
function track(child: ChildProcess, dir: string): void {
  live.set(child, dir);
  child.once('exit', () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [c, d] of live) {
      c.kill('SIGKILL');
      rmSync(d, { recursive: true, force: true });
    }
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function bulk(text: string): string {
  return `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
}

/** True once the server answers PING (after AUTH when it wants a password). */
function answersPing(port: number, password: string | undefined, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('error', () => done(false));
    socket.on('connect', () => {
      const auth = password ? `*2\r\n${bulk('AUTH')}${bulk(password)}` : '';
      socket.write(`${auth}*1\r\n${bulk('PING')}`);
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
      if (received.includes('+PONG\r\n')) done(true);
      else if (received.includes('-')) done(false);
    });
  });
}

async function terminate(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGKILL');
  await exited;
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const binary = findRedisServer();
  if (!binary) throw new Error('redis-server is not on PATH (apt-get install redis-server)');
  const dir = await mkdtemp(path.join(tmpdir(), 'meli-redis-'));
  const password = opts.password;
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  let port = 0;
  let child: ChildProcess | undefined;
  let disposed = false;

  const launch = async (onPort: number): Promise<void> => {
    const args = [
      '--port',
      String(onPort),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      opts.appendOnly ? 'yes' : 'no',
      '--appendfsync',
      'always',
      '--daemonize',
      'no',
      '--dir',
      dir,
      '--logfile',
      '',
    ];
    if (password) args.push('--requirepass', password);
    const proc = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    track(proc, dir);
    const logTail: string[] = [];
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        logTail.push(line);
        if (logTail.length > 20) logTail.shift();
      }
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    proc.once('error', () => {
      exited = true;
    });
    const deadline = Date.now() + startTimeoutMs;
    while (!(await answersPing(onPort, password))) {
      if (exited || Date.now() > deadline) {
        if (!exited) await terminate(proc);
        const reason = exited ? 'exited' : `did not answer PING within ${startTimeoutMs} ms`;
        throw new Error(`redis-server on port ${onPort} ${reason}:\n${logTail.join('\n')}`);
      }
      await sleep(20);
    }
    child = proc;
  };

  const start = async (): Promise<void> => {
    if (disposed) throw new Error('this Redis test server was disposed; start a new one');
    if (child) return;
    if (port !== 0) return launch(port);
    // A free port can be taken between probing and binding: try a few.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const candidate = await freePort();
      try {
        await launch(candidate);
        port = candidate;
        return;
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc) await terminate(proc);
  };

  try {
    await start();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  const signal = (name: NodeJS.Signals) => {
    if (!child) throw new Error('the Redis test server is not running');
    child.kill(name);
  };

  return {
    get url() {
      return `redis://${password ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:${port}`;
    },
    port,
    password,
    start,
    stop,
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    async dispose() {
      if (disposed) return;
      await stop();
      disposed = true;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A random password for a test server. */
export function testPassword(): string {
  return `pw-${randomBytes(9).toString('hex')}`;
}
