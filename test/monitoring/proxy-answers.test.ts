/**
 * The proxy's own answers (429, 405, 502 …) under `serve --workers 2` are recorded like forwarded
 * ones: their body bytes and a duration in /metrics, in the statistics and in the access log. Were
 * they recorded as 0 bytes and 0 ms, a run of refusals would drag the latency percentiles down and
 * vanish from the traffic figures.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type HttpResult, httpRequest } from '../support/net.js';
import { type CliProcess, serveArgs, spawnCli, useOriginAndDataDir } from '../support/proxy.js';

/** The value of one sample line (`name{labels} value`), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

interface StatsAnswer {
  rows: Array<{ key: string; requests: number; bytes: number; latencyMsAvg: number }>;
}

describe('proxy-made answers under serve --workers 2', () => {
  const fixture = useOriginAndDataDir();

  async function serve(): Promise<CliProcess> {
    const config = path.join(fixture.dir, 'proxy-answers.yaml');
    writeFileSync(config, 'limits:\n  - { id: items, match: { path: "/items/*" }, limit: 1/h }\n');
    return spawnCli(
      serveArgs(fixture.origin.url, fixture.dir, '--workers', '2', '--config', config, '--access-log', 'on'),
      {},
      { timeoutMs: 60_000 },
    );
  }

  it('records 429, 405 and 502 answers with their body bytes and a duration, host-wide', async () => {
    const cli = await serve();
    try {
      // Fresh connections each: the cluster deals them to both workers.
      const items: HttpResult[] = [];
      for (let i = 0; i < 4; i++) items.push(await httpRequest(cli.url, '/items/MLA1'));
      const refused = items.filter((response) => response.status === 429);
      expect(refused).toHaveLength(3);
      const traces: HttpResult[] = [];
      for (let i = 0; i < 3; i++) traces.push(await httpRequest(cli.url, '/users/7', { method: 'TRACE' }));
      expect(traces.map((response) => response.status)).toEqual([405, 405, 405]);
      const resets: HttpResult[] = [];
      for (let i = 0; i < 2; i++) resets.push(await httpRequest(cli.url, '/reset'));
      expect(resets.map((response) => response.status)).toEqual([502, 502]);
      const length = (responses: HttpResult[]) =>
        responses.reduce((sum, response) => sum + response.body.length, 0);
      expect(length(refused)).toBeGreaterThan(0);

      const metrics = (await httpRequest(cli.url, '/metrics')).body.toString();
      // Every byte a client received is counted, the 429 bodies with the forwarded one.
      expect(sample(metrics, 'meli_proxy_response_bytes_total{route="/items/:id"}')).toBe(length(items));
      expect(sample(metrics, 'meli_proxy_response_bytes_total{route="/users/:id"}')).toBe(length(traces));
      expect(sample(metrics, 'meli_proxy_response_bytes_total{route="/reset"}')).toBe(length(resets));
      // /users/:id only ever got refusals: its time is theirs alone, and it is not nothing.
      expect(sample(metrics, 'meli_proxy_request_duration_seconds_count{route="/users/:id"}')).toBe(3);
      expect(sample(metrics, 'meli_proxy_request_duration_seconds_sum{route="/users/:id"}')).toBeGreaterThan(
        0,
      );

      const stats = await httpRequest(cli.adminUrl, '/admin/stats?groupBy=status');
      expect(stats.status).toBe(200);
      const rows = stats.json<StatsAnswer>().rows;
      // Statuses are grouped as 429 and classes; here the 4xx are the 405s and the 5xx the 502s.
      const row = (key: string) => rows.find((entry) => entry.key === key);
      expect(row('429')).toMatchObject({ requests: 3, bytes: length(refused) });
      expect(row('4xx')).toMatchObject({ requests: 3, bytes: length(traces) });
      expect(row('5xx')).toMatchObject({ requests: 2, bytes: length(resets) });
      expect(row('429')!.latencyMsAvg).toBeGreaterThan(0);
      expect(row('4xx')!.latencyMsAvg).toBeGreaterThan(0);

      const logged = cli.logRecords().filter((record) => record.msg === 'request');
      for (const [status, responses] of [
        [429, refused],
        [405, traces],
        [502, resets],
      ] as const) {
        const lines = logged.filter((record) => record.status === status);
        expect(lines, `access log lines of ${status}`).toHaveLength(responses.length);
        for (const line of lines) {
          expect(line.bytes).toBe(responses[0]!.body.length);
          expect(typeof line.ms).toBe('number');
        }
      }
    } finally {
      await cli.stop();
    }
  });
});
