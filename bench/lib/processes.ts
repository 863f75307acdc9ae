/**
 * Child processes of the benchmark: spawned in their own process group (so a server's workers
 * go with it), optionally pinned with `taskset`, and always stopped at the end — on success,
 * on error and on SIGINT/SIGTERM. Only processes started here are ever signalled.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const KEEP_LINES = 200;

export interface SpawnOptions {
  /** CPU list for `taskset -c` (e.g. "1"); undefined = not pinned. */
  cpus?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  /** The last lines of stdout and stderr, for error messages. */
  readonly tail: string[] = [];
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  private readonly lineListeners = new Set<(line: string) => void>();

  constructor(name: string, proc: ChildProcess) {
    this.name = name;
    this.proc = proc;
    // Spawn failures (ENOENT…) arrive as an 'error' event; the missing pid below reports them.
    proc.on('error', (error) => this.tail.push(`[bench] ${error.message}`));
    if (proc.pid === undefined) throw new Error(`${name}: could not start ${proc.spawnfile}`);
    this.pid = proc.pid;
    // Keep draining both pipes for the whole life of the child: a full pipe would stall it.
    for (const stream of [proc.stdout, proc.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
        this.tail.push(line);
        if (this.tail.length > KEEP_LINES) this.tail.shift();
        for (const listener of this.lineListeners) listener(line);
      });
    }
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Resolves with the first line (stdout or stderr) that `match` accepts. */
  waitForLine<T>(match: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const done = (error: Error | undefined, value?: T) => {
        clearTimeout(timer);
        this.lineListeners.delete(onLine);
        if (error) reject(error);
        else resolve(value as T);
      };
      const onLine = (line: string) => {
        const value = match(line);
        if (value !== undefined) done(undefined, value);
      };
      const timer = setTimeout(
        () => done(new Error(`${this.name}: not ready after ${timeoutMs} ms\n${this.describeTail()}`)),
        timeoutMs,
      );
      this.lineListeners.add(onLine);
      for (const line of this.tail) onLine(line);
      void this.exited.then((exit) =>
        done(new Error(`${this.name}: exited early (${formatExit(exit)})\n${this.describeTail()}`)),
      );
    });
  }

  describeTail(lines = 20): string {
    const tail = this.tail.slice(-lines);
    return tail.length === 0 ? '  (no output)' : tail.map((line) => `  | ${line}`).join('\n');
  }

  /** SIGTERM to the process, then SIGKILL to its whole group after `graceMs`. */
  async stop(graceMs = 5000): Promise<Exit> {
    if (this.exit) return this.exit;
    signal(this.pid, 'SIGTERM');
    const timer = setTimeout(() => signal(-this.pid, 'SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    // Leftover grandchildren (e.g. cluster workers) share the group: make sure they go too.
    signal(-this.pid, 'SIGKILL');
    return exit;
  }
}

const children = new Set<Child>();

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export function formatExit(exit: Exit): string {
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

let tasksetPath: string | null | undefined;

/** Whether `taskset` can be used on this machine (checked once). */
export function hasTaskset(): boolean {
  if (tasksetPath === undefined) tasksetPath = which('taskset');
  return tasksetPath !== null;
}

/** Absolute path of a command on PATH, or null. */
export function which(command: string): string | null {
  const result = spawnSync('sh', ['-c', `command -v "$0"`, command], { encoding: 'utf8' });
  const path = result.stdout.trim();
  return result.status === 0 && path !== '' ? path : null;
}

export function start(name: string, command: string, args: readonly string[], options: SpawnOptions = {}) {
  const [file, argv] = options.cpus ? ['taskset', ['-c', options.cpus, command, ...args]] : [command, args];
  const proc = spawn(file, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: a terminal's ^C reaches us only, and we stop the group
  });
  const child = new Child(name, proc);
  children.add(child);
  void child.exited.then(() => children.delete(child));
  return child;
}

/** Runs a command to completion (killed after `timeoutMs`), returning its output. */
export async function run(
  name: string,
  command: string,
  args: readonly string[],
  options: SpawnOptions & { timeoutMs: number },
): Promise<{ stdout: string; stderr: string; exit: Exit }> {
  const [file, argv] = options.cpus ? ['taskset', ['-c', options.cpus, command, ...args]] : [command, args];
  const proc = spawn(file, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const child = new Child(name, proc);
  children.add(child);
  let stdout = '';
  let stderr = '';
  proc.stdout?.setEncoding('utf8');
  proc.stderr?.setEncoding('utf8');
  // The Child's line readers also consume the streams; 'data' listeners see the same chunks.
  proc.stdout?.on('data', (chunk: string) => {
    stdout += chunk;
  });
  proc.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const timer = setTimeout(() => {
    stderr += `\n[bench] ${name} killed after ${options.timeoutMs} ms`;
    signal(-child.pid, 'SIGKILL');
  }, options.timeoutMs);
  const [exit] = await Promise.all([child.exited, once(proc, 'close')]);
  clearTimeout(timer);
  children.delete(child);
  return { stdout, stderr, exit };
}

/** Stops every child still running, in reverse start order. */
export async function stopAll(): Promise<void> {
  const all = [...children].reverse();
  await Promise.all(all.map((child) => child.stop()));
}

/** Last resort at process exit: synchronously SIGKILL every remaining process group. */
export function killAllSync(): void {
  for (const child of children) signal(-child.pid, 'SIGKILL');
}

/**
 * Resident memory in bytes of every live process in the process group `pgid` (a server and its
 * workers), from /proc/<pid>/statm; null when not on Linux.
 */
export function groupRssBytes(pgid: number): number | null {
  if (process.platform !== 'linux') return null;
  let pages = 0;
  for (const pid of groupPids(pgid)) {
    try {
      pages += Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    } catch {
      // exited meanwhile
    }
  }
  return pages * 4096;
}

/** Live pids whose process group is `pgid`. */
function groupPids(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Samples `read` every `intervalMs` until stopped; the largest value seen (null if never read). */
export function peakSampler(read: () => number | null, intervalMs = 250): { stop(): number | null } {
  let peak: number | null = null;
  const sample = () => {
    const value = read();
    if (value !== null && (peak === null || value > peak)) peak = value;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

let clockTicks: number | null | undefined;

/** Kernel clock ticks per second (`getconf CLK_TCK`), or null where /proc accounting is unavailable. */
function ticksPerSecond(): number | null {
  if (clockTicks === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(out.stdout.trim());
    clockTicks = process.platform === 'linux' && out.status === 0 && n > 0 ? n : null;
  }
  return clockTicks;
}

/**
 * CPU seconds (user + system) used so far by every live process in the process group `pgid`
 * (a server and its workers), from /proc. Null when not on Linux. Time of processes that already
 * exited is not counted, so sample around a run, not across restarts.
 */
export function groupCpuSeconds(pgid: number): number | null {
  const hz = ticksPerSecond();
  if (hz === null) return null;
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the parenthesised command: state ppid pgrp … utime(14) stime(15), 1-based overall.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) !== pgid) continue;
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / hz;
}
