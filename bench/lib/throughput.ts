/**
 * The closed-loop phase of one scenario: every round runs every target once (warm-up, then the
 * measured run), in an order rotated by one each round; the server's CPU and RSS come from /proc,
 * and the TLS connections the origin accepted during the round from its connection log.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { LoadGenerator } from './loadgen.js';
import type { BenchOptions, TargetId } from './options.js';
import { type Child, formatExit, groupCpuSeconds, groupRssBytes, peakSampler } from './processes.js';
import { formatInt, type Round } from './report.js';
import type { Scenario } from './scenarios.js';
import type { Expectation, OriginServer } from './servers.js';
import type { Target } from './targets.js';

/**
 * The targets in the order round `round` runs them: rotated by one each round, so that no row is
 * always first (or always right after a given one) and order effects cancel over rounds.
 */
export function rotated<T>(targets: readonly T[], round: number): T[] {
  const start = (round - 1) % targets.length;
  return [...targets.slice(start), ...targets.slice(0, start)];
}

export function ensureAlive(child: Child): void {
  if (!child.running) {
    throw new Error(
      `${child.name} died during the run (${formatExit(child.exit!)})\n${child.describeTail()}`,
    );
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0; // nginx creates it at the first connection
  }
}

/** TLS connections logged since byte `from` of the origin's connection log, and how many resumed. */
export function tlsConnectionsSince(file: string, from: number): { connections: number; resumed: number } {
  const size = fileSize(file);
  if (size <= from) return { connections: 0, resumed: 0 };
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(size - from);
    readSync(fd, buffer, 0, buffer.length, from);
    const lines = buffer
      .toString('utf8')
      .split('\n')
      .filter((line) => line !== '');
    return { connections: lines.length, resumed: lines.filter((line) => line.endsWith(' r')).length };
  } finally {
    closeSync(fd);
  }
}

function describeSample(s: Round): string {
  const problems = s.non2xx + s.socketErrors > 0 ? `  (non-2xx ${s.non2xx}, errors ${s.socketErrors})` : '';
  const rss = s.peakRssMiB === null ? '' : `, RSS ${Math.round(s.peakRssMiB)} MiB`;
  const cpu =
    s.cpuUsPerRequest === null || s.serverCpuUtil === null
      ? ''
      : `  ${s.cpuUsPerRequest.toFixed(1)} µs CPU/req, server CPU ${Math.round(s.serverCpuUtil * 100)}%`;
  const tls = s.upstreamTls
    ? `, upstream TLS conns ${s.upstreamTls.connections} (${s.upstreamTls.resumed} resumed)`
    : '';
  return `${formatInt(s.rps).padStart(7)} rps  p50 ${s.p50Ms.toFixed(2)} ms  p99 ${s.p99Ms.toFixed(2)} ms${cpu}${rss}${tls}${problems}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until the process group `pgid` uses under 10 % of a CPU over 250 ms (at most `maxS`
 * seconds); resolves with the seconds it took. Without /proc, returns at once.
 */
export async function settle(pgid: number, maxS = 30): Promise<number> {
  const started = performance.now();
  let last = groupCpuSeconds(pgid);
  if (last === null) return 0;
  while (performance.now() - started < maxS * 1000) {
    await sleep(250);
    const now = groupCpuSeconds(pgid);
    if (now === null || now - last < 0.025) break;
    last = now;
  }
  return (performance.now() - started) / 1000;
}

export interface ThroughputJob {
  options: BenchOptions;
  scenario: Scenario;
  expected: Expectation & { path: string };
  targets: Target[];
  upstream: OriginServer;
  generator: LoadGenerator;
  loadgenCpus: string | undefined;
  log: (message: string) => void;
}

/** Runs the scenario's rounds; every target's samples in round order. */
export async function measureThroughput(job: ThroughputJob): Promise<Map<TargetId, Round[]>> {
  const { options, scenario, expected, targets, upstream, generator, log } = job;
  const samples = new Map<TargetId, Round[]>(targets.map((t) => [t.id, []]));
  const tlsLog = scenario.tls ? upstream.tlsConnectionLog : undefined;
  for (let round = 1; round <= options.rounds; round++) {
    for (const target of rotated(targets, round)) {
      const run = {
        url: target.server.url + expected.path,
        connections: scenario.connections ?? options.connections,
        cpus: job.loadgenCpus,
        ips: options.ips,
        threads: options.threads,
        headers: expected.headers,
        timeoutS: options.timeout,
      };
      const tlsFrom = tlsLog && target.id !== 'direct' ? fileSize(tlsLog) : undefined;
      if (options.warmup > 0) {
        await generator.measure({ ...run, durationS: options.warmup });
        // The warm-up's clients leave with requests still queued in the server: let it finish them
        // (or find them gone) before the measured run, which would otherwise pay for them.
        const settleS = await settle(target.server.child.pid);
        if (settleS > 1) log(`${target.label}: ${settleS.toFixed(1)} s to go idle after the warm-up`);
      }
      const cpuBefore = groupCpuSeconds(target.server.child.pid);
      const wallBefore = performance.now();
      const rss = peakSampler(() => groupRssBytes(target.server.child.pid));
      const measured = await generator.measure({ ...run, durationS: options.duration });
      const wallS = (performance.now() - wallBefore) / 1000;
      const cpuAfter = groupCpuSeconds(target.server.child.pid);
      const peakRss = rss.stop();
      const cpuS = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
      const sample: Round = {
        ...measured,
        serverCpuUtil: cpuS === null ? null : cpuS / wallS,
        cpuUsPerRequest: cpuS === null || measured.requests === 0 ? null : (cpuS * 1e6) / measured.requests,
        peakRssMiB: peakRss === null ? null : peakRss / 2 ** 20,
        upstreamTls: tlsLog && tlsFrom !== undefined ? tlsConnectionsSince(tlsLog, tlsFrom) : null,
      };
      ensureAlive(target.server.child);
      ensureAlive(upstream.child);
      samples.get(target.id)!.push(sample);
      log(
        `${scenario.id} round ${round}/${options.rounds}  ${target.label.padEnd(32)} ${describeSample(sample)}`,
      );
    }
  }
  return samples;
}
