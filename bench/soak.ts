/**
 * Soak test: the built proxy under steady load for a bounded time, its memory and event-loop delay
 * sampled throughout. It fails when memory keeps growing after warm-up: the least-squares slope of
 * the proxy's RSS over the second half of the run is above --max-slope MB/min *and* that slope
 * amounts to more than --min-growth MB over the second half (so GC noise on a short run does not
 * fail it). Not part of CI.
 *
 *   npm run soak                                  # 5 minutes at 500 requests/s
 *   npm run soak -- --duration 60 --rate 300      # a short run
 *   npm run soak -- --duration 600 -- --store postgres://…   # after `--`: appended to `serve`
 *
 * The origin (node:http, 1 KB JSON on every path) and the load (undici, open loop at --rate, a mix
 * of routes) run in this process; the proxy is `node bin/meli-proxy.js serve` in its own. RSS comes
 * from /proc/<pid>/status; event-loop delay and heap from the proxy's own /metrics (prom-client's
 * default metrics, p99 over each sampling interval). Results go to bench/results/soak-latest.json.
 * Exit codes: 0 pass, 1 memory kept growing / the proxy died / too many failed requests, 2 bad options.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { BODY } from './lib/body.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MB = 1024 * 1024;

interface Options {
  durationS: number;
  rate: number;
  connections: number;
  sampleS: number;
  maxSlope: number;
  minGrowth: number;
  maxErrorRate: number;
  proxyBin: string;
  jsonOut: string;
  serveArgs: string[];
}

const HELP = `Usage: npm run soak -- [options] [-- <extra meli-proxy serve flags>]

  --duration S       length of the run in seconds (default 300)
  --rate N           requests per second, open loop (default 500)
  --connections N    client connections to the proxy (default 32)
  --sample S         sampling interval in seconds (default 2)
  --max-slope MB     fail above this RSS slope over the second half, in MB/min (default 2)
  --min-growth MB    ... and only if the fitted growth over the second half exceeds this (default 8)
  --max-errors F     fail when more than this fraction of requests fail (default 0.001)
  --proxy-bin FILE   launcher to soak (default bin/meli-proxy.js)
  --json-out FILE    results (default bench/results/soak-latest.json)
`;

function usage(message: string): never {
  process.stderr.write(`${message}\n\n${HELP}`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const split = argv.indexOf('--');
  const own = split === -1 ? argv : argv.slice(0, split);
  const serveArgs = split === -1 ? [] : argv.slice(split + 1);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: own,
      options: {
        duration: { type: 'string', default: '300' },
        rate: { type: 'string', default: '500' },
        connections: { type: 'string', default: '32' },
        sample: { type: 'string', default: '2' },
        'max-slope': { type: 'string', default: '2' },
        'min-growth': { type: 'string', default: '8' },
        'max-errors': { type: 'string', default: '0.001' },
        'proxy-bin': { type: 'string', default: path.join(ROOT, 'bin', 'meli-proxy.js') },
        'json-out': { type: 'string', default: path.join(ROOT, 'bench', 'results', 'soak-latest.json') },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    usage((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const number = (name: string, min: number, max: number): number => {
    const value = Number(values[name]);
    if (!Number.isFinite(value) || value < min || value > max) {
      usage(`--${name} ${String(values[name])}: expected a number from ${min} to ${max}`);
    }
    return value;
  };
  const options: Options = {
    durationS: number('duration', 10, 86_400),
    rate: number('rate', 1, 100_000),
    connections: number('connections', 1, 1024),
    sampleS: number('sample', 0.5, 60),
    maxSlope: number('max-slope', 0, 10_000),
    minGrowth: number('min-growth', 0, 10_000),
    maxErrorRate: number('max-errors', 0, 1),
    proxyBin: String(values['proxy-bin']),
    jsonOut: String(values['json-out']),
    serveArgs,
  };
  if (options.durationS / options.sampleS < 8)
    usage('--duration must allow at least 8 samples (see --sample)');
  return options;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startOrigin(): Promise<{ url: string; close: () => Promise<void> }> {
  const headers = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(BODY.length),
  };
  const server = http.createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
    req.resume();
    res.writeHead(req.url?.startsWith('/missing') ? 404 : 200, headers);
    res.end(BODY);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

interface Proxy {
  child: ChildProcess;
  url: string;
  output: () => string;
}

async function startProxy(options: Options, upstream: string, dataDir: string): Promise<Proxy> {
  const args = [
    options.proxyBin,
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
    '--access-log',
    'off',
    // The RSS watched is this process's: one serving process unless the arguments ask for more.
    '--workers',
    '1',
    ...options.serveArgs,
  ];
  const runner = options.proxyBin.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...runner, ...args], {
    cwd: ROOT,
    // A per-client rule on everything, so the limiter and its key table work throughout.
    env: { ...process.env, MELI_PROXY_LIMIT_PER_IP: process.env.MELI_PROXY_LIMIT_PER_IP ?? '1000000/m' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk: Buffer) => {
    log += chunk.toString();
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the proxy did not start within 15 s:\n${log}`)), 15_000);
    const onData = () => {
      const match = /"url":"([^"]+)"[^\n]*"msg":"proxy listening"/.exec(log);
      if (!match) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      resolve(match[1]!);
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the proxy exited (${code}) before listening:\n${log}`));
    });
  });
  return { child, url, output: () => log };
}

function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

function metric(text: string, name: string): number {
  const match = new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm').exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

interface Sample {
  t: number;
  rssMb: number;
  heapUsedMb: number;
  eventLoopP99Ms: number;
  eventLoopMaxMs: number;
  answered: number;
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  let numerator = 0;
  let denominator = 0;
  for (const [x, y] of points) {
    numerator += (x - meanX) * (y - meanY);
    denominator += (x - meanX) ** 2;
  }
  return denominator === 0 ? 0 : numerator / denominator;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

const PATHS = [
  '/categories/MLA97994',
  '/items/MLA',
  '/sites/MLA/search?q=mochila&offset=',
  '/users/',
  '/missing/',
  '/items?ids=MLA1,MLA2',
];

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const dataDir = mkdtempSync(path.join(tmpdir(), 'meli-proxy-soak-'));
  const origin = await startOrigin();
  let proxy: Proxy | undefined;
  try {
    proxy = await startProxy(options, origin.url, dataDir);
    const pid = proxy.child.pid!;
    const pool = new Pool(proxy.url, { connections: options.connections, pipelining: 1 });
    let sent = 0;
    let answered = 0;
    let failed = 0;
    const statuses = new Map<number, number>();
    const fire = (k: number) => {
      sent++;
      const base = PATHS[k % PATHS.length]!;
      const suffix = base.endsWith('=') || base.endsWith('/') || base.endsWith('MLA') ? String(k % 5000) : '';
      pool
        .request({ path: `${base}${suffix}`, method: 'GET', headersTimeout: 10_000, bodyTimeout: 10_000 })
        .then(async (response) => {
          await response.body.dump();
          answered++;
          statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        })
        .catch(() => {
          failed++;
        });
    };

    const started = performance.now();
    const endAt = started + options.durationS * 1000;
    const samples: Sample[] = [];
    const sampleOnce = async () => {
      const t = (performance.now() - started) / 1000;
      let text = '';
      try {
        const response = await fetch(`${proxy!.url}/metrics`);
        text = await response.text();
      } catch {
        // counted as NaN below
      }
      samples.push({
        t,
        rssMb: rssBytes(pid) / MB,
        heapUsedMb: metric(text, 'meli_proxy_nodejs_heap_size_used_bytes') / MB,
        eventLoopP99Ms: metric(text, 'meli_proxy_nodejs_eventloop_lag_p99_seconds') * 1000,
        eventLoopMaxMs: metric(text, 'meli_proxy_nodejs_eventloop_lag_max_seconds') * 1000,
        answered,
      });
      const last = samples.at(-1)!;
      process.stdout.write(
        `${t.toFixed(0).padStart(5)} s  RSS ${last.rssMb.toFixed(1)} MB  heap ${last.heapUsedMb.toFixed(1)} MB  ` +
          `loop p99 ${last.eventLoopP99Ms.toFixed(1)} ms  answered ${answered}  failed ${failed}\n`,
      );
    };

    // Open loop: every 10 ms, the requests due by now.
    const tickMs = 10;
    let nextSample = started + options.sampleS * 1000;
    let k = 0;
    while (performance.now() < endAt) {
      if (proxy.child.exitCode !== null || proxy.child.signalCode !== null) {
        throw new Error(`the proxy died during the run:\n${proxy.output().slice(-4000)}`);
      }
      const due = Math.floor(((performance.now() - started) / 1000) * options.rate);
      while (k < due) fire(k++);
      if (performance.now() >= nextSample) {
        nextSample += options.sampleS * 1000;
        await sampleOnce();
      }
      await sleep(tickMs);
    }
    await sleep(500);
    await pool.close();
    const elapsedS = (performance.now() - started) / 1000;

    const secondHalf = samples.filter((sample) => sample.t >= options.durationS / 2);
    const rssSlope = slope(secondHalf.map((sample) => [sample.t / 60, sample.rssMb])); // MB/min
    const heapSlope = slope(secondHalf.map((sample) => [sample.t / 60, sample.heapUsedMb]));
    const spanMin = ((secondHalf.at(-1)?.t ?? 0) - (secondHalf[0]?.t ?? 0)) / 60;
    const fittedGrowth = rssSlope * spanMin;
    const growing = rssSlope > options.maxSlope && fittedGrowth > options.minGrowth;
    const errorRate = sent === 0 ? 0 : failed / sent;
    const loopP99s = samples.map((sample) => sample.eventLoopP99Ms).filter(Number.isFinite);

    proxy.child.kill('SIGTERM');
    const exitCode = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        proxy!.child.kill('SIGKILL');
        resolve(null);
      }, 20_000);
      proxy!.child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });

    const result = {
      date: new Date().toISOString(),
      node: process.version,
      options: {
        ...options,
        serveArgs: options.serveArgs.map((arg) => arg.replace(/\/\/[^@/]*@/, '//***@')),
      },
      elapsedS: Math.round(elapsedS),
      requests: {
        sent,
        answered,
        failed,
        rps: Math.round(answered / elapsedS),
        statuses: Object.fromEntries(statuses),
      },
      rssMb: {
        first: samples[0]?.rssMb,
        secondHalfStart: secondHalf[0]?.rssMb,
        last: samples.at(-1)?.rssMb,
        max: Math.max(...samples.map((sample) => sample.rssMb)),
        secondHalfSlopePerMin: rssSlope,
        secondHalfFittedGrowth: fittedGrowth,
      },
      heapUsedSecondHalfSlopeMbPerMin: heapSlope,
      eventLoopDelayMs: {
        p99Median: median(loopP99s),
        p99Max: Math.max(...loopP99s),
        maxMax: Math.max(...samples.map((sample) => sample.eventLoopMaxMs).filter(Number.isFinite)),
      },
      proxyExitCode: exitCode,
      verdict: growing
        ? 'memory keeps growing'
        : errorRate > options.maxErrorRate
          ? 'too many failed requests'
          : exitCode !== 0
            ? 'unclean exit'
            : 'pass',
      samples,
    };
    writeFileSync(options.jsonOut, `${JSON.stringify(result, null, 2)}\n`);
    const r = result.rssMb;
    process.stdout.write(
      `\nsoak: ${elapsedS.toFixed(0)} s, ${answered} answered (${result.requests.rps}/s), ${failed} failed, statuses ${JSON.stringify(result.requests.statuses)}\n` +
        `RSS ${r.first?.toFixed(1)} → ${r.secondHalfStart?.toFixed(1)} (half) → ${r.last?.toFixed(1)} MB, max ${r.max.toFixed(1)} MB; ` +
        `second-half slope ${rssSlope.toFixed(2)} MB/min (fitted ${fittedGrowth.toFixed(1)} MB; limits ${options.maxSlope} MB/min and ${options.minGrowth} MB); heap slope ${heapSlope.toFixed(2)} MB/min\n` +
        `event-loop delay p99: median ${result.eventLoopDelayMs.p99Median.toFixed(1)} ms, worst ${result.eventLoopDelayMs.p99Max.toFixed(1)} ms; max ${result.eventLoopDelayMs.maxMax.toFixed(1)} ms\n` +
        `proxy exit code ${exitCode}; verdict: ${result.verdict}; results in ${path.relative(ROOT, options.jsonOut)}\n`,
    );
    return result.verdict === 'pass' ? 0 : 1;
  } finally {
    if (proxy && proxy.child.exitCode === null && proxy.child.signalCode === null)
      proxy.child.kill('SIGKILL');
    await origin.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak failed: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
