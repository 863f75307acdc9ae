/**
 * Secret hygiene across the whole test run: the secret values tests use, and a record of every log
 * the run captured, so that one final check can prove no secret was ever written to a log.
 *
 *   TEST_SECRETS                 the admin token, client secret and bearer tokens tests should pass
 *   registerSecret(name, value)  adds a value made at run time (tokens a fake OAuth server issued)
 *   logSink(label)               a file under test-artifacts/logs/<run>/ that captured log text is
 *                                appended to (LogCapture and the CLI children of support/proxy.ts
 *                                use it); write() is cheap, the file is written on the next tick
 *   scanForSecrets(dir, extra)   what secret-scan-global.ts runs at the end: every captured log
 *                                against every registered secret; findings name the file and the
 *                                secret, never its value
 *
 * The run directory comes from the global setup (secret-scan-global.ts, `inject('secretScanDir')`).
 * Without it (a script outside vitest, or a config without that setup) nothing is recorded.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Directory of this run's captured logs and registered secrets (see secret-scan-global.ts). */
    secretScanDir: string;
  }
}

/**
 * Fixed values, recognisable in any output. Use these rather than ad-hoc strings wherever a test
 * passes a credential: the final scan then covers them in every suite's logs.
 */
export const TEST_SECRETS = {
  adminToken: 'meli-test-admin-token-5c2f9a7e1b04d8',
  /** A wrong admin token is still a secret: it is usually someone's mistyped real one. */
  wrongAdminToken: 'meli-test-wrong-admin-token-8d13e6f0',
  clientSecret: 'meli-test-client-secret-4b9e07c2a1',
  bearerToken: 'APP_USR-meli-test-bearer-6f0a2d9c3e81',
  otherBearerToken: 'APP_USR-meli-test-bearer-b7c4e2a95d10',
  refreshToken: 'TG-meli-test-refresh-e3a8c1f07b92',
  /** A token sent as a query parameter (`?access_token=`). */
  queryToken: 'meli-test-query-token-29d7b0e4f6',
} as const;

export type SecretName = keyof typeof TEST_SECRETS;

export interface SecretFinding {
  /** Log file, relative to the run directory. */
  file: string;
  /** The secret's name; its value is never reported. */
  secret: string;
}

function runDir(): string | undefined {
  try {
    return inject('secretScanDir') || undefined;
  } catch {
    return undefined;
  }
}

/** Records a secret made at run time (e.g. an access token a fake OAuth server issued). */
export function registerSecret(name: string, value: string): void {
  const dir = runDir();
  if (!dir || value.length < 8) return;
  appendFileSync(path.join(dir, `secrets-${process.pid}.jsonl`), `${JSON.stringify({ name, value })}\n`);
}

export interface LogSink {
  write(text: string): void;
  /** Writes what is buffered now (also done on the next tick and at process exit). */
  flush(): void;
}

const NO_SINK: LogSink = { write: () => undefined, flush: () => undefined };
const openSinks = new Set<LogSink>();
let sinkCount = 0;
let exitHook = false;

function currentTestFile(): string {
  try {
    const testPath = expect.getState().testPath;
    if (testPath) return path.basename(testPath).replace(/\.test\.tsx?$/, '');
  } catch {
    // outside a test
  }
  return 'unknown';
}

/** A log file for this run: `<test file>-<label>-<pid>-<n>.log`. */
export function logSink(label: string): LogSink {
  const dir = runDir();
  if (!dir) return NO_SINK;
  const logs = path.join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const name = `${currentTestFile()}-${label.replace(/[^\w.-]+/g, '_')}-${process.pid}-${++sinkCount}.log`;
  const file = path.join(logs, name);
  let buffered: string[] = [];
  let scheduled = false;
  const sink: LogSink = {
    write(text) {
      buffered.push(text);
      if (scheduled) return;
      scheduled = true;
      setImmediate(sink.flush);
    },
    flush() {
      scheduled = false;
      if (buffered.length === 0) return;
      const text = buffered.join('');
      buffered = [];
      appendFileSync(file, text);
    },
  };
  openSinks.add(sink);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const open of openSinks) open.flush();
    });
  }
  return sink;
}

/** Every secret to look for: the fixed ones plus those registered in `dir` during the run. */
export function registeredSecrets(dir: string): Map<string, string> {
  const secrets = new Map<string, string>();
  for (const [name, value] of Object.entries(TEST_SECRETS)) secrets.set(value, name);
  if (!existsSync(dir)) return secrets;
  for (const file of readdirSync(dir)) {
    if (!file.startsWith('secrets-') || !file.endsWith('.jsonl')) continue;
    for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      if (!line) continue;
      const { name, value } = JSON.parse(line) as { name: string; value: string };
      if (!secrets.has(value)) secrets.set(value, name);
    }
  }
  return secrets;
}

/** Looks for every registered secret (as written, and percent-encoded) in every captured log. */
export function scanForSecrets(dir: string): { files: number; secrets: number; findings: SecretFinding[] } {
  const secrets = registeredSecrets(dir);
  const logs = path.join(dir, 'logs');
  const files = existsSync(logs) ? readdirSync(logs).filter((file) => file.endsWith('.log')) : [];
  const findings: SecretFinding[] = [];
  for (const file of files) {
    const text = readFileSync(path.join(logs, file), 'utf8');
    for (const [value, name] of secrets) {
      const encoded = encodeURIComponent(value);
      if (text.includes(value) || (encoded !== value && text.includes(encoded))) {
        findings.push({ file: path.join('logs', file), secret: name });
      }
    }
  }
  return { files: files.length, secrets: secrets.size, findings };
}
