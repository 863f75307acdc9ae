/**
 * `meli-proxy deploy` (apply the Kubernetes manifests stage by stage), `deploy status` and
 * `deploy destroy`. Everything that touches the outside (kubectl, the terminal, the clock, the
 * question asked before destructive work) comes in through DeployDeps so every path is testable.
 */
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { type ChoiceFlags, describeChoices, type InstallChoices, parseChoices } from '../deploy/choices.js';
import { assertOwnNamespace, destroyPlan, destroyStages, onlyOwned } from '../deploy/destroy.js';
import { DEFAULT_KILL_GRACE_MS, executePlan } from '../deploy/executor.js';
import { execaKubectl, type RunKubectl, withContext } from '../deploy/kubectl.js';
import { clusterLogin, kubectlPortForward, type LoginDeps, spawnAuthLogin } from '../deploy/login.js';
import { assertNothingForeign, ownedClusterRefs } from '../deploy/ownership.js';
import { buildPlan, type GeneratedObject, type Plan } from '../deploy/plan.js';
import { checkCluster, checkKubectl } from '../deploy/preflight.js';
import { assertPrerequisites, checkPrerequisites } from '../deploy/prerequisites.js';
import { pruneConfigMaps } from '../deploy/prune.js';
import { defaultManifestsDir, renderInstall } from '../deploy/render.js';
import type { DeployReporter } from '../deploy/report.js';
import { PROMETHEUS_AUTH_SECRET, SECRET_KEYS, SECRET_NAME } from '../deploy/secrets.js';
import { clusterStatus } from '../deploy/status.js';
import { proxyStoreHealth } from '../deploy/store-health.js';
import { deploySummary } from '../deploy/summary.js';
import { PlainReporter } from '../deploy/views/plain.js';
import { formatPlan, formatPrerequisites, formatStatus } from '../deploy/views/text.js';
import { RuntimeFailure, UsageError } from '../errors.js';
import type { CliIO } from './io.js';

export interface DeployDeps {
  runKubectl: RunKubectl;
  /** deploy/k8s: holds base/ and overlays/. */
  manifestsDir: string;
  /** Whether a person can answer a question (stdin is a terminal). */
  interactive: boolean;
  /** Asks a yes/no question; called only when interactive. */
  confirm(question: string): Promise<boolean>;
  /** Where the ink view draws when io.stdout is a terminal. */
  terminal: NodeJS.WriteStream | undefined;
  now(): number;
  clock(): Date;
  killGraceMs: number;
  /** `deploy login`: the port-forward to the in-cluster database, for a kubectl context. */
  portForward(context: string | undefined): LoginDeps['portForward'];
  /** `deploy login`: runs `meli-proxy auth login` with this environment. */
  authLogin: LoginDeps['authLogin'];
}

export function defaultDeployDeps(): DeployDeps {
  return {
    runKubectl: execaKubectl(),
    manifestsDir: defaultManifestsDir(),
    interactive: process.stdin.isTTY === true,
    confirm: async (question) => {
      const prompt = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return /^y(es)?$/i.test((await prompt.question(question)).trim());
      } finally {
        prompt.close();
      }
    },
    terminal: process.stdout,
    now: Date.now,
    clock: () => new Date(),
    killGraceMs: DEFAULT_KILL_GRACE_MS,
    portForward: (context) => kubectlPortForward(context),
    authLogin: (env) => spawnAuthLogin(env),
  };
}

interface DeployFlags extends ChoiceFlags {
  skipPrerequisites?: boolean;
  context?: string;
  namespace?: string;
  overlay: string;
  manifests?: string;
  image?: string;
  dryRun?: boolean;
  timeout: string;
  yes?: boolean;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `--timeout`: a duration with its unit (90s, 5m, 1h), from 1 s to 24 h. */
export function parseTimeout(text: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text.trim());
  const value = match ? Number(match[1]) * (DURATION_UNITS[match[2]!] ?? 1) : Number.NaN;
  if (!(value >= 1000 && value <= 86_400_000)) {
    throw new UsageError(
      `Invalid --timeout "${text}": expected a duration from 1s to 24h with its unit, e.g. 90s or 5m.`,
    );
  }
  return value;
}

