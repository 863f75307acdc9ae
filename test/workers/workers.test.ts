/**
 * `serve --workers 2` as a real process tree: a node:cluster primary and two workers sharing the
 * proxy and admin ports. The primary owns the embedded store and serves it to the workers over IPC;
 * /metrics and /admin/stats/live on any worker answer for both; a rate-limit rule holds exactly
 * across the workers (permits leased from the primary, test/limits-e2e/workers-exact.test.ts); SIGTERM drains every worker and exits 0; a killed worker is
 * replaced.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { httpRequest } from '../support/net.js';
import {
  type CliProcess,
  childPids,
  type LogRecord,
  spawnCli,
  useOriginAndDataDir,
} from '../support/proxy.js';

const WORKERS = 2;

async function waitFor<T>(check: () => Promise<T | undefined> | T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Sum of the samples of a metric family in Prometheus text, optionally filtered by a label. */
function metricSum(text: string, name: string, label?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (label && !line.includes(label)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Requests on fresh connections, `parallel` at a time: the cluster hands connections out round-robin. */
async function spread(url: string, target: string, count: number, parallel = 8): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        next++;
        statuses.push((await httpRequest(url, target)).status);
      }
    }),
  );
  return statuses;
}

function workersThatLogged(records: LogRecord[], msg: string): Set<unknown> {
  return new Set(records.filter((r) => r.msg === msg && r.worker !== undefined).map((r) => r.worker));
}

