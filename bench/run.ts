/**
 * `npm run bench`: throughput and latency of meli-proxy against the origin itself, an nginx reverse
 * proxy and a framework-free Node forwarder, measured in the same process tree with the same load
 * generator, targets interleaved within each round, medians of rounds. See bench/README.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  autocannonGenerator,
  clientIp,
  type LoadGenerator,
  measureOpenLoop,
  type OpenLoopSample,
  wrkGenerator,
} from './lib/loadgen.js';
import { HELP, parseOptions, type TargetId, UsageError } from './lib/options.js';
import {
  type Child,
  formatExit,
  groupCpuSeconds,
  groupRssBytes,
  hasTaskset,
  killAllSync,
  peakSampler,
  run,
  stopAll,
  which,
} from './lib/processes.js';
import {
  type BenchReport,
  formatInt,
  gitInfo,
  type HalfLoadResult,
  halfLoadTable,
  machineInfo,
  type Round,
  redact,
  summarize,
  summarizeHalfLoad,
  throughputTable,
  withRatios,
} from './lib/report.js';
import {
  type NginxInfo,
  type Server,
  startListening,
  startNginxOrigin,
  startNginxProxy,
} from './lib/servers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);

interface Target {
  id: TargetId;
  label: string;
  command: string;
  server: Server;
}

let tmpDir: string | undefined;
let cleaning: Promise<void> | undefined;
let interrupted = false;

/** Stops every child and removes the temp dir; every caller waits for the same, single cleanup. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll();
    if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
  })();
  return cleaning;
}

process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    interrupted = true;
    console.error(`\n[bench] ${sig}: stopping every process the bench started…`);
    void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  });
}

/**
 * `--limits features`: the classic rules of the design notes, plus a per-IP rule on every request
 * whose limit is never reached. Every request is matched against all four and counted by two, and
 * with `--ips N` the per-IP rule keeps N counters: the limiter's real work, with no 429 in the way.
 */
const FEATURE_RULES = `# written by bench/run.ts (--limits features)
limits:
  - { id: ip-152, match: { ip: 152.152.152.152 }, limit: 1000/m }
  - { id: categories, match: { path: '/categories/*' }, limit: 1000000000/m }
  - { id: ip-items, match: { ip: 152.152.152.152, path: '/items/*' }, limit: 10/m }
  - { id: per-ip, by: [ip], limit: 1000000000/m }
`;

/**
 * The targets in the order round `round` runs them: rotated by one each round, so that no row is
 * always first (or always right after a given one) and order effects cancel over rounds.
 */
function rotated<T>(targets: readonly T[], round: number): T[] {
  const start = (round - 1) % targets.length;
  return [...targets.slice(start), ...targets.slice(0, start)];
}

function log(message: string): void {
  console.log(`[bench] ${message}`);
}

function describeSample(s: Round): string {
  const problems = s.non2xx + s.socketErrors > 0 ? `  (non-2xx ${s.non2xx}, errors ${s.socketErrors})` : '';
  const rss = s.peakRssMiB === null ? '' : `, RSS ${Math.round(s.peakRssMiB)} MiB`;
  const cpu =
    s.cpuUsPerRequest === null || s.serverCpuUtil === null
      ? ''
      : `  ${s.cpuUsPerRequest.toFixed(1)} µs CPU/req, server CPU ${Math.round(s.serverCpuUtil * 100)}%`;
  return `${formatInt(s.rps).padStart(7)} rps  p50 ${s.p50Ms.toFixed(2)} ms  p99 ${s.p99Ms.toFixed(2)} ms${cpu}${rss}${problems}`;
}

async function nginxInfo(): Promise<NginxInfo | null> {
  const binary = which('nginx');
  if (!binary) return null;
  const { stderr } = await run('nginx -v', binary, ['-v'], { timeoutMs: 5000 });
  return { binary, version: /nginx\/(\S+)/.exec(stderr)?.[1] ?? 'unknown' };
}