interface Prepared {
  flags: DeployFlags;
  choices: InstallChoices;
  plan: Plan;
  run: RunKubectl;
  stageTimeoutMs: number;
}

/** Validates flags, checks kubectl, renders the overlay and builds the plan. */
async function prepare(flags: DeployFlags, io: CliIO, deps: DeployDeps): Promise<Prepared> {
  const stageTimeoutMs = parseTimeout(flags.timeout);
  const choices = parseChoices(flags, io.env);
  const manifestsDir = flags.manifests ? resolve(io.cwd, flags.manifests) : deps.manifestsDir;
  await checkKubectl(deps.runKubectl);
  // Rendering needs no cluster, so it runs without --context.
  const manifests = await renderInstall({
    manifestsDir,
    overlay: flags.overlay,
    namespace: flags.namespace,
    image: flags.image,
    run: deps.runKubectl,
    choices,
  });
  const plan = buildPlan(manifests, generatedObjects(manifests));
  return { flags, choices, plan, run: withContext(deps.runKubectl, flags.context), stageTimeoutMs };
}

/** The Secrets `deploy` makes itself (never committed), with every key they hold. */
function generatedObjects(
  manifests: readonly { kind: string; metadata: { name: string } }[],
): GeneratedObject[] {
  const keys = SECRET_KEYS.map((item) => `${item.key} (${item.from})`).join('; ');
  const generated: GeneratedObject[] = [
    { stage: 'config', kind: 'Secret', name: SECRET_NAME, note: `made at deploy time, keys: ${keys}` },
  ];
  if (manifests.some((manifest) => manifest.kind === 'Ingress' && manifest.metadata.name === 'prometheus')) {
    generated.push({
      stage: 'config',
      kind: 'Secret',
      name: PROMETHEUS_AUTH_SECRET,
      note: 'made at deploy time, key: auth (htpasswd line for user admin from prometheus-password)',
    });
  }
  return generated;
}

async function reporterFor(io: CliIO, deps: DeployDeps): Promise<DeployReporter> {
  if (io.stdout.isTTY === true && deps.terminal) {
    // ink is loaded only for a terminal: every other command starts faster without it.
    const { InkReporter } = await import('../deploy/views/ink.js');
    return new InkReporter(deps.terminal, deps.now);
  }
  return new PlainReporter(io.stdout, deps.clock);
}

/** Asks before destructive or production work; without a terminal, --yes is required. */
async function confirmOrStop(deps: DeployDeps, question: string, what: string): Promise<void> {
  if (!deps.interactive) {
    throw new UsageError(`${what}: pass --yes to confirm when not running in a terminal.`);
  }
  if (!(await deps.confirm(`${question} [y/N] `))) throw new RuntimeFailure('Stopped: nothing was changed.');
}

function target(flags: DeployFlags, plan: Plan, context: string): string {
  return `namespace ${plan.namespace} of context ${context} (overlay ${flags.overlay})`;
}

function chosen(choices: InstallChoices): string {
  return `Components: ${describeChoices(choices)}.\n`;
}

