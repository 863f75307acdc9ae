/**
 * Vitest global setup: gives the run a directory for captured logs and registered secrets
 * (test-artifacts/logs/run-…; see secrets.ts), and when every test file is done scans every
 * captured log for every secret. A secret found anywhere fails the run (exit code 1); the message
 * names the log file and the secret, never the secret's value. The logs stay for inspection; runs older than a
 * day are removed at the next start.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { scanForSecrets } from './secrets.js';

const LOGS_ROOT = fileURLToPath(new URL('../../test-artifacts/logs', import.meta.url));
const KEEP_MS = 86_400_000;

function removeOldRuns(now: number): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(LOGS_ROOT);
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!entry.startsWith('run-')) continue;
    const dir = path.join(LOGS_ROOT, entry);
    try {
      if (now - statSync(dir).mtimeMs > KEEP_MS) rmSync(dir, { recursive: true, force: true });
    } catch {
      // another run removed it
    }
  }
}

export default function setup(project: TestProject): () => void {
  const now = Date.now();
  removeOldRuns(now);
  const stamp = new Date(now).toISOString().replace(/[:.]/g, '-');
  const dir = path.join(LOGS_ROOT, `run-${stamp}-${process.pid}`);
  mkdirSync(path.join(dir, 'logs'), { recursive: true });
  project.provide('secretScanDir', dir);

  return () => {
    const { files, secrets, findings } = scanForSecrets(dir);
    if (findings.length === 0) {
      console.log(`secret scan: ${secrets} secrets, ${files} captured logs in ${dir}: none found`);
      return;
    }
    const lines = findings.map((finding) => `  ${finding.file}: ${finding.secret}`);
    // Vitest 4 only logs an error thrown here ("error during close"), exits 0 anyway, and skips the
    // teardowns after it (the shared PostgreSQL): fail the run through the exit code instead.
    process.exitCode = 1;
    console.error(
      `\nFAILED secret scan: ${findings.length} secret(s) found in captured logs under ${dir}:\n${lines.join('\n')}\n`,
    );
  };
}
