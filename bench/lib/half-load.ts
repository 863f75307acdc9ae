/**
 * The open-loop phase: every target at the same fixed rate (half of meli-proxy's median rps by
 * default), so "latency added" is what a hop costs when it is not saturated. Run for the plain
 * HTTP 1 KB scenario, the one its client (bench/tools/rate-load.ts) speaks.
 */
import { measureOpenLoop, type OpenLoopSample } from './loadgen.js';
import type { BenchOptions, TargetId } from './options.js';
import { formatInt, type HalfLoadResult, summarizeHalfLoad, type TargetResult } from './report.js';
import type { OriginServer, Server } from './servers.js';
import type { Target } from './targets.js';
import { ensureAlive, rotated } from './throughput.js';

export interface HalfLoadJob {
  options: BenchOptions;
  path: string;
  targets: Target[];
  results: TargetResult[];
  upstream: OriginServer;
  loadgenCpus: string | undefined;
  log: (message: string) => void;
  warn: (message: string) => void;
}

export async function measureHalfLoad(job: HalfLoadJob): Promise<HalfLoadResult> {
  const { options, targets, results, upstream, log, warn } = job;
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
  const openTargets: { id: TargetId; label: string; server: Server }[] = [
    ...targets,
    ...(targets.some((t) => t.id !== 'direct')
      ? [{ id: 'upstream' as const, label: "direct to the proxies' origin", server: upstream }]
      : []),
  ];
  const open = new Map<TargetId, OpenLoopSample[]>(openTargets.map((t) => [t.id, []]));
  for (let round = 1; round <= options.rounds; round++) {
    for (const target of rotated(openTargets, round)) {
      const sample = await measureOpenLoop({
        url: target.server.url + job.path,
        rate,
        connections: options.connections,
        warmupS: options.warmup,
        durationS: options.duration,
        cpus: job.loadgenCpus,
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
  return { rate, basis, targets: summaries };
}