async function deploy(flags: DeployFlags, io: CliIO, deps: DeployDeps): Promise<void> {
  const { plan, run, stageTimeoutMs, choices } = await prepare(flags, io, deps);
  assertOwnNamespace(plan, 'deploy into');
  if (flags.dryRun) {
    io.stdout.write(
      formatPlan(
        plan,
        `Plan for overlay ${flags.overlay}, namespace ${plan.namespace} (dry run: nothing is applied):`,
      ),
    );
    io.stdout.write(chosen(choices));
    return;
  }
  const context = await checkCluster(run, flags.context);
  if (!flags.skipPrerequisites) assertPrerequisites(await checkPrerequisites(run, plan));
  await assertNothingForeign(run, plan);
  if (flags.overlay === 'production' && !flags.yes) {
    await confirmOrStop(
      deps,
      `Deploy to ${target(flags, plan, context)}?`,
      'Deploying the production overlay',
    );
  }
  const result = await executePlan({
    title: `Deploying to ${target(flags, plan, context)}`,
    run,
    plan,
    stageTimeoutMs,
    reporter: await reporterFor(io, deps),
    env: io.env,
    now: deps.now,
    killGraceMs: deps.killGraceMs,
  });
  if (!result.ok) {
    const stage = plan.stages.find((item) => item.id === result.failedStage);
    throw new RuntimeFailure(
      `deploy stopped at stage "${stage?.title ?? result.failedStage}" (details above).`,
    );
  }
  const pruned = await pruneConfigMaps(run, plan);
  if (pruned.deleted.length > 0)
    io.stdout.write(`Removed ConfigMaps of earlier deploys: ${pruned.deleted.join(', ')}\n`);
  if (pruned.problem)
    io.stdout.write(`Could not prune old ConfigMaps (${pruned.problem}); they do no harm.\n`);
  for (const line of deploySummary(plan)) io.stdout.write(`${line}\n`);
}

async function status(flags: DeployFlags, io: CliIO, deps: DeployDeps): Promise<void> {
  const { plan, run } = await prepare(flags, io, deps);
  const context = await checkCluster(run, flags.context);
  const stages = await clusterStatus(run, plan);
  io.stdout.write(formatStatus(stages, `Status of ${target(flags, plan, context)}:`));
  const prerequisites = await checkPrerequisites(run, plan);
  io.stdout.write(formatPrerequisites(prerequisites));
  const proxyUp = stages.some((stage) =>
    stage.objects.some((object) => object.ref === 'Deployment/meli-proxy' && object.health !== 'missing'),
  );
  const store = proxyUp ? await proxyStoreHealth(run, plan.namespace) : undefined;
  if (store) io.stdout.write(`Store, as the proxy sees it: ${store.detail}\n`);
  const unhealthy = stages
    .filter((stage) => stage.objects.length > 0 && !['ready', 'present'].includes(stage.health))
    .map((stage) => stage.title);
  for (const missing of prerequisites.filter((item) => !item.ok)) unhealthy.push(missing.name);
  if (store && !store.healthy) unhealthy.push('store');
  if (unhealthy.length > 0) {
    throw new RuntimeFailure(`not healthy: ${unhealthy.join(', ')}.`);
  }
}

async function login(flags: DeployFlags, io: CliIO, deps: DeployDeps): Promise<void> {
  const { plan, run } = await prepare(flags, io, deps);
  await checkCluster(run, flags.context);
  await clusterLogin(plan.namespace, io.env, {
    run,
    portForward: deps.portForward(flags.context),
    authLogin: deps.authLogin,
    say: (line) => io.stdout.write(`${line}\n`),
  });
}

async function destroy(flags: DeployFlags, io: CliIO, deps: DeployDeps): Promise<void> {
  const { plan, run, stageTimeoutMs } = await prepare(flags, io, deps);
  assertOwnNamespace(plan, 'destroy');
  if (flags.dryRun) {
    const reversed: Plan = {
      ...plan,
      stages: destroyStages(plan).map((stage, index) => ({ ...stage, number: index + 1, waits: [] })),
    };
    io.stdout.write(formatPlan(reversed, `Would delete, in this order (dry run: nothing is deleted):`));
    return;
  }
  const context = await checkCluster(run, flags.context);
  if (!flags.yes) {
    await confirmOrStop(
      deps,
      `Delete everything meli-proxy deployed in ${target(flags, plan, context)}, including the database volume?`,
      'deploy destroy deletes the deployment and its data',
    );
  }
  const { plan: ours, kept } = onlyOwned(plan, await ownedClusterRefs(run, plan));
  if (kept.length > 0) {
    io.stdout.write(`Leaving alone what is not this install's (or not there): ${kept.join(', ')}\n`);
  }
  const result = await destroyPlan({
    title: `Destroying ${target(flags, ours, context)}`,
    run,
    plan: ours,
    stageTimeoutMs,
    reporter: await reporterFor(io, deps),
    now: deps.now,
  });
  if (!result.ok) throw new RuntimeFailure('destroy stopped (details above).');
}