function autocannonVersion(): string | null {
  const pkg = join(ROOT, 'node_modules/autocannon/package.json');
  if (!existsSync(pkg)) return null;
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

/** `node [--import tsx] file` for a launcher path. */
function nodeCommand(file: string): string[] {
  return file.endsWith('.ts') ? ['--import', 'tsx', file] : [file];
}

async function main(): Promise<number> {
  const started = Date.now();
  let options: ReturnType<typeof parseOptions>;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`bench: ${error.message}`);
      return 2;
    }
    throw error;
  }
  if (!options) {
    console.log(HELP);
    return 0;
  }

  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    console.log(`[bench] WARNING: ${message}`);
  };

  // Tools: all must already be installed; nothing is installed at run time.
  const wrk = options.loadgen === 'autocannon' ? null : which('wrk');
  if (options.loadgen === 'wrk' && !wrk) {
    console.error('bench: --loadgen wrk but wrk is not on PATH (Debian: apt-get install wrk)');
    return 2;
  }
  const acVersion = autocannonVersion();
  if (!wrk && !acVersion) {
    console.error('bench: neither wrk (on PATH) nor autocannon (node_modules) is available; run npm ci');
    return 2;
  }
  const nginx = await nginxInfo();
  const machine = machineInfo(); // before pinning ourselves, which narrows what node reports
  const pinned = options.pin && hasTaskset();
  if (options.pin && !pinned) warn('taskset not found: processes are not pinned, numbers are noisier');
  const loadgenCpus = pinned ? options.loadgenCpus : undefined;
  const serverCpus = pinned ? options.serverCpus : undefined;
  if (pinned) {
    // Keep this (mostly idle) orchestrator off the server's core as well.
    await run('taskset self', 'taskset', ['-p', '-c', options.loadgenCpus, String(process.pid)], {
      timeoutMs: 5000,
    });
  }

  tmpDir = await mkdtemp(join(os.tmpdir(), 'meli-bench-'));
  // nginx started as root serves files from an unprivileged worker: let it traverse the dir.
  await chmod(tmpDir, 0o755);
  const generator: LoadGenerator = wrk
    ? await wrkGenerator(wrk, tmpDir)
    : autocannonGenerator(acVersion ?? 'unknown');

  const git = gitInfo();
  log(
    `${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, node ${machine.node}`,
  );
  log(`load average at start: ${machine.loadavgAtStart.join(' ')}`);
  if ((machine.loadavgAtStart[0] ?? 0) > machine.cores / 2) {
    warn(
      `the machine is busy (load average ${machine.loadavgAtStart[0]} on ${machine.cores} cores): ` +
        'expect a wide spread; read "× nginx by CPU" and "server CPU" before rps',
    );
  }
  log(
    `load generator: ${generator.name} ${generator.version} (${options.threads} thread(s), ${options.connections} connections); ` +
      `origin: ${nginx ? `nginx ${nginx.version}` : 'node:http (nginx not on PATH)'}`,
  );
  log(
    pinned
      ? `pinning: load generator + upstream origin on CPU ${options.loadgenCpus}, server under test on CPU ${options.serverCpus}`
      : 'pinning: none',
  );
  if (options.workers && options.workers > 1 && pinned && !options.serverCpus.match(/[-,]/)) {
    warn(
      `--workers ${options.workers} but the server is pinned to CPU ${options.serverCpus} alone (see --server-cpus)`,
    );
  }

  let selected = [...options.only];
  if (selected.includes('nginx') && !nginx) {
    log('nginx row skipped: nginx is not on PATH (Debian: apt-get install nginx-light)');
    selected = selected.filter((id) => id !== 'nginx');
  }
  if (machine.cores < 2 && pinned) warn('fewer than 2 CPUs: load generator and server share a core');

  // Origins: one for the proxies to forward to (shares the load generator's core), and, for the
  // "direct" row, a second identical one on the server core, so "direct" measures the origin as
  // a server under test under the same placement as the proxies.
  const origin = (name: string, cpus: string | undefined) =>
    nginx
      ? startNginxOrigin(nginx, name, join(tmpDir!, name), options.path, cpus)
      : startListening(
          name,
          process.execPath,
          nodeCommand('bench/tools/origin-node.ts'),
          options.path,
          cpus,
          {},
          'origin listening',
        );
  const originLabel = nginx ? `nginx ${nginx.version}` : 'node:http';
  const targets: Target[] = [];
  const checkHeaders: Record<string, string> = options.ips > 1 ? { 'x-forwarded-for': clientIp(0) } : {};
  let rulesFile: string | undefined;
  const ownConfig = options.serveArgs.some((a) => a === '-c' || a.startsWith('--config'));
  if (options.limits === 'features' && options.only.includes('proxy') && !ownConfig) {
    rulesFile = join(tmpDir, 'limits.yaml');
    await writeFile(rulesFile, FEATURE_RULES);
  }
  let upstream: Server;
  try {
    upstream = await origin('origin-upstream', loadgenCpus);
    log(`origin (upstream) at ${upstream.url}`);
    for (const id of selected) {
      if (id === 'direct') {
        const server = await origin('origin-direct', serverCpus);
        targets.push({ id, label: `direct (origin, ${originLabel})`, command: 'origin', server });
      } else if (id === 'proxy') {
        for (const [index, bin] of options.proxyBins.entries()) {
          if (!existsSync(bin.file)) {
            throw new Error(
              `meli-proxy: ${bin.file} does not exist (is the CLI built? npm run build); ` +
                'use --only to leave the proxy row out, or --proxy-bin FILE',
            );
          }
          const args = [
            ...options.nodeArgs,
            ...nodeCommand(bin.file),
            'serve',
            '--upstream',
            upstream.url,
            '--port',
            '0',
            '--admin-port',
            '0',
            '--log-level',
            'info',
            '--access-log',
            'off',
            // One process unless asked: serve's default (one per core) would not match nginx's row.
            '--workers',
            String(options.workers ?? 1),
            ...(options.store !== undefined ? ['--store', options.store] : []),
            ...(options.ips > 1 ? ['--trust-proxy', '127.0.0.1/32'] : []),
            ...(rulesFile ? ['--config', rulesFile] : []),
            // The embedded store writes documents.json: keep it in the temp dir, not the user's data dir.
            ...(options.serveArgs.some((a) => a.startsWith('--data-dir'))
              ? []
              : ['--data-dir', join(tmpDir, `meli-proxy-data-${index}`)]),
            ...options.serveArgs,
          ];
          const label = index === 0 && !bin.named ? 'meli-proxy' : `meli-proxy (${bin.label})`;
          const server = await startListening(
            label,
            process.execPath,
            args,
            options.path,
            serverCpus,
            checkHeaders,
          );
          targets.push({
            id: index === 0 ? 'proxy' : `proxy:${bin.label}`,
            label,
            command: `node ${args.map(redact).join(' ')}`,
            server,
          });
          if (index < options.proxyBins.length - 1) log(`${label} at ${server.url}`);
        }
      } else if (id === 'nginx') {
        const server = await startNginxProxy(
          nginx!,
          'nginx-proxy',
          join(tmpDir, 'nginx-proxy'),
          upstream.url,
          options.path,
          serverCpus,
          options.workers ?? 1,
        );
        targets.push({ id, label: `nginx ${nginx!.version} reverse proxy`, command: 'nginx', server });
      } else {
        const args = [...nodeCommand('bench/baselines/node-undici-stream.ts'), '--upstream', upstream.url];
        const server = await startListening(
          'node-undici-stream',
          process.execPath,
          args,
          options.path,
          serverCpus,
        );
        targets.push({ id, label: 'node:http + undici stream', command: `node ${args.join(' ')}`, server });
      }
      log(`${targets.at(-1)!.label} at ${targets.at(-1)!.server.url}`);
    }
  } catch (error) {
    console.error(`bench: a target failed to start:\n${(error as Error).message}`);
    return 1;
  }

  const ensureAlive = (child: Child) => {
    if (!child.running) {
      throw new Error(
        `${child.name} died during the run (${formatExit(child.exit!)})\n${child.describeTail()}`,
      );
    }
  };

  // Phase 1: closed-loop maximum throughput, targets interleaved within each round.
  const samples = new Map<TargetId, Round[]>(targets.map((t) => [t.id, []]));
  const perRun = options.warmup + options.duration;
  log(
    `throughput: ${options.rounds} rounds × ${targets.length} targets × (${options.warmup} s warm-up + ` +
      `${options.duration} s) ≈ ${Math.ceil((options.rounds * targets.length * perRun) / 60)} min`,
  );
  for (let round = 1; round <= options.rounds; round++) {
    for (const target of rotated(targets, round)) {
      const job = {
        url: target.server.url + options.path,
        connections: options.connections,
        cpus: loadgenCpus,
        ips: options.ips,
        threads: options.threads,
      };
      if (options.warmup > 0) await generator.measure({ ...job, durationS: options.warmup });
      const cpuBefore = groupCpuSeconds(target.server.child.pid);
      const wallBefore = performance.now();
      const rss = peakSampler(() => groupRssBytes(target.server.child.pid));
      const measured = await generator.measure({ ...job, durationS: options.duration });
      const wallS = (performance.now() - wallBefore) / 1000;
      const cpuAfter = groupCpuSeconds(target.server.child.pid);
      const peakRss = rss.stop();
      const cpuS = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
      const sample: Round = {
        ...measured,
        serverCpuUtil: cpuS === null ? null : cpuS / wallS,
        cpuUsPerRequest: cpuS === null || measured.requests === 0 ? null : (cpuS * 1e6) / measured.requests,
        peakRssMiB: peakRss === null ? null : peakRss / 2 ** 20,
      };
      ensureAlive(target.server.child);
      ensureAlive(upstream.child);
      samples.get(target.id)!.push(sample);
      log(`round ${round}/${options.rounds}  ${target.label.padEnd(32)} ${describeSample(sample)}`);
    }
  }
  const results = withRatios(targets.map((t) => summarize(t.id, t.label, t.command, samples.get(t.id)!)));
  for (const r of results) {
    if (r.non2xx + r.socketErrors > 0) {
      warn(
        `${r.label}: ${r.non2xx} non-2xx responses and ${r.socketErrors} socket errors; its rps is suspect`,
      );
    }
  }

  // Phase 2: open-loop latency at a fixed rate (half of meli-proxy's capacity by default).
  let halfLoad: HalfLoadResult | null = null;
  if (options.halfLoad) {
    const reference =
      results.find((r) => r.id === 'proxy') ??
      [...results].filter((r) => r.id !== 'direct').sort((a, b) => a.median.rps - b.median.rps)[0] ??
      results[0]!;
    const rate = options.halfLoadRate ?? Math.max(1, Math.round(reference.median.rps / 2));
    const basis = options.halfLoadRate
      ? '--half-load-rate'
      : `50% of ${reference.label}'s median rps (${formatInt(reference.median.rps)})`;
    log(`latency at a fixed ${formatInt(rate)} req/s (${basis}), open loop, ${options.rounds} rounds`);
    // One more baseline here: the origin the proxies forward to, reached directly. It shares the load
    // generator's CPU, which adds its own queueing to every proxied request; the `direct` row's
    // origin runs alone on the server CPU and has none of it.
    const openTargets = [
      ...targets,
      ...(targets.some((t) => t.id !== 'direct')
        ? [{ id: 'upstream' as const, label: "direct to the proxies' origin", server: upstream }]
        : []),
    ];
    const open = new Map<TargetId, OpenLoopSample[]>(openTargets.map((t) => [t.id, []]));
    for (let round = 1; round <= options.rounds; round++) {
      for (const target of rotated(openTargets, round)) {
        const sample = await measureOpenLoop({
          url: target.server.url + options.path,
          rate,
          connections: options.connections,
          warmupS: options.warmup,
          durationS: options.duration,
          cpus: loadgenCpus,
          ips: options.ips,
        });
        ensureAlive(target.server.child);
        open.get(target.id)!.push(sample);
        log(
          `round ${round}/${options.rounds}  ${target.label.padEnd(32)} @${formatInt(rate)}/s  ` +
            `p50 ${sample.p50Ms.toFixed(2)} ms  p99 ${sample.p99Ms.toFixed(2)} ms  ` +
            `(achieved ${formatInt(sample.achievedRps)}/s, non-2xx ${sample.non2xx}, errors ${sample.errors})` +
            (sample.overloaded ? '  OVERLOADED: stopped early' : ''),
        );
      }
    }
    const summaries = openTargets.map((t) => summarizeHalfLoad(t.id, t.label, open.get(t.id)!));
    const direct = summaries.find((s) => s.id === 'direct');
    const ownOrigin = summaries.find((s) => s.id === 'upstream');
    for (const s of summaries) {
      if (direct && s !== direct && s !== ownOrigin) {
        s.addedP50Ms = s.median.p50Ms - direct.median.p50Ms;
        s.addedP99Ms = s.median.p99Ms - direct.median.p99Ms;
      }
      if (ownOrigin && s !== ownOrigin && s.id !== 'direct') {
        s.addedP99VsUpstreamMs = s.median.p99Ms - ownOrigin.median.p99Ms;
      }
      if (s.overloadedRounds > 0) {
        warn(
          `${s.label} could not sustain ${formatInt(rate)}/s in ${s.overloadedRounds} round(s) of the fixed-rate phase`,
        );
      } else if (s.median.achievedRps < rate * 0.95) {
        warn(
          `${s.label} achieved ${formatInt(s.median.achievedRps)}/s of ${formatInt(rate)}/s in the fixed-rate phase`,
        );
      }
    }
    halfLoad = { rate, basis, targets: summaries };
  }

  // Stop the servers now and check the proxy shuts down cleanly on SIGTERM.
  for (const target of targets.reverse()) {
    const exit = await target.server.child.stop();
    if (target.id.startsWith('proxy') && (exit.code !== 0 || exit.signal)) {
      warn(`${target.label} ended with ${formatExit(exit)} on SIGTERM (expected exit code 0)`);
    }
  }
  targets.reverse();
  machine.loadavgAtEnd = os.loadavg().map((n) => Math.round(n * 100) / 100);

  const report: BenchReport = {
    schema: 'meli-proxy-bench/1',
    date: new Date().toISOString(),
    command: ['npm run bench --', ...process.argv.slice(2)].map(redact).join(' '),
    commit: git.commit,
    dirty: git.dirty,
    machine,
    tools: {
      loadgen: `${generator.name} ${generator.version}`,
      origin: originLabel,
      ...(nginx ? { nginx: nginx.version } : {}),
      taskset: pinned ? 'yes' : 'no',
    },
    placement: {
      pinned,
      loadgenCpus: loadgenCpus ?? null,
      serverCpus: serverCpus ?? null,
      note:
        'load generator, upstream origin and this orchestrator share loadgenCpus; each server under test ' +
        '(including the second origin instance of the "direct" row) runs on serverCpus',
    },
    options: {
      ...options,
      store: options.store === undefined ? undefined : redact(options.store),
      serveArgs: options.serveArgs.map(redact),
    },
    targets: results,
    halfLoad,
    warnings,
    elapsedS: Math.round((Date.now() - started) / 1000),
  };

  console.log('');
  console.log(
    `Throughput: ${generator.name === 'wrk' ? `wrk -t${options.threads}` : 'autocannon'} -c${options.connections}, ${options.duration} s per run, ` +
      `median of ${options.rounds} rounds${options.ips > 1 ? `, ${formatInt(options.ips)} client IPs via X-Forwarded-For` : ''}`,
  );
  console.log(throughputTable(results));
  if (halfLoad) {
    console.log('');
    console.log(
      `Latency at a fixed ${formatInt(halfLoad.rate)} req/s (${halfLoad.basis}), open loop; added = minus direct`,
    );
    console.log(halfLoadTable(halfLoad));
  }
  await mkdir(dirname(resolve(options.jsonOut)), { recursive: true });
  await writeFile(options.jsonOut, `${JSON.stringify(report, null, 2)}\n`);
  console.log('');
  log(`results written to ${options.jsonOut} (${report.elapsedS} s)`);
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  // After ^C the load generator dies mid-run: that error is ours, not the target's.
  if (!interrupted) console.error(`bench: ${(error as Error).message}`);
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
