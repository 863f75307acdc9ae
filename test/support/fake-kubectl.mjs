#!/usr/bin/env node
/**
 * A scripted stand-in for `kubectl`, put first on PATH by test/support/fake-kubectl.ts.
 *
 * Environment:
 *   FAKE_KUBECTL_DIR   holds scenario.json (the script) and receives calls.jsonl (one line per call:
 *                      {"args": [...], "stdin": "...", "start": <ms>}, written when the call starts)
 *   FAKE_KUBECTL_REAL  the real kubectl, used for `kubectl kustomize` (rendering needs no cluster)
 *
 * scenario.json: {"rules": [{"match": ["rollout", "status", "deployment/meli-proxy"], ...}]}
 * The first rule whose every `match` token is one of the arguments (and whose `stdinIncludes`, if
 * any, is part of stdin) answers, with:
 *   stdout, stderr, exitCode (default 0)   what to print and how to exit
 *   delayMs                                 wait this long first (readiness delays)
 *   honorTimeout                            like kubectl: give up at the call's --timeout=Ns with
 *                                           "error: timed out waiting for the condition", exit 1
 *   hang                                    never answer (until killed)
 * Calls no rule matches are answered from a small cluster kept in cluster.json (see defaults
 * below): `apply` stores objects (a Deployment whose pod template changed gets a new generation,
 * and its next `rollout status` shows old replicas going), `get` and `delete` read and remove
 * them; `wait`, `rollout status` and `exec` into the proxy (its /ready) succeed;
 * `wait --for=condition=failed` behaves like a condition that never comes.
 * cluster.json: {"objects": {"<Kind>/<namespace>/<name>": {...object...}}} (namespace empty for
 * cluster-scoped objects); tests seed it with what the cluster already runs.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.FAKE_KUBECTL_DIR;
if (!dir) {
  process.stderr.write('fake kubectl: FAKE_KUBECTL_DIR is not set\n');
  process.exit(99);
}

let args = process.argv.slice(2);
// --context applies to the whole call; rules match what comes after it.
if (args[0] === '--context') args = args.slice(2);

const readsStdin = args.includes('-') && (args.includes('--filename') || args.includes('-f'));
const stdin = readsStdin ? readFileSync(0, 'utf8') : '';
appendFileSync(
  join(dir, 'calls.jsonl'),
  `${JSON.stringify({ args: process.argv.slice(2), stdin, start: Date.now() })}\n`,
);

const scenario = JSON.parse(readFileSync(join(dir, 'scenario.json'), 'utf8'));
const rule = (scenario.rules ?? []).find(
  (candidate) =>
    candidate.match.every((token) => args.includes(token)) &&
    (candidate.stdinIncludes === undefined || stdin.includes(candidate.stdinIncludes)),
);

function timeoutMs() {
  const flag = args.find((arg) => arg.startsWith('--timeout='));
  const match = flag ? /^--timeout=(\d+)s$/.exec(flag) : null;
  return match ? Number(match[1]) * 1000 : Number.POSITIVE_INFINITY;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function finish(answer) {
  if (answer.stdout) process.stdout.write(answer.stdout);
  if (answer.stderr) process.stderr.write(answer.stderr);
  process.exitCode = answer.exitCode ?? 0;
}

async function answerRule(answer) {
  if (answer.hang) {
    // Say what there is to say (a port-forward's "Forwarding from …"), then keep the event loop
    // alive until a signal ends the process.
    if (answer.stdout) process.stdout.write(answer.stdout);
    setInterval(() => undefined, 60_000);
    return;
  }
  const delay = answer.delayMs ?? 0;
  if (answer.honorTimeout && timeoutMs() <= delay) {
    await sleep(timeoutMs());
    finish({ stderr: 'error: timed out waiting for the condition\n', exitCode: 1 });
    return;
  }
  if (delay > 0) await sleep(delay);
  finish(answer);
}

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'APIService',
  'IngressClass',
  'CustomResourceDefinition',
]);
const KIND_NAMES = {
  secret: 'Secret',
  configmap: 'ConfigMap',
  configmaps: 'ConfigMap',
  ingressclass: 'IngressClass',
  apiservice: 'APIService',
  customresourcedefinition: 'CustomResourceDefinition',
  job: 'Job',
  deployment: 'Deployment',
  ingress: 'Ingress',
};
const clusterFile = join(dir, 'cluster.json');
const cluster = existsSync(clusterFile) ? JSON.parse(readFileSync(clusterFile, 'utf8')) : { objects: {} };
const saveCluster = () => writeFileSync(clusterFile, JSON.stringify(cluster));

function flagValue(name) {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
}

function keyOf(object, namespace) {
  const ns = CLUSTER_SCOPED.has(object.kind) ? '' : (object.metadata.namespace ?? namespace ?? 'default');
  return `${object.kind}/${ns}/${object.metadata.name}`;
}

// Loaded only by calls that carry manifests: every other call starts faster without it.
const { parseAllDocuments } = readsStdin ? await import('yaml') : { parseAllDocuments: () => [] };

function objectsOnStdin() {
  const text = stdin.trim();
  if (text.startsWith('{')) return [JSON.parse(text)];
  return parseAllDocuments(text)
    .map((document) => document.toJS())
    .filter(Boolean);
}

function apply() {
  const lines = [];
  for (const object of objectsOnStdin()) {
    const key = keyOf(object, flagValue('--namespace'));
    const before = cluster.objects[key];
    const stored = { ...object, metadata: { ...object.metadata }, status: before?.status ?? {} };
    // Server-side apply: a second field manager's Secret keys join the first's instead of
    // replacing them (deploy login sets one key beside those deploy owns).
    const manager = args.find((arg) => arg.startsWith('--field-manager='));
    if (before?.data && before.metadata.fieldManager !== manager) {
      stored.data = { ...before.data, ...object.data };
      stored.metadata.fieldManager = before.metadata.fieldManager;
    } else {
      stored.metadata.fieldManager = manager;
    }
    const generation = before?.metadata?.generation ?? 0;
    const templateChanged =
      JSON.stringify(before?.spec?.template ?? null) !== JSON.stringify(object.spec?.template ?? null);
    stored.metadata.generation = before && !templateChanged ? generation : generation + 1;
    // A changed pod template on an existing workload is a rollout to show.
    stored.metadata.rolling = Boolean(before && object.spec?.template && templateChanged);
    cluster.objects[key] = stored;
    lines.push(`${object.kind.toLowerCase()}/${object.metadata.name} serverside-applied`);
  }
  saveCluster();
  return { stdout: `${lines.join('\n')}\n` };
}

function remove(keys) {
  for (const key of keys) delete cluster.objects[key];
  saveCluster();
  return { stdout: keys.map((key) => `${key} deleted`).join('\n') };
}

function named(kind, name) {
  const namespace = CLUSTER_SCOPED.has(kind) ? '' : (flagValue('--namespace') ?? 'default');
  return `${kind}/${namespace}/${name}`;
}

function printOne(object) {
  if (!object) return { stdout: '' };
  if (flagValue('--output') === 'name')
    return { stdout: `${object.kind.toLowerCase()}/${object.metadata.name}\n` };
  return { stdout: JSON.stringify(object) };
}

function get() {
  if (args.includes('--filename')) {
    const items = objectsOnStdin()
      .map((object) => cluster.objects[keyOf(object, flagValue('--namespace'))])
      .filter(Boolean);
    return { stdout: items.length === 0 ? '' : JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) };
  }
  const kind = KIND_NAMES[args[1]];
  const name = args[2] && !args[2].startsWith('-') ? args[2] : undefined;
  if (kind && name) return printOne(cluster.objects[named(kind, name)]);
  if (kind) {
    const namespace = flagValue('--namespace');
    const selector = flagValue('--selector');
    const [label, value] = selector ? selector.split('=') : [];
    const items = Object.values(cluster.objects).filter(
      (object) =>
        object.kind === kind &&
        (namespace === undefined || object.metadata.namespace === namespace) &&
        (label === undefined || object.metadata.labels?.[label] === value),
    );
    return { stdout: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) };
  }
  return { stdout: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [] }) };
}

function del() {
  if (args.includes('--filename')) {
    return remove(objectsOnStdin().map((object) => keyOf(object, flagValue('--namespace'))));
  }
  const kind = KIND_NAMES[args[1]];
  const names = args
    .slice(2)
    .filter((arg, index, all) => !arg.startsWith('-') && !all[index - 1]?.startsWith('--namespace'));
  return remove(kind ? names.map((name) => named(kind, name)) : []);
}

function rolloutStatus() {
  const [kind, name] = (args[2] ?? '').split('/');
  const key = named(KIND_NAMES[kind] ?? kind, name);
  const object = cluster.objects[key];
  if (object?.metadata?.rolling) {
    object.metadata.rolling = false;
    saveCluster();
    return {
      stdout: `Waiting for ${kind} "${name}" rollout to finish: 1 old replicas are pending termination...\n${kind} "${name}" successfully rolled out\n`,
    };
  }
  return { stdout: 'successfully rolled out\n' };
}

function defaults() {
  const [verb] = args;
  if (verb === 'kustomize') {
    const real = process.env.FAKE_KUBECTL_REAL ?? '/usr/bin/kubectl';
    const result = spawnSync(real, args, { encoding: 'utf8' });
    return { stdout: result.stdout, stderr: result.stderr, exitCode: result.status ?? 1 };
  }
  if (verb === 'version') {
    const clientVersion = { gitVersion: 'v1.32.0-fake' };
    return args.includes('--client')
      ? { stdout: JSON.stringify({ clientVersion }) }
      : { stdout: JSON.stringify({ clientVersion, serverVersion: { gitVersion: 'v1.32.0-fake' } }) };
  }
  if (verb === 'config') return { stdout: 'fake-context\n' };
  if (verb === 'apply') return apply();
  if (verb === 'delete') return del();
  if (verb === 'rollout') return rolloutStatus();
  if (verb === 'exec') {
    return {
      stdout: JSON.stringify({ status: 'ready', reasons: [], dependencies: { store: { healthy: true } } }),
    };
  }
  if (verb === 'wait') {
    if (args.includes('--for=condition=failed')) return { hang: false, honorTimeout: true, delayMs: 1e9 };
    return { stdout: 'condition met\n' };
  }
  if (verb === 'get') return get();
  if (verb === 'logs') return { stdout: '' };
  return { stderr: `fake kubectl: no rule for ${args.join(' ')}\n`, exitCode: 98 };
}

await answerRule(rule ?? defaults());
