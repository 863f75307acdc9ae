/** Machine facts, the printed tables and the JSON document of a bench run. */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import type { OpenLoopSample, Sample } from './loadgen.js';
import type { BenchOptions, TargetId } from './options.js';
import { median } from './stats.js';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  loadavgAtStart: number[];
  loadavgAtEnd?: number[];
}

export function machineInfo(): Machine {
  return {
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadavgAtStart: os.loadavg().map((n) => Math.round(n * 100) / 100),
  };
}

/** The checked-out commit and whether tracked files differ from it; read-only git calls. */
export function gitInfo(): { commit: string | null; dirty: boolean | null } {
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' });
  if (head.status !== 0) return { commit: null, dirty: null };
  const status = spawnSync('git', ['--no-optional-locks', 'status', '--porcelain', '--untracked-files=no'], {
    encoding: 'utf8',
  });
  return { commit: head.stdout.trim(), dirty: status.status === 0 ? status.stdout.trim() !== '' : null };
}

/** One measured run of one target, with the server's CPU use from /proc (null off Linux). */
export interface Round extends Sample {
  /** CPU seconds of the server's process group per wall second: ~1.0 = it was the bottleneck. */
  serverCpuUtil: number | null;
  /** CPU microseconds the server spent per request: steadier than rps on a shared machine. */
  cpuUsPerRequest: number | null;
  /** Largest resident memory of the server's process group during the run, in MiB. */
  peakRssMiB: number | null;
  /**
   * TLS connections the origin accepted from this target during the round (warm-up included), and
   * how many of them resumed a session; null when the target does not forward over TLS.
   */
  upstreamTls: { connections: number; resumed: number } | null;
}

export interface TargetResult {
  id: TargetId;
  label: string;
  command: string;
  rounds: Round[];
  median: {
    rps: number;
    p50Ms: number;
    p99Ms: number;
    cpuUsPerRequest: number | null;
    serverCpuUtil: number | null;
    peakRssMiB: number | null;
  };
  /** (max − min) / median of the rounds' rps. */
  spread: number;
  xDirect: number | null;
  xNginx: number | null;
  /** nginx's CPU per request ÷ this target's: throughput per core relative to nginx, noise-resistant. */
  xNginxCpu: number | null;
  non2xx: number;
  socketErrors: number;
  /** Sum over rounds of `Round.upstreamTls`. */
  upstreamTls: { connections: number; resumed: number } | null;
}

export interface HalfLoadTarget {
  id: TargetId;
  label: string;
  rounds: OpenLoopSample[];
  median: { achievedRps: number; p50Ms: number; p99Ms: number };
  addedP50Ms: number | null;
  addedP99Ms: number | null;
  /** p99 minus that of the origin the proxies use, reached directly on the same CPU as they reach it. */
  addedP99VsUpstreamMs: number | null;
  non2xx: number;
  errors: number;
  /** Rounds in which the target could not sustain the rate. */
  overloadedRounds: number;
}

export interface HalfLoadResult {
  rate: number;
  basis: string;
  targets: HalfLoadTarget[];
}

/** One traffic shape: every target's throughput, and (http-1k only) the fixed-rate phase. */
export interface ScenarioResult {
  id: string;
  label: string;
  path: string;
  requestHeaders: Record<string, string>;
  bodyBytes: number;
  connections: number;
  targets: TargetResult[];
  halfLoad: HalfLoadResult | null;
}

export interface BenchReport {
  schema: 'meli-proxy-bench/2';
  date: string;
  command: string;
  commit: string | null;
  dirty: boolean | null;
  machine: Machine;
  tools: Record<string, string>;
  placement: { pinned: boolean; loadgenCpus: string | null; serverCpus: string | null; note: string };
  options: BenchOptions;
  scenarios: ScenarioResult[];
  warnings: string[];
  elapsedS: number;
}

export function summarize(
  id: TargetId,
  label: string,
  command: string,
  rounds: Round[],
): Omit<TargetResult, 'xDirect' | 'xNginx' | 'xNginxCpu'> {
  const rps = rounds.map((s) => s.rps);
  const med = median(rps);
  return {
    id,
    label,
    command,
    rounds,
    median: {
      rps: med,
      p50Ms: median(rounds.map((s) => s.p50Ms)),
      p99Ms: median(rounds.map((s) => s.p99Ms)),
      cpuUsPerRequest: medianOrNull(rounds.map((s) => s.cpuUsPerRequest)),
      serverCpuUtil: medianOrNull(rounds.map((s) => s.serverCpuUtil)),
      peakRssMiB: maxOrNull(rounds.map((s) => s.peakRssMiB ?? null)),
    },
    spread: (Math.max(...rps) - Math.min(...rps)) / med,
    non2xx: rounds.reduce((sum, s) => sum + s.non2xx, 0),
    socketErrors: rounds.reduce((sum, s) => sum + s.socketErrors, 0),
    upstreamTls: rounds.some((s) => s.upstreamTls === null)
      ? null
      : {
          connections: rounds.reduce((sum, s) => sum + s.upstreamTls!.connections, 0),
          resumed: rounds.reduce((sum, s) => sum + s.upstreamTls!.resumed, 0),
        },
  };
}

