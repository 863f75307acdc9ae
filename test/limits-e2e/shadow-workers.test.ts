/**
 * Shadow rules under `serve --workers 2` count what one process would: a `3/h` shadow rule and 10
 * requests spread over both workers report exactly 7 that it would have refused, and every request
 * goes through. (Each worker used to judge a shadow counter only by its own permits, so the cluster
 * reported about 3.)
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { httpRequest } from '../support/net.js';
import { type CliProcess, childPids, spawnCli, useOriginAndDataDir } from '../support/proxy.js';
import { metric, waitFor } from './helpers.js';

describe('shadow rules with --workers 2', () => {
  const fixture = useOriginAndDataDir({ resetOrigin: true });

  async function serve(config: string): Promise<CliProcess> {
    const cli = await spawnCli(
      [
        'serve',
        '--workers',
        '2',
        '--store',
        'memory',
        '--config',
        config,
        '--upstream',
        fixture.origin.url,
        '--port',
        '0',
        '--admin-port',
        '0',
        '--access-log',
        'off',
      ],
      {},
      { timeoutMs: 30_000 },
    );
    onTestFinished(() => {
      for (const pid of childPids(cli.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
    });
    await waitFor(
      () => cli.logRecords().some((r) => r.msg === 'all workers ready'),
      20_000,
      'all workers ready',
    );
    return cli;
  }

  it.each([
    ['one after another', 1],
    ['four at a time', 4],
  ])(
    'a 3/h shadow rule over 10 requests (%s) reports 7 exceeded, as one process would',
    async (_, parallel) => {
      const config = path.join(fixture.dir, `shadow-${parallel}.yaml`);
      // A window of an hour: 10 requests cannot straddle its boundary in practice.
      writeFileSync(config, 'limits:\n  - { id: watch, limit: 3/h, mode: shadow }\n');
      const cli = await serve(config);
      // Fresh connections: the cluster hands them to the workers in turn.
      const statuses: number[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: parallel }, async () => {
          while (next < 10) {
            next++;
            statuses.push((await httpRequest(cli.url, '/items/MLA1')).status);
          }
        }),
      );
      expect(statuses).toEqual(Array(10).fill(200));
      const text = (await httpRequest(cli.url, '/metrics')).body.toString();
      expect(metric(text, 'meli_proxy_shadow_exceeded_total', 'rule="watch"')).toBe(7);
      expect(await cli.stop('SIGTERM')).toBe(0);
    },
    60_000,
  );
});