describe('serve --workers 2', () => {
  const fixture = useOriginAndDataDir({ resetOrigin: true });

  async function serve(extra: string[] = [], env: Record<string, string> = {}): Promise<CliProcess> {
    const cli = await spawnCli(
      [
        'serve',
        '--workers',
        String(WORKERS),
        '--upstream',
        fixture.origin.url,
        '--port',
        '0',
        '--admin-port',
        '0',
        '--data-dir',
        fixture.dir,
        ...extra,
      ],
      env,
      { timeoutMs: 30_000 },
    );
    onTestFinished(async () => {
      for (const pid of childPids(cli.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
    });
    // Both workers listen before the primary says so; the harness returns at the first one.
    await waitFor(
      () => (cli.logRecords().some((r) => r.msg === 'all workers ready') ? true : undefined),
      'all workers ready',
    );
    return cli;
  }

  it('serves from every worker, and /metrics and /admin/stats/live on any worker count them all', async () => {
    const cli = await serve();
    expect(childPids(cli.pid)).toHaveLength(WORKERS);
    const sent = 60;
    const statuses = await spread(cli.url, '/categories/MLA97994', sent);
    expect(statuses.filter((status) => status === 200)).toHaveLength(sent);
    // The access log names the worker of each request: both took some.
    expect(workersThatLogged(cli.logRecords(), 'request')).toEqual(new Set([1, 2]));
    // Each worker says where it listens; a warning about the setup is said once, not per worker, and
    // Fastify does not repeat the listening lines.
    expect(workersThatLogged(cli.logRecords(), 'proxy listening')).toEqual(new Set([1, 2]));
    const messages = cli.logRecords().map((r) => String(r.msg));
    expect(messages.filter((msg) => msg.startsWith('no admin token set'))).toHaveLength(1);
    expect(messages.filter((msg) => msg.startsWith('Server listening'))).toEqual([]);

    // Whichever worker answers the scrape (fresh connections land on both), it reports the total.
    for (let scrape = 0; scrape < 4; scrape++) {
      const metrics = (await httpRequest(cli.url, '/metrics')).body.toString();
      expect(metricSum(metrics, 'meli_proxy_requests_total', 'status="200"')).toBe(sent);
      expect(metricSum(metrics, 'meli_proxy_request_duration_seconds_count')).toBe(sent);
      expect(metricSum(metrics, 'meli_proxy_store_healthy')).toBe(1);
      expect(metrics).toContain('meli_proxy_process_start_time_seconds');
      const live = (await httpRequest(cli.adminUrl, '/admin/stats/live')).json<{
        seconds: Array<{ requests: number }>;
        topRoutes: Array<{ key: string; requests: number }>;
      }>();
      expect(live.seconds.reduce((total, second) => total + second.requests, 0)).toBe(sent);
      expect(live.topRoutes).toEqual([{ key: '/categories/:id', requests: sent }]);
    }
    // Stored statistics: the primary's one store holds both workers' rows.
    const stats = (await httpRequest(cli.adminUrl, '/admin/stats?groupBy=route')).json<{
      totals: { requests: number };
    }>();
    expect(stats.totals.requests).toBe(sent);
    expect(await cli.stop('SIGTERM')).toBe(0);
  });

  it('holds a rule across both workers exactly (embedded store)', async () => {
    const limit = 20;
    const config = path.join(fixture.dir, 'limits.yaml');
    // A day-long window: the burst cannot straddle a window boundary in practice.
    writeFileSync(config, `limits:\n  - { id: everyone, limit: ${limit}/d }\n`);
    const cli = await serve(['--config', config, '--access-log', 'off', '--store', 'memory']);
    const statuses = await spread(cli.url, '/items/MLA1', 240, 16);
    const admitted = statuses.filter((status) => status === 200).length;
    const rejected = statuses.filter((status) => status === 429).length;
    expect(admitted + rejected).toBe(240);
    expect(admitted).toBe(limit);
    expect(fixture.origin.requests.length).toBe(admitted);
    const metrics = (await httpRequest(cli.url, '/metrics')).body.toString();
    expect(metricSum(metrics, 'meli_proxy_rate_limited_total', 'rule="everyone"')).toBe(rejected);
    expect(await cli.stop('SIGTERM')).toBe(0);
  });

  it('drains every worker on SIGTERM: the in-flight request finishes, then exit 0', async () => {
    const cli = await serve(['--shutdown-grace', '5000', '--store', 'memory']);
    const slow = httpRequest(cli.url, '/slow?ms=1500');
    await fixture.origin.waitForRequests(1, (r) => r.url.startsWith('/slow'));
    cli.child.kill('SIGTERM');
    const response = await slow;
    expect(response.status).toBe(200);
    expect(response.headers.connection).toBe('close');
    expect(await cli.exited).toEqual({ code: 0, signal: null });
    const records = cli.logRecords();
    expect(workersThatLogged(records, 'stopped')).toEqual(new Set([1, 2]));
    // The primary's own last word comes after the workers'.
    expect(records.at(-1)).toMatchObject({ msg: 'stopped', exitCode: 0 });
    expect(records.at(-1)!.worker).toBeUndefined();
  });

  it('replaces a worker that is killed, keeps serving, and its counts stay in /metrics', async () => {
    const cli = await serve(['--store', 'memory', '--access-log', 'off']);
    const before = childPids(cli.pid);
    expect(before).toHaveLength(WORKERS);
    // Traffic on both workers, then one scrape: what Prometheus has seen so far.
    expect((await spread(cli.url, '/categories/MLA97994', 40)).every((status) => status === 200)).toBe(true);
    const scraped = async () => {
      const text = (await httpRequest(cli.url, '/metrics')).body.toString();
      return {
        requests: metricSum(text, 'meli_proxy_requests_total'),
        durations: metricSum(text, 'meli_proxy_request_duration_seconds_count'),
      };
    };
    const seen = await scraped();
    expect(seen.requests).toBe(40);
    // A worker killed this early may not have flushed its own "proxy listening" line: count from here.
    const listening = () => cli.logRecords().filter((r) => r.msg === 'proxy listening').length;
    const listened = listening();
    process.kill(before[0]!, 'SIGKILL');
    await waitFor(
      () => cli.logRecords().find((r) => r.msg === 'worker exited unexpectedly: starting a new one'),
      'the restart',
    );
    const after = await waitFor(() => {
      const pids = childPids(cli.pid);
      return pids.length === WORKERS && !pids.includes(before[0]!) ? pids : undefined;
    }, 'a new worker');
    expect(after).toContain(before[1]);
    // The new worker listens (its "proxy listening" line), and every request is answered.
    await waitFor(() => (listening() > listened ? true : undefined), 'the new worker to listen');
    const statuses = await spread(cli.url, '/categories/MLA97994', 20);
    expect(statuses.every((status) => status === 200)).toBe(true);
    // The dead worker's counts are still in the sum (a drop would read as a counter reset), and the
    // 20 new requests are added once: nothing lost that was reported, nothing counted twice.
    expect(await scraped()).toEqual({ requests: 60, durations: 60 });
    expect(await cli.stop('SIGTERM')).toBe(0);
  });
});
