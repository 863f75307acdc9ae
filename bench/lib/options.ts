/** Command-line options of `npm run bench`. */
import { parseArgs } from 'node:util';
import { BENCH_PATH } from './body.js';
import { SCENARIO_IDS, type ScenarioId } from './scenarios.js';

export const TARGET_IDS = ['direct', 'proxy', 'nginx', 'undici', 'dispatch'] as const;
export type TargetKind = (typeof TARGET_IDS)[number];
/**
 * A row of the results: a target kind, `proxy:<label>` for a second, third … proxy build, or (in the
 * fixed-rate phase only) `upstream`, the origin the proxies forward to, reached directly.
 */
export type TargetId = TargetKind | `proxy:${string}` | 'upstream';

/** One meli-proxy build to bench: the first is the `proxy` row, others are `proxy:<label>` rows. */
export interface ProxyBin {
  label: string;
  file: string;
  /** Whether the label was given (`label=FILE`): then even the first row shows it. */
  named: boolean;
}

/** The rate-limit rules the proxy runs with: all features on by default, as in production. */
export type LimitsMode = 'features' | 'none';

/** A node binary to run meli-proxy with (`--node`): each adds a row per proxy build. */
export interface NodeBin {
  label: string;
  file: string;
  named: boolean;
}

export interface BenchOptions {
  duration: number;
  warmup: number;
  connections: number;
  /** Seconds a wrk client waits for a response before it gives up and reconnects. */
  timeout: number;
  /** wrk threads; more than 1 only makes sense with as many load-generator CPUs. */
  threads: number;
  rounds: number;
  workers: number | undefined;
  store: string | undefined;
  ips: number;
  only: TargetKind[];
  /** Traffic shapes, in table order; every target runs each one. */
  scenarios: ScenarioId[];
  jsonOut: string;
  path: string;
  loadgen: 'auto' | 'wrk' | 'autocannon';
  pin: boolean;
  loadgenCpus: string;
  serverCpus: string;
  halfLoad: boolean;
  halfLoadRate: number | undefined;
  proxyBins: ProxyBin[];
  /** Node binaries for meli-proxy; the first is the plain row. */
  nodes: NodeBin[];
  /** Options for node itself when it runs meli-proxy (e.g. --cpu-prof), split on spaces. */
  nodeArgs: string[];
  limits: LimitsMode;
  /** Everything after `--`, appended verbatim to `meli-proxy serve`. */
  serveArgs: string[];
}

export class UsageError extends Error {}

export const HELP = `Usage: npm run bench -- [options] [-- extra serve args]

Measures meli-proxy against the origin itself and an nginx reverse proxy (wrk -t1, pinned cores).

Options:
  --duration S          measured seconds per target per round (default 10)
  --warmup S            warm-up seconds before each measurement (default 2)
  --connections N       concurrent connections of the load generator (default 64)
  --timeout S           seconds a wrk client waits for a response before it reconnects (default 10;
                        wrk's own is 2, which an overloaded server on a shared core exceeds)
  --threads N           wrk threads (default 1); give the load generator as many CPUs
                        (--loadgen-cpus) on a bigger machine
  --rounds N            rounds; targets are interleaved within each round (default 3)
  --only LIST           targets and scenarios, comma-separated (default: all of each)
                        targets: ${TARGET_IDS.join(',')}
                        scenarios: ${SCENARIO_IDS.join(',')}
  --workers N           passed to \`meli-proxy serve --workers N\`
  --store URL           passed to \`meli-proxy serve --store URL\`
  --ips N               spread requests over N client IPs via X-Forwarded-For; adds
                        \`--trust-proxy 127.0.0.1/32\` to serve (default 1: no header)
  --path P              request path (default ${BENCH_PATH}); the origin serves its body on any path
  --loadgen NAME        auto | wrk | autocannon (default auto: wrk when on PATH)
  --no-pin              do not pin processes with taskset
  --loadgen-cpus LIST   CPUs of the load generator and the upstream origin (default 0)
  --server-cpus LIST    CPUs of the server under test (default 1)
  --no-half-load        skip the fixed-rate latency phase
  --half-load-rate N    request rate of that phase (default: 50% of meli-proxy's median rps)
  --proxy-bin LIST      the proxy launcher (default bin/meli-proxy.js; a .ts file runs with tsx);
                        a comma-separated list [label=]FILE,… benches several builds in the same
                        rounds (the first is the "meli-proxy" row, e.g. base=/tmp/a/bin/meli-proxy.js,bin/meli-proxy.js)
  --node LIST           node binaries to run meli-proxy with, [label=]FILE,… (default: this
                        node); each adds a meli-proxy row, e.g. node24=/tmp/n24/node_modules/node/bin/node
  --node-args=ARGS     options for node running meli-proxy (note the =), e.g.
                        --node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
  --limits MODE         features (default): a rules file with the classic rules plus a per-IP rule
                        whose limit is never reached, so every request goes through the limiter;
                        none: no rules
  --json-out FILE       where to write the JSON results (default bench/results/latest.json)
  -h, --help            this help

Example: npm run bench -- --rounds 5 --only proxy,nginx -- --config limits.yaml`;

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

