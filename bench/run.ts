/**
 * `npm run bench`: throughput and latency of meli-proxy against the origin itself, an nginx reverse
 * proxy and a framework-free Node forwarder, for every traffic shape of bench/lib/scenarios.ts,
 * measured in the same process tree with the same load generator, targets interleaved within each
 * round, medians of rounds. See bench/README.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureHalfLoad } from './lib/half-load.js';
import { autocannonGenerator, type LoadGenerator, wrkGenerator } from './lib/loadgen.js';
import { HELP, parseOptions, UsageError } from './lib/options.js';
import { formatExit, hasTaskset, killAllSync, run, stopAll, which } from './lib/processes.js';
import {
  type BenchReport,
  formatInt,
  gitInfo,
  halfLoadTable,
  machineInfo,
  redact,
  type ScenarioResult,
  summarize,
  throughputTable,
  withRatios,
} from './lib/report.js';
import { expectationOf, SCENARIOS, type Scenario } from './lib/scenarios.js';
import { type NginxInfo, type OriginServer, startNginxOrigin } from './lib/servers.js';
import { type BenchContext, startNodeOrigin, startTargets, type Target } from './lib/targets.js';
import { measureThroughput } from './lib/throughput.js';
import { type Certificate, makeCertificate } from './lib/tls.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);

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

function log(message: string): void {
  console.log(`[bench] ${message}`);
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

  if (options.only.includes('nginx') && !nginx) {
    log('nginx row skipped: nginx is not on PATH (Debian: apt-get install nginx-light)');
  }
  if (machine.cores < 2 && pinned) warn('fewer than 2 CPUs: load generator and server share a core');
  const scenarios = runnableScenarios(
    options.scenarios.map((id) => SCENARIOS[id]),
    nginx,
    generator,
    warn,
  );
  if (scenarios.length === 0) {
    console.error('bench: none of the selected scenarios can run on this machine (see the warnings above)');
    return 2;
  }

  let cert: Certificate | undefined;
  if (scenarios.some((s) => s.tls)) {
    const openssl = which('openssl');
    if (!openssl) {
      console.error('bench: the HTTPS scenarios need openssl on PATH (Debian: apt-get install openssl)');
      return 2;
    }
    cert = await makeCertificate(openssl, tmpDir);
  }
  let rulesFile: string | undefined;
  const ownConfig = options.serveArgs.some((a) => a === '-c' || a.startsWith('--config'));
  if (options.limits === 'features' && options.only.includes('proxy') && !ownConfig) {
    rulesFile = join(tmpDir, 'limits.yaml');
    await writeFile(rulesFile, FEATURE_RULES);
  }

  // The origin the proxies forward to shares the load generator's core; the "direct" row starts a
  // second one on the server core, so it measures the origin as a server under test.
  let upstream: OriginServer;
  try {
    upstream = nginx
      ? await startNginxOrigin(
          nginx,
          'origin-upstream',
          join(tmpDir, 'origin-upstream'),
          options.path,
          loadgenCpus,
          cert,
        )
      : await startNodeOrigin('origin-upstream', options.path, loadgenCpus);
  } catch (error) {
    console.error(`bench: the origin failed to start:\n${(error as Error).message}`);
    return 1;
  }
  log(`origin (upstream) at ${upstream.url}${upstream.tlsUrl ? ` and ${upstream.tlsUrl}` : ''}`);
  const originLabel = nginx ? `nginx ${nginx.version}` : 'node:http';
  const ctx: BenchContext = { options, tmpDir, nginx, upstream, cert, serverCpus, rulesFile };

  const perRun = options.warmup + options.duration;
  const proxyRows = options.only.includes('proxy') ? options.proxyBins.length * options.nodes.length : 0;
  const rows = options.only.filter((id) => id !== 'proxy' && (id !== 'nginx' || nginx)).length + proxyRows;
  const runs = scenarios.length * options.rounds * rows;
  log(
    `throughput: ${scenarios.length} scenario(s) × ${options.rounds} rounds × ${rows} targets × ` +
      `(${options.warmup} s warm-up + ${options.duration} s) ≈ ${Math.ceil((runs * perRun) / 60)} min`,
  );
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    const expected = expectationOf(scenario, options.path);
    log(`scenario ${scenario.id}: ${scenario.label} (GET ${expected.path}, ${expected.body.length} bytes)`);
    let targets: Target[];
    try {
      targets = await startTargets(ctx, scenario, expected);
    } catch (error) {
      console.error(`bench: a target failed to start for ${scenario.id}:\n${(error as Error).message}`);
      return 1;
    }
    const samples = await measureThroughput({
      options,
      scenario,
      expected,
      targets,
      upstream,
      generator,
      loadgenCpus,
      log,
    });
    const targetResults = withRatios(
      targets.map((t) => summarize(t.id, t.label, t.command, samples.get(t.id)!)),
    );
    for (const r of targetResults) {
      if (r.non2xx + r.socketErrors > 0) {
        warn(
          `${scenario.id}, ${r.label}: ${r.non2xx} non-2xx responses and ${r.socketErrors} socket errors; its rps is suspect`,
        );
      }
    }
    const halfLoad =
      options.halfLoad && scenario.id === 'http-1k'
        ? await measureHalfLoad({
            options,
            path: expected.path,
            targets,
            results: targetResults,
            upstream,
            loadgenCpus,
            log,
            warn,
          })
        : null;
    // Stop the servers and check the proxy shuts down cleanly on SIGTERM.
    for (const target of [...targets].reverse()) {
      const exit = await target.server.child.stop();
      if (target.id.startsWith('proxy') && (exit.code !== 0 || exit.signal)) {
        warn(
          `${scenario.id}, ${target.label} ended with ${formatExit(exit)} on SIGTERM (expected exit code 0)`,
        );
      }
    }
    results.push({
      id: scenario.id,
      label: scenario.label,
      path: expected.path,
      requestHeaders: expected.headers,
      bodyBytes: expected.body.length,
      connections: scenario.connections ?? options.connections,
      targets: targetResults,
      halfLoad,
    });
  }
  machine.loadavgAtEnd = os.loadavg().map((n) => Math.round(n * 100) / 100);

  const report: BenchReport = {
    schema: 'meli-proxy-bench/2',
    date: new Date().toISOString(),
    command: ['npm run bench --', ...process.argv.slice(2)].map(redact).join(' '),
    commit: git.commit,
    dirty: git.dirty,
    machine,
    tools: {
      loadgen: `${generator.name} ${generator.version}`,
      origin: originLabel,
      ...(nginx ? { nginx: nginx.version } : {}),
      ...(cert ? { originCertificate: `self-signed ${cert.keyType}, TLS 1.3` } : {}),
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
    scenarios: results,
    warnings,
    elapsedS: Math.round((Date.now() - started) / 1000),
  };

  const loadgen = generator.name === 'wrk' ? `wrk -t${options.threads}` : 'autocannon';
  for (const result of results) {
    console.log('');
    console.log(
      `${result.id}: ${result.label} — ${loadgen} -c${result.connections}, ${options.duration} s per run, ` +
        `median of ${options.rounds} rounds${options.ips > 1 ? `, ${formatInt(options.ips)} client IPs via X-Forwarded-For` : ''}`,
    );
    console.log(throughputTable(result.targets));
    if (result.halfLoad) {
      console.log('');
      console.log(
        `Latency at a fixed ${formatInt(result.halfLoad.rate)} req/s (${result.halfLoad.basis}), open loop; added = minus direct`,
      );
      console.log(halfLoadTable(result.halfLoad));
    }
  }
  log(`load average at end: ${machine.loadavgAtEnd.join(' ')}`);
  await mkdir(dirname(resolve(options.jsonOut)), { recursive: true });
  await writeFile(options.jsonOut, `${JSON.stringify(report, null, 2)}\n`);
  console.log('');
  log(`results written to ${options.jsonOut} (${report.elapsedS} s)`);
  return 0;
}

/** The selected scenarios this machine can run; each one left out is said why. */
function runnableScenarios(
  selected: Scenario[],
  nginx: NginxInfo | null,
  generator: LoadGenerator,
  warn: (message: string) => void,
): Scenario[] {
  return selected.filter((scenario) => {
    if (scenario.tls && !nginx) {
      warn(
        `${scenario.id} skipped: its HTTPS origin is nginx, which is not on PATH (apt-get install nginx-light)`,
      );
      return false;
    }
    if ((scenario.gzip || scenario.connectionClose) && !generator.sendsHeaders) {
      warn(`${scenario.id} skipped: it needs wrk (request headers, a connection per request)`);
      return false;
    }
    return true;
  });
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