export function registerDeploy(program: Command, io: CliIO, deps: DeployDeps = defaultDeployDeps()): void {
  const command = program
    .command('deploy')
    .description(
      'Deploy to Kubernetes: render the kustomization, apply it stage by stage, wait for each stage.',
    )
    .option('--context <name>', 'kubectl context (default: the current context)')
    .option('--namespace <name>', "namespace to deploy into (default: the overlay's, meli-proxy)")
    .option('--overlay <name>', 'kustomize overlay: local or production', 'local')
    .option('--image <ref>', "proxy image to run instead of the overlay's (e.g. registry/meli-proxy:1.2.3)")
    .option('--dry-run', 'print the ordered plan and apply nothing (needs kubectl, no cluster)')
    .option('--timeout <duration>', 'time allowed to each stage (e.g. 90s, 5m)', '5m')
    .option('--yes', 'do not ask before deploying the production overlay or destroying')
    .option('--manifests <dir>', 'directory holding base/ and overlays/ (default: the packaged deploy/k8s)')
    .option(
      '--database <where>',
      'in-cluster (PostgreSQL in a StatefulSet) or external (MELI_PROXY_DATABASE_URL; the default when it is set)',
    )
    .option(
      '--prometheus <which>',
      "bundled, or operator: the cluster's prometheus-operator (PodMonitor)",
      'bundled',
    )
    .option(
      '--autoscaler <which>',
      'prometheus-adapter (HPA on custom metrics) or keda (ScaledObject)',
      'prometheus-adapter',
    )
    .option(
      '--prometheus-url <url>',
      'Prometheus the autoscaler reads (default: the bundled one, or prometheus-operated.monitoring with --prometheus operator)',
    )
    .option('--expose-prometheus', 'route the bundled Prometheus through the Ingress, behind basic auth')
    .option('--grafana-host <host>', "Grafana's Ingress host (default: the overlay's)")
    .option(
      '--prometheus-host <host>',
      "Prometheus' Ingress host with --expose-prometheus (default: the overlay's)",
    )
    .option(
      '--skip-prerequisites',
      'apply even when the ingress controller, metrics-server or a CRD is missing',
    )
    .addHelpText(
      'after',
      '\nStages: namespace → config and secrets → storage and database → database ready → migration job complete\n' +
        '→ proxy rollout ready → autoscaling and monitoring → ingress. Exit codes: 0 done, 1 a stage failed,\n' +
        "2 kubectl missing, cluster unreachable, a prerequisite missing, another install's object in the way\n" +
        'or invalid flags.',
    )
    .action(async (flags: DeployFlags) => deploy(flags, io, deps));

  command
    .command('status')
    .description(
      'Show each stage and the health of its objects in the cluster (exit 1 unless all are healthy).',
    )
    .configureHelp({ showGlobalOptions: true })
    .action(async (_options: unknown, sub: Command) => status(sub.optsWithGlobals<DeployFlags>(), io, deps));

  command
    .command('login')
    .description(
      "Log in to MercadoLibre in the browser, storing the token in the cluster's database, and switch token injection on.",
    )
    .configureHelp({ showGlobalOptions: true })
    .action(async (_options: unknown, sub: Command) => login(sub.optsWithGlobals<DeployFlags>(), io, deps));

  command
    .command('destroy')
    .description('Delete the deployment in reverse stage order (asks first unless --yes).')
    .configureHelp({ showGlobalOptions: true })
    .action(async (_options: unknown, sub: Command) => destroy(sub.optsWithGlobals<DeployFlags>(), io, deps));
}
