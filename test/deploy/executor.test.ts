/**
 * The executor and its parts with an injected runKubectl (no PATH tricks, no processes): secrets,
 * the job race, stage budgets, diagnostics, status health and small parsers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTimeout } from '../../src/cli/deploy.js';
import { collectEvents, MAX_EVENTS } from '../../src/deploy/diagnostics.js';
import { executePlan } from '../../src/deploy/executor.js';
import {
  firstErrorLine,
  type KubectlCall,
  type KubectlResult,
  withContext,
} from '../../src/deploy/kubectl.js';
import type { Manifest } from '../../src/deploy/manifests.js';
import { buildPlan } from '../../src/deploy/plan.js';
import type { DeployReporter, Failure } from '../../src/deploy/report.js';
import { buildSecret, describeSources, SECRET_NAME, withSecretFiles } from '../../src/deploy/secrets.js';
import { healthOf, worst } from '../../src/deploy/status.js';
import { runWait } from '../../src/deploy/waits.js';
import { UsageError } from '../../src/errors.js';

const OK: KubectlResult = { exitCode: 0, stdout: '', stderr: '', timedOut: false, canceled: false };

type Responder = (call: KubectlCall) => Partial<KubectlResult> | Promise<Partial<KubectlResult>>;

/** A runKubectl that records calls and answers with `respond` (default: success, empty output). */
function scripted(respond: Responder = () => ({})) {
  const calls: KubectlCall[] = [];
  const run = async (call: KubectlCall): Promise<KubectlResult> => {
    calls.push(call);
    return { ...OK, ...(await respond(call)) };
  };
  return { run, calls, commands: () => calls.map((call) => call.args.join(' ')) };
}

/** Like a kubectl wait that never sees its condition: answers only when the executor cancels it. */
function untilAborted(call: KubectlCall): Promise<Partial<KubectlResult>> {
  return new Promise((resolve) =>
    call.signal?.addEventListener('abort', () => resolve({ exitCode: 1, canceled: true })),
  );
}

class RecordingReporter implements DeployReporter {
  readonly events: string[] = [];
  failure: Failure | undefined;
  start(title: string): void {
    this.events.push(`start ${title}`);
  }
  stageStarted(id: string): void {
    this.events.push(`started ${id}`);
  }
  note(): void {}
  stageDone(id: string): void {
    this.events.push(`done ${id}`);
  }
  stageFailed(id: string, _elapsed: number, failure: Failure): void {
    this.failure = failure;
    this.events.push(`failed ${id}`);
  }
  async finish(ok: boolean): Promise<void> {
    this.events.push(`finish ${ok}`);
  }
}

const objects: Manifest[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
  {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'db', namespace: 'shop', labels: { 'app.kubernetes.io/component': 'database' } },
    spec: { selector: { matchLabels: { app: 'db' } }, template: { spec: { containers: [] } } },
  },
  {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'migrate', namespace: 'shop' },
    spec: { template: { spec: { containers: [] } } },
  },
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { matchLabels: { app: 'web' } }, template: { spec: { containers: [] } } },
  },
];

const secretPlan = () =>
  buildPlan(objects, [{ stage: 'config', kind: 'Secret', name: SECRET_NAME, note: 'made at deploy time' }]);

