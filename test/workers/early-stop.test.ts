/**
 * `serve` under the default worker count stopped while its workers are still starting (Ctrl-C right
 * after launch, a rollout replacing a pod at once): a requested stop, so it exits 0 like a stop of
 * a running proxy, not 1 as if a worker had failed.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BIN, childEnv, REPO_ROOT, serveArgs, useOriginAndDataDir } from '../support/proxy.js';

describe('serve stopped while its workers start', () => {
  const fixture = useOriginAndDataDir();

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`exits 0 on ${signal} sent as soon as the primary starts the workers`, async () => {
      // Two workers whatever the machine: the case needs a cluster.
      const child = spawn(
        process.execPath,
        [BIN, ...serveArgs(fixture.origin.url, fixture.dir, '--workers', '2')],
        {
          cwd: REPO_ROOT,
          env: childEnv(),
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          stdout += chunk;
          if (stdout.includes('"msg":"starting workers"')) resolve();
        });
        void exited.then(() => reject(new Error(`exited before starting workers:\n${stdout}`)));
      });
      child.kill(signal);
      const code = await exited;
      expect(code, stdout).toBe(0);
      expect(stdout).toMatch(/"exitCode":0,"msg":"stopped"/);
    });
  }
});
