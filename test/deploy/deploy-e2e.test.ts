/**
 * `meli-proxy deploy` end to end against the scripted kubectl stand-in, first on PATH: the real
 * execa path, the real manifests (rendered by the real kubectl through the stand-in). Asserts the
 * order of stages, the waits and their timeouts, what is printed on failure and the exit codes.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { parseManifests } from '../../src/deploy/manifests.js';
import type { FakeCall } from '../support/fake-kubectl.js';
import { REPO_ROOT } from '../support/proxy.js';
import { Capture, runDeployCli } from './cli-harness.js';
import {
  DEPLOY_ADMIN_TOKEN as ADMIN_TOKEN,
  DEPLOY_CLIENT_SECRET as CLIENT_SECRET,
  kubectlCommand as command,
  kubectlStandInForSuite,
  DEPLOY_ENV as SECRET_ENV,
} from './fake-cluster.js';
import { SKIP_RENDERING } from './manifests-helpers.js';

const cluster = kubectlStandInForSuite();

/** A short label per call: verb plus, for apply, the kind/name of each object applied. */
function label(call: FakeCall): string {
  const text = command(call);
  if (text.startsWith('apply')) {
    const objects = call.stdin.trimStart().startsWith('{')
      ? [JSON.parse(call.stdin) as { kind: string; metadata: { name: string } }]
      : parseManifests(call.stdin, 'stdin');
    return `apply ${objects.map((object) => `${object.kind}/${object.metadata.name.replace(/-[a-z0-9]{10}$/, '')}`).join(' ')}`;
  }
  return text;
}

function indexOf(labels: string[], pattern: RegExp): number {
  const index = labels.findIndex((item) => pattern.test(item));
  if (index === -1) throw new Error(`no call matching ${pattern} in:\n${labels.join('\n')}`);
  return index;
}

function eventsList(
  items: Array<[kind: string, name: string, reason: string, message: string, time: string]>,
): string {
  return JSON.stringify({
    kind: 'List',
    items: items.map(([kind, name, reason, message, time]) => ({
      involvedObject: { kind, name },
      reason,
      message,
      type: reason === 'Scheduled' ? 'Normal' : 'Warning',
      lastTimestamp: time,
      count: 1,
    })),
  });
}

function podList(...names: string[]): string {
  return JSON.stringify({ kind: 'List', items: names.map((name) => ({ metadata: { name } })) });
}

