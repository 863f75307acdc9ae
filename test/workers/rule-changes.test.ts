/**
 * A rule changed through the admin API (`meli-proxy limits set|rm`) is in force on every worker of
 * `serve --workers 2` when the call answers: the very next requests, whichever worker takes them,
 * are limited by it. Without the host-wide reload, the worker that did not answer the admin call
 * kept its old rules until its next one-second poll and admitted a burst sent right away.
 */
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, expectExit, waitFor } from '../limits-e2e/helpers.js';
import { type Origin, startOrigin } from '../peers/origin.js';
import { type CliProcess, killChildren, serveArgs, spawnCli, tempDir } from '../support/proxy.js';

let origin: Origin;
let proxy: CliProcess;
let pool: Pool;
const data = tempDir();

beforeAll(async () => {
  origin = await startOrigin();
  proxy = await spawnCli(serveArgs(origin.url, data.dir, '--workers', '2'), {}, { timeoutMs: 30_000 });
  await waitFor(() => proxy.logRecords().some((r) => r.msg === 'all workers ready'), 30_000, 'all workers');
  // Many connections: the cluster hands them to the two workers in turn.
  pool = new Pool(proxy.url, { connections: 32, pipelining: 1 });
});

afterAll(async () => {
  await pool?.close().catch(() => undefined);
  if (proxy && proxy.child.exitCode === null) expect(await proxy.stop('SIGTERM')).toBe(0);
  killChildren();
  await origin?.close();
  data.remove();
});

async function burst(target: string, count: number): Promise<number[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const response = await pool.request({ path: target, method: 'GET' });
      await response.body.dump();
      return response.statusCode;
    }),
  );
}

const admitted = (statuses: readonly number[]) => statuses.filter((status) => status !== 429).length;

describe('rule changes under --workers 2', () => {
  it('a rule set through the admin API limits the next burst on every worker', async () => {
    // Warm both workers' connections so the burst below is spread over both.
    await burst('/categories/MLA1', 64);
    const admin = ['--admin-url', proxy.adminUrl];
    expectExit(await cli(['limits', 'set', 'fresh', '--path', '/items/*', '--limit', '1/h', ...admin]), 0);
    expect(admitted(await burst('/items/MLA1', 64))).toBe(1);

    expectExit(await cli(['limits', 'rm', 'fresh', ...admin]), 0);
    expect(admitted(await burst('/items/MLA2', 64))).toBe(64);
  });
});
