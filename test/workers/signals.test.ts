/**
 * `serve --workers 2` stopped the way a terminal or a process-group kill stops it: the signal reaches
 * the primary and every worker at once. The primary alone decides (one SIGTERM per worker), so the
 * workers' own copies must neither force an exit nor start a second drain: one Ctrl-C is a graceful
 * stop with exit code 0, and an in-flight request still completes.
 */
import { describe, expect, it } from 'vitest';
import { httpRequest } from '../support/net.js';
import { type CliProcess, childPids, serveArgs, spawnCli, useOriginAndDataDir } from '../support/proxy.js';

/** What a terminal does on Ctrl-C: the same signal to every process of the foreground group. */
function signalGroup(cli: CliProcess, signal: NodeJS.Signals): void {
  for (const pid of [cli.pid, ...childPids(cli.pid)]) process.kill(pid, signal);
}

async function untilAllWorkersReady(cli: CliProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!cli.logRecords().some((r) => r.msg === 'all workers ready')) {
    if (Date.now() > deadline) throw new Error(`workers did not start:\n${cli.stdout}\n${cli.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('serve --workers 2 and signals sent to the whole process group', () => {
  const fixture = useOriginAndDataDir();

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} to every process: one graceful drain per worker, the in-flight request completes, exit 0`, async () => {
      const cli = await spawnCli(
        serveArgs(fixture.origin.url, fixture.dir, '--workers', '2'),
        {},
        { timeoutMs: 30_000 },
      );
      await untilAllWorkersReady(cli);
      expect(childPids(cli.pid)).toHaveLength(2);

      const slow = httpRequest(cli.url, '/slow?ms=600');
      await new Promise((resolve) => setTimeout(resolve, 200));
      signalGroup(cli, signal);
      const answered = await slow;
      const { code } = await cli.exited;

      expect(answered.status).toBe(200);
      expect(code).toBe(0);
      const records = cli.logRecords();
      expect(records.filter((r) => r.msg === 'forced exit')).toEqual([]);
      const drains = records.filter((r) => r.msg === 'draining' && r.worker !== undefined);
      expect(drains.map((r) => r.worker).sort()).toEqual([1, 2]);
      expect(records.at(-1)).toMatchObject({ msg: 'stopped', exitCode: 0 });
    });
  }
});
