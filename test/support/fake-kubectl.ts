/**
 * Puts the scripted kubectl stand-in (fake-kubectl.mjs) on PATH for a test file: a temporary bin
 * directory with an executable `kubectl` that runs the script with this Node, and a scenario file
 * the test rewrites per case. Calls are read back from calls.jsonl.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FakeRule {
  match: string[];
  /** Only when stdin (the manifests of `apply -f -`) contains this. */
  stdinIncludes?: string;
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  delayMs?: number;
  honorTimeout?: boolean;
  hang?: boolean;
}

export interface FakeCall {
  /** As received, including a leading `--context NAME`. */
  args: string[];
  stdin: string;
  start: number;
}

export interface FakeKubectl {
  /** Directory holding the `kubectl` executable: put it first on PATH. */
  binDir: string;
  /** Environment the stand-in needs (FAKE_KUBECTL_DIR, FAKE_KUBECTL_REAL). */
  env: Record<string, string>;
  /** Replaces the scenario and forgets earlier calls. */
  script(rules: FakeRule[]): void;
  calls(): FakeCall[];
  remove(): void;
}

const SCRIPT = fileURLToPath(new URL('./fake-kubectl.mjs', import.meta.url));

/** The real kubectl for rendering, found on PATH before the stand-in shadows it. */
export function findRealKubectl(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir && existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  }
  return undefined;
}

export function createFakeKubectl(realKubectl = findRealKubectl()): FakeKubectl {
  const root = mkdtempSync(join(tmpdir(), 'meli-fake-kubectl-'));
  const binDir = join(root, 'bin');
  const stateDir = join(root, 'state');
  mkdirSync(binDir);
  mkdirSync(stateDir);
  const executable = join(binDir, 'kubectl');
  writeFileSync(executable, `#!/bin/sh\nexec "${process.execPath}" "${SCRIPT}" "$@"\n`);
  chmodSync(executable, 0o755);
  const callsFile = join(stateDir, 'calls.jsonl');
  const fake: FakeKubectl = {
    binDir,
    env: { FAKE_KUBECTL_DIR: stateDir, ...(realKubectl ? { FAKE_KUBECTL_REAL: realKubectl } : {}) },
    script(rules) {
      writeFileSync(join(stateDir, 'scenario.json'), JSON.stringify({ rules }));
      writeFileSync(callsFile, '');
    },
    calls() {
      if (!existsSync(callsFile)) return [];
      return readFileSync(callsFile, 'utf8')
        .split('\n')
        .filter((line) => line.length > 0)
        .map((line) => JSON.parse(line) as FakeCall);
    },
    remove() {
      rmSync(root, { recursive: true, force: true });
    },
  };
  fake.script([]);
  return fake;
}
