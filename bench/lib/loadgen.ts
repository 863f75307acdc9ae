/**
 * Load generators. Closed loop (max throughput): wrk when installed, else autocannon.
 * Open loop (fixed rate, for the latency-at-half-load phase): our own client, bench/tools/rate-load.ts.
 * Every generator runs as a child process so it can be pinned away from the server under test.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './processes.js';

/** One measurement of one target. Latencies in milliseconds. */
export interface Sample {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Responses with a status outside 2xx/3xx. */
  non2xx: number;
  /** Connect/read/write errors and timeouts. */
  socketErrors: number;
}

export interface ClosedLoopJob {
  url: string;
  connections: number;
  durationS: number;
  cpus: string | undefined;
  /** Distinct X-Forwarded-For values to cycle through; 1 = no header. */
  ips: number;
  /** wrk threads (one per load-generator core on a bigger machine); autocannon ignores it. */
  threads?: number;
  /** Request headers on every request (`Accept-Encoding`, `Connection: close`); wrk only. */
  headers?: Record<string, string>;
  /** Seconds before the client gives up on a response and reconnects (wrk's --timeout). */
  timeoutS?: number;
}

export interface LoadGenerator {
  name: string;
  version: string;
  /** Whether `ClosedLoopJob.headers` are sent (and `Connection: close` honoured per request). */
  sendsHeaders: boolean;
  measure(job: ClosedLoopJob): Promise<Sample>;
}

/** Client address number `k` (0-based) → a dotted IPv4 in 10.0.0.0/8; only ever a header value. */
export function clientIp(k: number): string {
  const n = k + 1;
  return `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function durationMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (!match) throw new Error(`wrk: cannot read the duration "${text}"`);
  return Number(match[1]) * UNIT_MS[match[2]!]!;
}

/** Parses `wrk --latency` output. Exported for tests of the parser. */
export function parseWrk(output: string): Sample {
  const p50 = /^\s+50%\s+(\S+)/m.exec(output);
  const p99 = /^\s+99%\s+(\S+)/m.exec(output);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(output);
  const total = /^\s*(\d+) requests in /m.exec(output);
  if (!p50 || !p99 || !rps || !total) {
    throw new Error(`wrk: unexpected output (was --latency given?):\n${output}`);
  }
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(output);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  return {
    rps: Number(rps[1]),
    p50Ms: durationMs(p50[1]!),
    p99Ms: durationMs(p99[1]!),
    requests: Number(total[1]),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors,
  };
}

/** A wrk script that cycles X-Forwarded-For over `ips` addresses (same mapping as clientIp). */
function wrkIpsScript(ips: number): string {
  return `-- written by bench/lib/loadgen.ts: one X-Forwarded-For per request, cycling over ${ips} addresses
local n = ${ips}
local i = 0
local function ip(k)
  local v = k + 1
  return string.format("10.%d.%d.%d", math.floor(v / 65536) % 256, math.floor(v / 256) % 256, v % 256)
end
local cache = nil
-- Headers given to wrk.format replace wrk.headers (the -H ones and Host): start from a copy.
local function headers(k)
  local h = {}
  for name, value in pairs(wrk.headers) do h[name] = value end
  h["X-Forwarded-For"] = ip(k)
  return h
end
-- wrk.format needs the Host header, which wrk.init sets just before it calls this init.
init = function(args)
  if n <= 65536 then
    cache = {}
    for k = 0, n - 1 do cache[k] = wrk.format(nil, nil, headers(k)) end
  end
end
request = function()
  local k = i % n
  i = i + 1
  if cache then return cache[k] end
  return wrk.format(nil, nil, headers(k))
end
`;
}

export async function wrkGenerator(binary: string, tmpDir: string): Promise<LoadGenerator> {
  const { stdout, stderr } = await run('wrk -v', binary, ['-v'], { timeoutMs: 5000 });
  const version = /wrk (\S+)/.exec(stdout + stderr)?.[1] ?? 'unknown';
  const scripts = new Map<number, string>();
  return {
    name: 'wrk',
    version,
    sendsHeaders: true,
    async measure(job) {
      const args = [`-t${job.threads ?? 1}`, `-c${job.connections}`, `-d${job.durationS}s`, '--latency'];
      for (const [name, value] of Object.entries(job.headers ?? {})) args.push('-H', `${name}: ${value}`);
      if (job.timeoutS !== undefined) args.push('--timeout', `${job.timeoutS}s`);
      if (job.ips > 1) {
        let script = scripts.get(job.ips);
        if (!script) {
          script = join(tmpDir, `xff-${job.ips}.lua`);
          await writeFile(script, wrkIpsScript(job.ips));
          scripts.set(job.ips, script);
        }
        args.push('-s', script);
      }
      args.push(job.url);
      const result = await run('wrk', binary, args, {
        cpus: job.cpus,
        timeoutMs: (job.durationS + (job.timeoutS ?? 2) + 30) * 1000,
      });
      if (result.exit.code !== 0) {
        throw new Error(
          `wrk ${args.join(' ')} failed (${result.exit.code}):\n${result.stderr}${result.stdout}`,
        );
      }
      return parseWrk(result.stdout);
    },
  };
}

/** Runs a bench/tools/*.ts script under tsx and returns its last stdout line parsed as JSON. */
async function runTool<T>(
  script: string,
  args: Record<string, string | number>,
  cpus: string | undefined,
  timeoutMs: number,
): Promise<T> {
  const argv = ['--import', 'tsx', script];
  for (const [key, value] of Object.entries(args)) argv.push(`--${key}`, String(value));
  const result = await run(script, process.execPath, argv, { cpus, timeoutMs });
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  if (result.exit.code !== 0 || !last.startsWith('{')) {
    throw new Error(`${script} failed (exit ${result.exit.code}):\n${result.stderr}${result.stdout}`);
  }
  return JSON.parse(last) as T;
}

export function autocannonGenerator(version: string): LoadGenerator {
  return {
    name: 'autocannon',
    version,
    sendsHeaders: false,
    measure(job) {
      return runTool<Sample>(
        'bench/tools/autocannon-load.ts',
        { url: job.url, connections: job.connections, duration: job.durationS, ips: job.ips },
        job.cpus,
        (job.durationS + 30) * 1000,
      );
    },
  };
}

export interface OpenLoopJob {
  url: string;
  rate: number;
  connections: number;
  warmupS: number;
  durationS: number;
  cpus: string | undefined;
  ips: number;
}

export interface OpenLoopSample {
  /** Requests whose intended start fell in the measured window. */
  requests: number;
  achievedRps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx: number;
  errors: number;
  /** The target could not keep up with the rate and the run stopped early. */
  overloaded: boolean;
}

export function measureOpenLoop(job: OpenLoopJob): Promise<OpenLoopSample> {
  return runTool<OpenLoopSample>(
    'bench/tools/rate-load.ts',
    {
      url: job.url,
      rate: job.rate,
      connections: job.connections,
      warmup: job.warmupS,
      duration: job.durationS,
      ips: job.ips,
    },
    job.cpus,
    (job.warmupS + job.durationS + 30) * 1000,
  );
}