describe('buildSecret', () => {
  it('takes the environment first, then the cluster, then generates', () => {
    const built = buildSecret(
      'shop',
      { MELI_PROXY_ADMIN_TOKEN: 'from-the-environment-123' },
      {
        'postgres-password': 'old-pass',
        'database-url': 'postgres://u:old-pass@postgres:5432/d',
        'client-secret': 'kept',
      },
      () => 'generated-value-0123456789',
    );
    expect(describeSources(built.sources)).toBe(
      'postgres-password kept, admin-token from MELI_PROXY_ADMIN_TOKEN, client-secret kept, grafana-admin-password generated, prometheus-password generated, token-key generated, database-url kept',
    );
    const data = built.manifest.data as Record<string, string>;
    expect(Buffer.from(data['database-url']!, 'base64').toString()).toBe(
      'postgres://u:old-pass@postgres:5432/d',
    );
    expect(Object.keys(data).sort()).toEqual([
      'admin-token',
      'client-secret',
      'database-url',
      'grafana-admin-password',
      'postgres-password',
      'prometheus-password',
      'token-key',
    ]);
    expect(built.manifest.metadata).toMatchObject({ name: SECRET_NAME, namespace: 'shop' });
  });

  it('generates the token encryption key as base64 of 32 random bytes, keeps it, and checks a given one', () => {
    const first = buildSecret('ns', {}, undefined);
    const key = Buffer.from(
      (first.manifest.data as Record<string, string>)['token-key']!,
      'base64',
    ).toString();
    expect(Buffer.from(key, 'base64')).toHaveLength(32);
    const again = buildSecret('ns', {}, { 'token-key': key });
    expect(
      Buffer.from((again.manifest.data as Record<string, string>)['token-key']!, 'base64').toString(),
    ).toBe(key);
    expect(again.sources.find((source) => source.key === 'token-key')?.origin).toBe('kept');
    expect(() => buildSecret('ns', { MELI_PROXY_TOKEN_KEY: 'c2hvcnQ=' }, undefined)).toThrow(
      'MELI_PROXY_TOKEN_KEY must be base64 of exactly 32 bytes (its value is not shown).',
    );
  });

  it('token injection needs the application secret', () => {
    expect(() => buildSecret('ns', { MELI_PROXY_INJECT_TOKEN: 'on' }, undefined)).toThrow(/no client-secret/);
    const on = buildSecret(
      'ns',
      { MELI_PROXY_INJECT_TOKEN: 'on', MELI_CLIENT_SECRET: 's3cret-value' },
      undefined,
    );
    expect(
      Buffer.from((on.manifest.data as Record<string, string>)['inject-token']!, 'base64').toString(),
    ).toBe('on');
  });

  it('uses MELI_PROXY_DATABASE_URL when given, and derives one for the in-cluster database otherwise', () => {
    const given = buildSecret(
      'ns',
      { MELI_PROXY_DATABASE_URL: 'postgresql://a:b@db.example:5432/x' },
      undefined,
      () => 'p',
    );
    expect(
      Buffer.from(
        String((given.manifest.data as Record<string, string>)['database-url']),
        'base64',
      ).toString(),
    ).toBe('postgresql://a:b@db.example:5432/x');
    const derived = buildSecret('ns', {}, undefined, () => 'p/ss');
    expect(
      Buffer.from(
        String((derived.manifest.data as Record<string, string>)['database-url']),
        'base64',
      ).toString(),
    ).toBe('postgres://meli_proxy:p%2Fss@postgres:5432/meli_proxy');
  });

  it('refuses bad values with a message that names the variable but never the value', () => {
    const short = () => buildSecret('ns', { MELI_PROXY_ADMIN_TOKEN: 'tiny-secret' }, undefined);
    expect(short).toThrow(UsageError);
    expect(short).toThrow(/MELI_PROXY_ADMIN_TOKEN is too short/);
    expect(short).not.toThrow(/tiny-secret/);
    const url = () => buildSecret('ns', { MELI_PROXY_DATABASE_URL: 'mysql://root:hunter2@db' }, undefined);
    expect(url).toThrow(/MELI_PROXY_DATABASE_URL must be a postgres:\/\//);
    expect(url).not.toThrow(/hunter2/);
  });
});

describe('withSecretFiles', () => {
  it('reads <NAME>_FILE into <NAME> (a set <NAME> wins) and names an unreadable file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meli-secret-files-'));
    try {
      writeFileSync(join(dir, 'token'), 'token-from-a-mounted-file\n');
      const env = withSecretFiles({
        MELI_PROXY_ADMIN_TOKEN_FILE: join(dir, 'token'),
        MELI_CLIENT_SECRET: 'direct',
        MELI_CLIENT_SECRET_FILE: join(dir, 'missing'),
      });
      expect(env.MELI_PROXY_ADMIN_TOKEN).toBe('token-from-a-mounted-file');
      expect(env.MELI_CLIENT_SECRET).toBe('direct');
      expect(() => withSecretFiles({ MELI_CLIENT_ID_FILE: join(dir, 'missing') })).toThrow(
        /Cannot read MELI_CLIENT_ID_FILE .*missing \(ENOENT\)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('executePlan with an injected kubectl', () => {
  it('refuses bad secret input before applying anything', async () => {
    const kubectl = scripted();
    const reporter = new RecordingReporter();
    await expect(
      executePlan({
        run: kubectl.run,
        plan: secretPlan(),
        stageTimeoutMs: 5000,
        reporter,
        env: { MELI_PROXY_ADMIN_TOKEN: 'short' },
      }),
    ).rejects.toThrow(/MELI_PROXY_ADMIN_TOKEN is too short/);
    expect(kubectl.calls).toEqual([]);
    expect(reporter.events).toEqual([]);
  });

  it('reads the Secret in the cluster and keeps its password on a redeploy', async () => {
    const existing = {
      data: {
        'postgres-password': Buffer.from('kept-password').toString('base64'),
        'database-url': Buffer.from('postgres://meli_proxy:kept-password@postgres:5432/meli_proxy').toString(
          'base64',
        ),
      },
    };
    const kubectl = scripted((call) => {
      if (call.args[0] === 'get' && call.args[1] === 'secret') return { stdout: JSON.stringify(existing) };
      if (call.args.includes('--for=condition=failed')) return untilAborted(call);
      return {};
    });
    const reporter = new RecordingReporter();
    const result = await executePlan({
      run: kubectl.run,
      plan: secretPlan(),
      stageTimeoutMs: 5000,
      reporter,
      env: {},
    });
    expect(result.ok).toBe(true);
    const applied = kubectl.calls.find((call) => call.input?.includes('"kind":"Secret"'))!;
    const data = (JSON.parse(applied.input!) as { data: Record<string, string> }).data;
    expect(Buffer.from(data['postgres-password']!, 'base64').toString()).toBe('kept-password');
    expect(reporter.events).toEqual([
      'start Deploying to namespace shop',
      ...[
        'namespace',
        'config',
        'database',
        'database-ready',
        'migrate',
        'proxy',
        'monitoring',
        'ingress',
      ].flatMap((id) => [`started ${id}`, `done ${id}`]),
      'finish true',
    ]);
  });

  it('gives each wait what is left of the stage budget', async () => {
    let clock = 0;
    const kubectl = scripted((call) => {
      // Every call takes 1.5 s of the fake clock.
      clock += 1500;
      if (call.args.includes('--for=condition=failed')) return untilAborted(call);
      return {};
    });
    const result = await executePlan({
      run: kubectl.run,
      plan: secretPlan(),
      stageTimeoutMs: 10_000,
      reporter: new RecordingReporter(),
      env: {},
      now: () => clock,
    });
    expect(result.ok).toBe(true);
    const timeouts = kubectl
      .commands()
      .filter((text) => /^(rollout status statefulset|wait --for=condition=Ready)/.test(text))
      .map((text) => /--timeout=(\d+)s/.exec(text)?.[1]);
    // database-ready: the rollout wait starts with 10 s, the pods wait gets 10 - 1.5.
    expect(timeouts).toEqual(['10', '9']);
  });

  it('stops when a stage runs out of time before its next wait', async () => {
    let clock = 0;
    const kubectl = scripted(() => {
      clock += 6000;
      return {};
    });
    const reporter = new RecordingReporter();
    const result = await executePlan({
      run: kubectl.run,
      plan: secretPlan(),
      stageTimeoutMs: 5000,
      reporter,
      env: {},
      now: () => clock,
    });
    expect(result).toMatchObject({ ok: false, failedStage: 'database-ready' });
    expect(reporter.failure?.message).toBe(
      'Timed out after 5.0s waiting for pods of StatefulSet/db Ready. Raise --timeout if it is only slow.',
    );
  });
});

describe('runWait for a Job', () => {
  const wait = {
    kind: 'job' as const,
    ref: 'Job/migrate',
    objectKind: 'Job',
    name: 'migrate',
    selector: 'job-name=migrate',
  };
  const context = (run: ReturnType<typeof scripted>['run']) => ({
    run,
    namespace: 'shop',
    deadline: Date.now() + 60_000,
    stageTimeoutMs: 60_000,
    killGraceMs: 100,
    now: Date.now,
  });

  it('completes when the completion wait answers, and cancels the failure watch', async () => {
    const signals: AbortSignal[] = [];
    const kubectl = scripted((call) => {
      if (call.args.includes('--for=condition=failed')) {
        signals.push(call.signal!);
        return untilAborted(call);
      }
      return { stdout: 'condition met' };
    });
    expect(await runWait(wait, context(kubectl.run))).toEqual({ ok: true });
    expect(signals[0]!.aborted).toBe(true);
  });

  it("fails with the Job's reason when the failure watch answers first", async () => {
    const kubectl = scripted((call) => {
      if (call.args.includes('--for=condition=complete')) return untilAborted(call);
      if (call.args[0] === 'get') {
        return {
          stdout: JSON.stringify({
            status: { conditions: [{ type: 'Failed', reason: 'DeadlineExceeded' }] },
          }),
        };
      }
      return {};
    });
    expect(await runWait(wait, context(kubectl.run))).toEqual({
      ok: false,
      reason: 'failed',
      message: 'Job/migrate failed (DeadlineExceeded).',
    });
  });

  it('reports a kill by our own timeout as a timeout', async () => {
    const kubectl = scripted((call) =>
      call.args.includes('--for=condition=failed')
        ? { exitCode: 1, stderr: 'error: timed out' }
        : { exitCode: 1, timedOut: true },
    );
    const outcome = await runWait(wait, context(kubectl.run));
    expect(outcome).toMatchObject({ ok: false, reason: 'timeout' });
  });
});

describe('diagnostics', () => {
  it('keeps the events of the object, its pods and ReplicaSets, newest last, at most MAX_EVENTS', async () => {
    const items = [
      ...Array.from({ length: 20 }, (_, index) => ({
        involvedObject: { kind: 'Pod', name: 'web-5f7c-abcde' },
        reason: 'Unhealthy',
        message: `probe ${index}`,
        type: 'Warning',
        lastTimestamp: `2025-01-01T10:00:${String(index).padStart(2, '0')}Z`,
      })),
      {
        involvedObject: { kind: 'ReplicaSet', name: 'web-5f7c' },
        reason: 'FailedCreate',
        message: 'forbidden',
        lastTimestamp: '2025-01-01T10:00:30Z',
        count: 4,
      },
      {
        involvedObject: { kind: 'Pod', name: 'webhook-1' },
        reason: 'Other',
        message: 'not ours',
        lastTimestamp: '2025-01-01T10:00:40Z',
      },
      {
        involvedObject: { kind: 'ReplicaSet', name: 'webhook-1' },
        reason: 'Other',
        message: 'not ours either',
        lastTimestamp: '2025-01-01T10:00:41Z',
      },
    ];
    const kubectl = scripted(() => ({ stdout: JSON.stringify({ items }) }));
    const events = await collectEvents(
      kubectl.run,
      'shop',
      { objectKind: 'Deployment', name: 'web', selector: 'app=web' },
      ['web-5f7c-abcde'],
    );
    expect(events).toHaveLength(MAX_EVENTS);
    expect(events.at(-1)).toBe(
      '2025-01-01T10:00:30Z Normal FailedCreate ReplicaSet/web-5f7c: forbidden (x4)',
    );
    expect(events.join('\n')).not.toContain('not ours');
    expect(events[0]).toContain('probe 6');
  });

  it('a diagnostic kubectl cannot fetch says so instead of failing', async () => {
    const kubectl = scripted(() => ({
      exitCode: 1,
      stderr: 'Error from server (Forbidden): events is forbidden',
    }));
    expect(
      await collectEvents(kubectl.run, 'shop', { objectKind: 'Job', name: 'x', selector: undefined }, []),
    ).toEqual(['(events unavailable: Error from server (Forbidden): events is forbidden)']);
  });
});

describe('status health', () => {
  it('judges workloads like kubectl rollout status', () => {
    const deployment = (status: Record<string, unknown>, generation = 1) => ({
      kind: 'Deployment',
      metadata: { generation },
      spec: { replicas: 2 },
      status: { observedGeneration: 1, ...status },
    });
    expect(healthOf(deployment({ updatedReplicas: 2, availableReplicas: 2 })).health).toBe('ready');
    expect(healthOf(deployment({ updatedReplicas: 2, availableReplicas: 2 }, 2)).health).toBe('progressing');
    expect(healthOf(deployment({ updatedReplicas: 1, availableReplicas: 2 })).health).toBe('progressing');
    expect(
      healthOf(
        deployment({
          conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }],
        }),
      ).health,
    ).toBe('failed');
    expect(
      healthOf({
        kind: 'Job',
        status: { conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }] },
      }),
    ).toEqual({
      health: 'failed',
      detail: 'BackoffLimitExceeded',
    });
    expect(
      healthOf({
        kind: 'HorizontalPodAutoscaler',
        status: { conditions: [{ type: 'ScalingActive', status: 'False', reason: 'FailedGetPodsMetric' }] },
      }).health,
    ).toBe('failed');
    expect(healthOf({ kind: 'ConfigMap' }).health).toBe('present');
    expect(worst(['ready', 'present', 'missing', 'progressing'])).toBe('missing');
  });
});