/** `[label=]FILE,…`: unlabelled items are called `first` for the first, `<prefix><n>` after it. */
function labelledFiles(option: string, value: string, first: string, prefix: string): ProxyBin[] {
  const bins = value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
    .map((item, index) => {
      const eq = item.indexOf('=');
      const label = eq > 0 ? item.slice(0, eq) : index === 0 ? first : `${prefix}${index + 1}`;
      return { label, file: eq > 0 ? item.slice(eq + 1) : item, named: eq > 0 };
    });
  if (bins.length === 0) throw new UsageError(`--${option} needs a file`);
  const labels = new Set(bins.map((bin) => bin.label));
  if (labels.size !== bins.length) throw new UsageError(`--${option}: labels must differ`);
  for (const { label } of bins) {
    if (!/^[\w.-]+$/.test(label)) throw new UsageError(`--${option}: label "${label}" must be a word`);
  }
  return bins;
}

function cpuList(name: string, value: string): string {
  if (!/^\d+([-,]\d+)*$/.test(value)) {
    throw new UsageError(`--${name} must be a CPU list such as 0 or 0,1 or 0-3, got "${value}"`);
  }
  return value;
}

/** Parses argv (without node and the script). Returns null when help was asked for. */
export function parseOptions(argv: readonly string[]): BenchOptions | null {
  const dashDash = argv.indexOf('--');
  const own = dashDash === -1 ? [...argv] : argv.slice(0, dashDash);
  const serveArgs = dashDash === -1 ? [] : argv.slice(dashDash + 1);
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(own).values;
  } catch (error) {
    throw new UsageError(`${(error as Error).message} (see --help)`);
  }
  if (values.help) return null;

  const named = (values.only ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (values.only !== undefined && named.length === 0)
    throw new UsageError('--only needs a target or scenario');
  for (const id of named) {
    if (
      !(TARGET_IDS as readonly string[]).includes(id) &&
      !(SCENARIO_IDS as readonly string[]).includes(id)
    ) {
      throw new UsageError(
        `--only: unknown name "${id}"; targets: ${TARGET_IDS.join(', ')}; scenarios: ${SCENARIO_IDS.join(', ')}`,
      );
    }
  }
  // Naming no target means every target, naming no scenario every scenario.
  const targetsNamed = TARGET_IDS.filter((id) => named.includes(id));
  const scenariosNamed = SCENARIO_IDS.filter((id) => named.includes(id));

  const loadgen = values.loadgen ?? 'auto';
  if (loadgen !== 'auto' && loadgen !== 'wrk' && loadgen !== 'autocannon') {
    throw new UsageError(`--loadgen must be auto, wrk or autocannon, got "${loadgen}"`);
  }
  const path = values.path ?? BENCH_PATH;
  if (!path.startsWith('/')) throw new UsageError(`--path must start with "/", got "${path}"`);
  if (values.store !== undefined && values.store === '') throw new UsageError('--store needs a URL');
  const limits = values.limits ?? 'features';
  if (limits !== 'features' && limits !== 'none') {
    throw new UsageError(`--limits must be features or none, got "${limits}"`);
  }

  return {
    duration: positiveInt('duration', values.duration, 10),
    warmup: values.warmup === '0' ? 0 : positiveInt('warmup', values.warmup, 2),
    connections: positiveInt('connections', values.connections, 64),
    timeout: positiveInt('timeout', values.timeout, 10),
    threads: positiveInt('threads', values.threads, 1),
    rounds: positiveInt('rounds', values.rounds, 3),
    workers: values.workers === undefined ? undefined : positiveInt('workers', values.workers, 1),
    store: values.store,
    ips: positiveInt('ips', values.ips, 1),
    // Keep the table in a fixed, meaningful order whatever order --only lists.
    only: targetsNamed.length > 0 ? targetsNamed : [...TARGET_IDS],
    scenarios: scenariosNamed.length > 0 ? scenariosNamed : [...SCENARIO_IDS],
    jsonOut: values['json-out'] ?? 'bench/results/latest.json',
    path,
    loadgen,
    pin: values.pin ?? true,
    loadgenCpus: cpuList('loadgen-cpus', values['loadgen-cpus'] ?? '0'),
    serverCpus: cpuList('server-cpus', values['server-cpus'] ?? '1'),
    halfLoad: values['half-load'] ?? true,
    halfLoadRate:
      values['half-load-rate'] === undefined
        ? undefined
        : positiveInt('half-load-rate', values['half-load-rate'], 1),
    proxyBins: labelledFiles('proxy-bin', values['proxy-bin'] ?? 'bin/meli-proxy.js', 'meli-proxy', 'build'),
    nodes: labelledFiles(
      'node',
      values.node ?? process.execPath,
      `node${process.versions.node.split('.')[0]}`,
      'node',
    ),
    nodeArgs: (values['node-args'] ?? '').split(' ').filter((arg) => arg !== ''),
    limits,
    serveArgs,
  };
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: false,
    allowNegative: true,
    strict: true,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      timeout: { type: 'string' },
      threads: { type: 'string' },
      rounds: { type: 'string' },
      only: { type: 'string' },
      workers: { type: 'string' },
      store: { type: 'string' },
      ips: { type: 'string' },
      path: { type: 'string' },
      loadgen: { type: 'string' },
      pin: { type: 'boolean' },
      'loadgen-cpus': { type: 'string' },
      'server-cpus': { type: 'string' },
      'half-load': { type: 'boolean' },
      'half-load-rate': { type: 'string' },
      'proxy-bin': { type: 'string' },
      'node-args': { type: 'string' },
      node: { type: 'string' },
      limits: { type: 'string' },
      'json-out': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