function maxOrNull(values: (number | null)[]): number | null {
  return values.some((v) => v === null) ? null : Math.max(...(values as number[]));
}

function medianOrNull(values: (number | null)[]): number | null {
  return values.some((v) => v === null) ? null : median(values as number[]);
}

export function withRatios(
  results: Omit<TargetResult, 'xDirect' | 'xNginx' | 'xNginxCpu'>[],
): TargetResult[] {
  const direct = results.find((r) => r.id === 'direct')?.median.rps;
  const nginx = results.find((r) => r.id === 'nginx');
  const nginxCpu = nginx?.median.cpuUsPerRequest;
  return results.map((r) => ({
    ...r,
    xDirect: direct ? r.median.rps / direct : null,
    xNginx: nginx ? r.median.rps / nginx.median.rps : null,
    xNginxCpu: nginxCpu && r.median.cpuUsPerRequest ? nginxCpu / r.median.cpuUsPerRequest : null,
  }));
}

export function summarizeHalfLoad(id: TargetId, label: string, rounds: OpenLoopSample[]): HalfLoadTarget {
  return {
    id,
    label,
    rounds,
    median: {
      achievedRps: median(rounds.map((s) => s.achievedRps)),
      p50Ms: median(rounds.map((s) => s.p50Ms)),
      p99Ms: median(rounds.map((s) => s.p99Ms)),
    },
    addedP50Ms: null,
    addedP99Ms: null,
    addedP99VsUpstreamMs: null,
    non2xx: rounds.reduce((sum, s) => sum + s.non2xx, 0),
    errors: rounds.reduce((sum, s) => sum + s.errors, 0),
    overloadedRounds: rounds.filter((s) => s.overloaded).length,
  };
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function ms(value: number): string {
  return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(1)} ms`;
}

function ratio(value: number | null): string {
  return value === null ? '—' : `${value.toFixed(2)}×`;
}

function signedMs(value: number | null): string {
  if (value === null) return '—';
  return `${value >= 0 ? '+' : '−'}${ms(Math.abs(value))}`;
}

/** A plain text table: first column left-aligned, the rest right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function throughputTable(results: TargetResult[]): string {
  return table(
    [
      'setup',
      'rps (median)',
      'spread',
      'p50',
      'p99',
      '× direct',
      '× nginx',
      'server CPU',
      'CPU µs/req',
      '× nginx by CPU',
      'peak RSS',
      'upstream TLS conns (resumed)',
      'non-2xx/errors',
    ],
    results.map((r) => [
      r.label,
      int.format(r.median.rps),
      `±${((r.spread * 100) / 2).toFixed(1)}%`,
      ms(r.median.p50Ms),
      ms(r.median.p99Ms),
      ratio(r.xDirect),
      ratio(r.xNginx),
      r.median.serverCpuUtil === null ? '—' : `${Math.round(r.median.serverCpuUtil * 100)}%`,
      r.median.cpuUsPerRequest === null ? '—' : r.median.cpuUsPerRequest.toFixed(1),
      ratio(r.xNginxCpu),
      r.median.peakRssMiB === null ? '—' : `${Math.round(r.median.peakRssMiB)} MiB`,
      r.upstreamTls === null ? '—' : `${r.upstreamTls.connections} (${r.upstreamTls.resumed})`,
      `${r.non2xx}/${r.socketErrors}`,
    ]),
  );
}

export function halfLoadTable(result: HalfLoadResult): string {
  return table(
    [
      'setup',
      'achieved rps',
      'p50',
      'p99',
      'p50 added',
      'p99 added',
      'p99 added (own origin)',
      'non-2xx/errors',
      'note',
    ],
    result.targets.map((t) => [
      t.label,
      int.format(t.median.achievedRps),
      ms(t.median.p50Ms),
      ms(t.median.p99Ms),
      signedMs(t.addedP50Ms),
      signedMs(t.addedP99Ms),
      signedMs(t.addedP99VsUpstreamMs),
      `${t.non2xx}/${t.errors}`,
      t.overloadedRounds > 0 ? `overloaded in ${t.overloadedRounds}/${t.rounds.length} rounds` : '',
    ]),
  );
}

export function formatInt(value: number): string {
  return int.format(value);
}

/** Hides the password of any URL inside an argument (`postgres://u:secret@h/db`, `--store=…`). */
export function redact(arg: string): string {
  return arg.replace(/([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^@\s/]*@/gi, '$1***@');
}
