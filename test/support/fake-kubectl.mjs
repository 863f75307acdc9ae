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
 * Calls no rule matches get a plausible default answer (see defaults below): success everywhere,
 * except `wait --for=condition=failed`, which behaves like a condition that never comes.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
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
    // Keep the event loop alive until a signal ends the process.
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
  if (verb === 'apply') return { stdout: 'serverside-applied\n' };
  if (verb === 'delete') return { stdout: '' };
  if (verb === 'rollout') return { stdout: 'successfully rolled out\n' };
  if (verb === 'wait') {
    if (args.includes('--for=condition=failed')) return { hang: false, honorTimeout: true, delayMs: 1e9 };
    return { stdout: 'condition met\n' };
  }
  if (verb === 'get') {
    if (args.includes('secret')) return { stdout: '' };
    return { stdout: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [] }) };
  }
  if (verb === 'logs') return { stdout: '' };
  return { stderr: `fake kubectl: no rule for ${args.join(' ')}\n`, exitCode: 98 };
}

await answerRule(rule ?? defaults());