describe('small helpers', () => {
  it('parseTimeout takes a duration with its unit', () => {
    expect(parseTimeout('5m')).toBe(300_000);
    expect(parseTimeout('90s')).toBe(90_000);
    expect(() => parseTimeout('300')).toThrow(/Invalid --timeout "300"/);
    expect(() => parseTimeout('0s')).toThrow(UsageError);
    expect(() => parseTimeout('2d')).toThrow(UsageError);
  });

  it("firstErrorLine prefers kubectl's message over klog lines", () => {
    expect(
      firstErrorLine({
        stderr:
          'E1127 18:06:11.249212 15401 run.go:72] "command failed"\nerror: context "x" does not exist\n',
        stdout: '',
      }),
    ).toBe('error: context "x" does not exist');
    expect(firstErrorLine({ stderr: 'E1127 18:06:11.2 run.go:72] only klog\n', stdout: '' })).toBe(
      'E1127 18:06:11.2 run.go:72] only klog',
    );
    expect(firstErrorLine({ stderr: '', stdout: '' })).toBe('no output');
  });

  it('withContext puts --context first, and nothing without one', async () => {
    const kubectl = scripted();
    await withContext(kubectl.run, 'prod')({ args: ['get', 'pods'] });
    await withContext(kubectl.run, undefined)({ args: ['get', 'pods'] });
    expect(kubectl.commands()).toEqual(['--context prod get pods', 'get pods']);
  });
});