// Each case runs a whole deploy of short-lived kubectl processes: generous deadlines catch hangs only.
describe.skipIf(SKIP_RENDERING)('meli-proxy deploy against a scripted kubectl', { timeout: 180_000 }, () => {
  it('applies stage by stage, waiting for each, with the Secret on stdin only, and exits 0', async () => {
    cluster.fake.script([
      { match: ['rollout', 'status', 'statefulset/postgres'], delayMs: 400, stdout: 'roll out complete\n' },
    ]);
    const run = await runDeployCli(['deploy', '--context', 'kind-test', '--timeout', '30s'], {
      env: SECRET_ENV,
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const calls = cluster.fake.calls();
    const labels = calls.map(label);
    const order = [
      /^version --client/,
      /^kustomize /,
      /^version --output=json --request-timeout=10s$/,
      /^apply Namespace\/meli-proxy$/,
      /^apply ServiceAccount\/prometheus .*ConfigMap\/meli-proxy-config/,
      /^get secret meli-proxy-secrets/,
      /^apply Secret\/meli-proxy-secrets$/,
      /^apply Service\/postgres StatefulSet\/postgres$/,
      /^rollout status statefulset\/postgres/,
      /^wait --for=condition=Ready pod --selector app.kubernetes.io\/component=database,app.kubernetes.io\/name=postgres/,
      /^delete job meli-proxy-migrate .*--ignore-not-found/,
      /^apply Job\/meli-proxy-migrate$/,
      /^wait --for=condition=complete job\/meli-proxy-migrate/,
      /^apply Service\/meli-proxy Service\/meli-proxy-admin Deployment\/meli-proxy$/,
      /^rollout status deployment\/meli-proxy/,
      /^apply .*Deployment\/prometheus-adapter .*HorizontalPodAutoscaler\/meli-proxy PodDisruptionBudget\/meli-proxy$/,
      /^rollout status deployment\/prometheus-adapter/,
      /^apply Ingress\/grafana Ingress\/meli-proxy$/,
      /^wait --for=jsonpath={.status.loadBalancer.ingress} ingress\/meli-proxy/,
    ].map((pattern) => indexOf(labels, pattern));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    // (The failure watch beside the completion wait may be cancelled before its process even starts;
    // the failing-Job case below shows it at work.)

    // Stage 4 waited for the slow rollout before asking for the pods' readiness.
    const rollout = calls[indexOf(labels, /^rollout status statefulset\/postgres/)]!;
    const ready = calls[indexOf(labels, /^wait --for=condition=Ready pod/)]!;
    expect(ready.start - rollout.start).toBeGreaterThanOrEqual(400);

    // Cluster calls carry the context; rendering does not need one. Waits carry the stage budget.
    for (const call of calls) {
      const text = command(call);
      if (text.startsWith('kustomize') || text.startsWith('version --client')) {
        expect(call.args[0]).not.toBe('--context');
      } else {
        expect(call.args.slice(0, 2), text).toEqual(['--context', 'kind-test']);
      }
      if (/^(rollout|wait)/.test(text)) {
        const timeout = call.args.find((arg) => arg.startsWith('--timeout='));
        expect(Number(/--timeout=(\d+)s/.exec(timeout ?? '')?.[1]), text).toBeLessThanOrEqual(30);
      }
      if (text.startsWith('apply')) {
        expect(call.args).toEqual(expect.arrayContaining(['--server-side', '--filename', '-']));
      }
    }

    // Plain output: one timestamped line per event, every stage done.
    // …then, after the run, where things answer and how to log in to Grafana.
    const lines = run.stdout.trim().split('\n');
    const summary = lines.filter((line) => /^(Proxy|Grafana|Prometheus): /.test(line));
    expect(summary.map((line) => line.split(':')[0])).toEqual(['Grafana', 'Proxy']);
    for (const line of lines.filter((item) => !summary.includes(item))) {
      expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /);
    }
    expect(run.stdout).toMatch(/\[4\/8\] database ready: done in/);
    expect(run.stdout).toMatch(/\[8\/8\] ingress: done in/);
    expect(run.stdout).toMatch(/finished in/);

    // The Secret: made from the environment, sent on stdin, never printed nor passed as an argument.
    const secretCall = calls.find((call) => label(call) === 'apply Secret/meli-proxy-secrets')!;
    const secret = JSON.parse(secretCall.stdin) as {
      data: Record<string, string>;
      metadata: { namespace: string };
    };
    const decoded = Object.fromEntries(
      Object.entries(secret.data).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]),
    );
    expect(secret.metadata.namespace).toBe('meli-proxy');
    expect(decoded['admin-token']).toBe(ADMIN_TOKEN);
    expect(decoded['client-secret']).toBe(CLIENT_SECRET);
    expect(decoded['client-id']).toBe('12345');
    expect(decoded['postgres-password']).toMatch(/^[0-9a-f]{48}$/);
    expect(decoded['database-url']).toBe(
      `postgres://meli_proxy:${decoded['postgres-password']}@postgres:5432/meli_proxy`,
    );
    // client-id is not secret (and short enough to appear by chance); everything else must not show.
    const secrets = Object.entries(decoded)
      .filter(([key]) => key !== 'client-id')
      .map(([, value]) => value);
    for (const value of secrets) {
      expect(run.stdout).not.toContain(value);
      expect(run.stderr).not.toContain(value);
      for (const call of calls) expect(call.args.join(' ')).not.toContain(value);
    }
    expect(run.stdout).toContain('admin-token from MELI_PROXY_ADMIN_TOKEN');
    expect(run.stdout).toContain('postgres-password generated');
  });

  it('a failed migration Job stops the deploy at once with its events and logs (exit 1)', async () => {
    cluster.fake.script([
      {
        match: ['wait', '--for=condition=failed', 'job/meli-proxy-migrate'],
        delayMs: 200,
        stdout: 'condition met\n',
      },
      {
        match: ['wait', '--for=condition=complete', 'job/meli-proxy-migrate'],
        honorTimeout: true,
        delayMs: 600_000,
      },
      {
        match: ['get', 'job', 'meli-proxy-migrate'],
        stdout: JSON.stringify({
          status: {
            conditions: [
              {
                type: 'Failed',
                status: 'True',
                reason: 'BackoffLimitExceeded',
                message: 'Job has reached the specified backoff limit',
              },
            ],
          },
        }),
      },
      {
        match: ['get', 'pods', 'job-name=meli-proxy-migrate'],
        stdout: podList('meli-proxy-migrate-x7k2p'),
      },
      {
        match: ['get', 'events'],
        stdout: eventsList([
          ['Pod', 'grafana-5d8f9-abcde', 'BackOff', 'unrelated grafana trouble', '2025-01-01T10:00:00Z'],
          [
            'Pod',
            'meli-proxy-migrate-x7k2p',
            'BackOff',
            'Back-off restarting failed container',
            '2025-01-01T10:00:02Z',
          ],
          [
            'Job',
            'meli-proxy-migrate',
            'BackoffLimitExceeded',
            'Job has reached the specified backoff limit',
            '2025-01-01T10:00:05Z',
          ],
        ]),
      },
      {
        match: ['logs', 'job-name=meli-proxy-migrate'],
        stdout:
          '[pod/meli-proxy-migrate-x7k2p/migrate] error: password authentication failed for user "meli_proxy"\n',
      },
    ]);
    const run = await runDeployCli(['deploy', '--context', 'kind-test', '--timeout', '600s'], {
      env: SECRET_ENV,
    });
    expect(run.code).toBe(1);
    // Stopped on the failure, not after the 600 s timeout.
    expect(run.elapsedMs).toBeLessThan(90_000);
    expect(run.stderr).toContain('deploy stopped at stage "migration job complete"');
    expect(run.stdout).toContain('[5/8] migration job complete: FAILED after');
    expect(run.stdout).toContain(
      'Job/meli-proxy-migrate failed (BackoffLimitExceeded: Job has reached the specified backoff limit).',
    );
    expect(run.stdout).toContain('Recent events of Job/meli-proxy-migrate and its pods:');
    expect(run.stdout).toContain(
      'Warning BackOff Pod/meli-proxy-migrate-x7k2p: Back-off restarting failed container',
    );
    expect(run.stdout).toContain('Warning BackoffLimitExceeded Job/meli-proxy-migrate');
    expect(run.stdout).not.toContain('unrelated grafana trouble');
    expect(run.stdout).toContain('Last log lines:');
    expect(run.stdout).toContain('password authentication failed');
    const labels = cluster.fake.calls().map(label);
    expect(labels.some((item) => item.includes('Deployment/meli-proxy'))).toBe(false);
    expect(labels.some((item) => item.startsWith('apply Ingress'))).toBe(false);
  });

  it("a rollout that times out stops at the stage timeout with the pods' events (exit 1)", async () => {
    cluster.fake.script([
      { match: ['rollout', 'status', 'deployment/meli-proxy'], honorTimeout: true, delayMs: 600_000 },
      {
        match: ['get', 'pods', 'app.kubernetes.io/component=proxy,app.kubernetes.io/name=meli-proxy'],
        stdout: podList('meli-proxy-7c9d8-q2w3e'),
      },
      {
        match: ['get', 'events'],
        stdout: eventsList([
          [
            'ReplicaSet',
            'meli-proxy-7c9d8',
            'SuccessfulCreate',
            'Created pod: meli-proxy-7c9d8-q2w3e',
            '2025-01-01T10:00:00Z',
          ],
          [
            'Pod',
            'meli-proxy-7c9d8-q2w3e',
            'Unhealthy',
            'Readiness probe failed: HTTP probe failed with statuscode: 503',
            '2025-01-01T10:00:09Z',
          ],
        ]),
      },
      { match: ['logs'], stdout: '{"level":"warn","msg":"store unreachable"}\n' },
    ]);
    const run = await runDeployCli(['deploy', '--context', 'kind-test', '--timeout', '8s'], {
      env: SECRET_ENV,
    });
    expect(run.code).toBe(1);
    expect(run.elapsedMs).toBeLessThan(90_000);
    const rollout = cluster.fake
      .calls()
      .find((call) => command(call).startsWith('rollout status deployment/meli-proxy'))!;
    expect(rollout, run.stdout).toBeDefined();
    // kubectl gets what is left of the stage's 8 s, never more.
    const given = Number(
      /^--timeout=(\d+)s$/.exec(rollout.args.find((arg) => arg.startsWith('--timeout='))!)?.[1],
    );
    expect(given).toBeGreaterThanOrEqual(1);
    expect(given).toBeLessThanOrEqual(8);
    expect(run.stdout).toContain('[6/8] proxy rollout ready: FAILED after');
    expect(run.stdout).toContain('Timed out after 8.0s waiting for rollout of Deployment/meli-proxy');
    expect(run.stdout).toContain('Readiness probe failed: HTTP probe failed with statuscode: 503');
    expect(run.stdout).toContain('ReplicaSet/meli-proxy-7c9d8');
    expect(run.stdout).toContain('store unreachable');
    expect(run.stderr).toContain('deploy stopped at stage "proxy rollout ready"');
    const labels = cluster.fake.calls().map(label);
    expect(labels.some((item) => item.includes('HorizontalPodAutoscaler'))).toBe(false);
  });

  it('kills a kubectl that hangs past its own timeout', async () => {
    cluster.fake.script([{ match: ['rollout', 'status', 'statefulset/postgres'], hang: true }]);
    const run = await runDeployCli(['deploy', '--context', 'kind-test', '--timeout', '8s'], {
      env: SECRET_ENV,
    });
    expect(run.code).toBe(1);
    expect(run.elapsedMs).toBeLessThan(90_000);
    expect(run.stdout).toContain('[4/8] database ready: FAILED after');
    expect(run.stdout).toContain('Timed out after 8.0s waiting for rollout of StatefulSet/postgres');
  });

  it("an apply the cluster refuses stops the deploy with kubectl's message (exit 1)", async () => {
    const refusal =
      'Error from server (Forbidden): error when creating "STDIN": statefulsets.apps "postgres" is forbidden: violates PodSecurity "restricted:latest"';
    cluster.fake.script([
      {
        match: ['apply'],
        stdinIncludes: 'kind: StatefulSet',
        exitCode: 1,
        stderr: `service/postgres serverside-applied\n${refusal}\n`,
      },
    ]);
    const run = await runDeployCli(['deploy', '--context', 'kind-test'], { env: SECRET_ENV });
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`kubectl apply failed in stage "storage and database": ${refusal}`);
    expect(run.stdout).toContain(
      `    kubectl said:\n      service/postgres serverside-applied\n      ${refusal}\n`,
    );
    expect(
      cluster.fake
        .calls()
        .map(label)
        .some((item) => item.startsWith('rollout')),
    ).toBe(false);
  });

  describe('preflight (exit 2, nothing applied)', () => {
    it('says kubectl is missing', async () => {
      const emptyDir = mkdtempSync(join(tmpdir(), 'meli-empty-path-'));
      const path = process.env.PATH;
      process.env.PATH = emptyDir;
      try {
        const run = await runDeployCli(['deploy', '--dry-run']);
        expect(run.code).toBe(2);
        expect(run.stderr).toContain('kubectl was not found on PATH');
      } finally {
        process.env.PATH = path;
        rmSync(emptyDir, { recursive: true, force: true });
      }
    });

    it('says the context does not answer', async () => {
      cluster.fake.script([
        {
          match: ['version', '--request-timeout=10s'],
          exitCode: 1,
          stderr:
            'The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?\n',
        },
      ]);
      const run = await runDeployCli(['deploy', '--context', 'kind-gone'], { env: SECRET_ENV });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('The cluster of kubectl context "kind-gone" does not answer');
      expect(run.stderr).toContain('127.0.0.1:6443 was refused');
      expect(cluster.fake.calls().some((call) => command(call).startsWith('apply'))).toBe(false);
    });

    it('says there is no current context', async () => {
      cluster.fake.script([
        {
          match: ['config', 'current-context'],
          exitCode: 1,
          stderr: 'error: current-context is not set\n',
        },
      ]);
      const run = await runDeployCli(['deploy'], { env: SECRET_ENV });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('kubectl has no current context. Pass --context NAME');
    });

    it('rejects a bad --timeout and an unknown overlay', async () => {
      expect((await runDeployCli(['deploy', '--timeout', '300'])).stderr).toContain(
        'Invalid --timeout "300"',
      );
      const overlay = await runDeployCli(['deploy', '--overlay', 'staging', '--dry-run']);
      expect(overlay.code).toBe(2);
      expect(overlay.stderr).toContain('Available overlays: local, production');
    });

    it('asks before the production overlay: without a terminal, --yes is required', async () => {
      const run = await runDeployCli(['deploy', '--overlay', 'production', '--context', 'kind-test'], {
        env: SECRET_ENV,
      });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('pass --yes');
      expect(cluster.fake.calls().some((call) => command(call).startsWith('apply'))).toBe(false);
    });
  });

  it('--dry-run prints the ordered plan without touching a cluster', async () => {
    const run = await runDeployCli([
      'deploy',
      '--dry-run',
      '--namespace',
      'shop',
      '--image',
      'reg.test/mp:2',
    ]);
    expect(run.code).toBe(0);
    expect(
      cluster.fake
        .calls()
        .map(command)
        .map((text) => text.split(' ')[0]),
    ).toEqual(['version', 'kustomize']);
    const titles = [...run.stdout.matchAll(/^ ?(\d)\. (.+)$/gm)].map((match) => match[2]);
    expect(titles).toEqual([
      'namespace',
      'config and secrets',
      'storage and database',
      'database ready',
      'migration job complete',
      'proxy rollout ready',
      'autoscaling and monitoring',
      'ingress',
    ]);
    expect(run.stdout).toContain('namespace shop');
    expect(run.stdout).toContain('Namespace/shop');
    expect(run.stdout).toContain('wait: rollout of StatefulSet/postgres');
    expect(run.stdout).toContain('wait: Job/meli-proxy-migrate to complete');
  });

  it('--dry-run with other manifests keeps a kind the planner does not know', async () => {
    const root = mkdtempSync(join(tmpdir(), 'meli-manifests-'));
    try {
      mkdirSync(join(root, 'base'));
      mkdirSync(join(root, 'overlays', 'lab'), { recursive: true });
      writeFileSync(join(root, 'base', 'kustomization.yaml'), 'resources: [objects.yaml]\nnamespace: lab\n');
      writeFileSync(
        join(root, 'base', 'objects.yaml'),
        [
          'apiVersion: v1\nkind: Namespace\nmetadata: {name: lab}',
          'apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: proxy}\nspec: {}',
          'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {app.kubernetes.io/component: proxy}}\n' +
            'spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: web}]}}}',
        ].join('\n---\n'),
      );
      writeFileSync(join(root, 'overlays', 'lab', 'kustomization.yaml'), 'resources: [../../base]\n');
      const run = await runDeployCli(['deploy', '--dry-run', '--manifests', root, '--overlay', 'lab']);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const monitoring = run.stdout
        .split(/^ ?\d\. /m)
        .find((block) => block.startsWith('autoscaling and monitoring'));
      expect(monitoring).toContain('ServiceMonitor/proxy  (kind not known to the planner');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  describe('deploy status', () => {
    it('shows each stage with the health of its objects and exits 1 when something is not ready', async () => {
      const live = {
        kind: 'List',
        items: [
          { kind: 'Namespace', metadata: { name: 'meli-proxy' } },
          {
            kind: 'StatefulSet',
            metadata: { name: 'postgres', namespace: 'meli-proxy', generation: 1 },
            spec: { replicas: 1 },
            status: { observedGeneration: 1, readyReplicas: 1, currentRevision: 'a', updateRevision: 'a' },
          },
          {
            kind: 'Deployment',
            metadata: { name: 'meli-proxy', namespace: 'meli-proxy', generation: 2 },
            spec: { replicas: 3 },
            status: { observedGeneration: 2, updatedReplicas: 1, availableReplicas: 1 },
          },
          {
            kind: 'Job',
            metadata: { name: 'meli-proxy-migrate', namespace: 'meli-proxy' },
            status: { conditions: [{ type: 'Complete', status: 'True' }] },
          },
        ],
      };
      cluster.fake.script([
        { match: ['get', '--filename', '-'], stdout: JSON.stringify(live) },
        { match: ['get', 'secret', 'meli-proxy-secrets', 'name'], stdout: 'secret/meli-proxy-secrets\n' },
      ]);
      const run = await runDeployCli(['deploy', 'status', '--context', 'kind-test']);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(/✔ {2}1\. namespace +present/);
      expect(run.stdout).toMatch(/✔ {2}4\. database ready +ready/);
      expect(run.stdout).toMatch(/✔ {2}5\. migration job complete +ready/);
      expect(run.stdout).toMatch(/Deployment\/meli-proxy +progressing {2}1\/3 available/);
      expect(run.stdout).toMatch(/Secret\/meli-proxy-secrets +present/);
      expect(run.stdout).toMatch(/○ {2}8\. ingress +missing/);
      expect(run.stderr).toContain('not healthy: config and secrets');
      const get = cluster.fake.calls().find((call) => command(call).startsWith('get --filename -'))!;
      expect(get.args.slice(0, 2)).toEqual(['--context', 'kind-test']);
      expect(get.stdin).toContain('kind: Deployment');
    });
  });

  describe('deploy destroy', () => {
    it('deletes in reverse stage order with --yes', async () => {
      const run = await runDeployCli(['deploy', 'destroy', '--yes', '--context', 'kind-test']);
      expect(run.code).toBe(0);
      const deletes = cluster.fake.calls().filter((call) => command(call).startsWith('delete'));
      const kinds = deletes.map((call) =>
        call.stdin
          ? parseManifests(call.stdin, 'stdin').map((object) => object.kind)[0]
          : command(call).split(' ')[1],
      );
      expect(kinds).toEqual([
        'Ingress',
        'Service',
        'Service',
        'Job',
        'Service',
        'ServiceAccount',
        'secret',
        'Namespace',
      ]);
      for (const call of deletes) expect(call.args).toEqual(expect.arrayContaining(['--ignore-not-found']));
      expect(run.stdout).toMatch(/\[7\/7\] namespace: done in/);
      expect(run.stdout).toContain(
        'Destroying namespace meli-proxy of context kind-test (overlay local): 7 stages',
      );
    });

    it('asks first: without a terminal and without --yes it refuses (exit 2)', async () => {
      const run = await runDeployCli(['deploy', 'destroy', '--context', 'kind-test']);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('pass --yes');
      expect(cluster.fake.calls().some((call) => command(call).startsWith('delete'))).toBe(false);
    });

    it('in a terminal, a "no" changes nothing (exit 1)', async () => {
      const questions: string[] = [];
      const run = await runDeployCli(['deploy', 'destroy', '--context', 'kind-test'], {
        deps: {
          interactive: true,
          confirm: async (question) => {
            questions.push(question);
            return false;
          },
        },
      });
      expect(run.code).toBe(1);
      expect(questions[0]).toContain('namespace meli-proxy of context kind-test');
      expect(questions[0]).toContain('database volume');
      expect(cluster.fake.calls().some((call) => command(call).startsWith('delete'))).toBe(false);
    });

    it('never deletes, nor deploys into, a namespace the cluster needs', async () => {
      const destroy = await runDeployCli(['deploy', 'destroy', '--yes', '--namespace', 'kube-system']);
      expect(destroy.code).toBe(2);
      expect(destroy.stderr).toContain('Refusing to destroy namespace "kube-system"');
      const deploy = await runDeployCli(['deploy', '--namespace', 'default', '--context', 'kind-test']);
      expect(deploy.code).toBe(2);
      expect(deploy.stderr).toContain('Refusing to deploy into namespace "default"');
      expect(cluster.fake.calls().some((call) => /^(apply|delete)/.test(command(call)))).toBe(false);
    });
  });

  it('is a command of the meli-proxy program', async () => {
    const stdout = new Capture();
    const io = { stdout, stderr: new Capture(), env: {}, cwd: REPO_ROOT };
    expect(await runCli(['deploy', '--help'], io)).toBe(0);
    expect(stdout.text).toContain('Usage: meli-proxy deploy [options] [command]');
    expect(stdout.text).toMatch(/status\s+Show each stage/);
    expect(stdout.text).toMatch(/destroy\s+Delete the deployment/);
  });
});
