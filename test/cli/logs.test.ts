/**
 * The log as an operator sees it: the binary's stdout (and stderr). Secrets never show up in it,
 * --access-log decides whether there is one line per request, and no line is lost or reordered
 * when the process stops — even when whoever reads stdout is slow (a log shipper under load).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { httpRequest, rawGet, rawRequest } from '../support/net.js';
import { type CliProcess, serveArgs, spawnCli, useOriginAndDataDir } from '../support/proxy.js';
import { TEST_SECRETS } from '../support/secrets.js';

const { adminToken, wrongAdminToken, bearerToken, queryToken } = TEST_SECRETS;

describe('the binary log', () => {
  const fixture = useOriginAndDataDir({ resetOrigin: true });

  async function serve(...extra: string[]): Promise<CliProcess> {
    const cli = await spawnCli(
      serveArgs(fixture.origin.url, fixture.dir, ...extra),
      // A secret in the environment must not be echoed either.
      { MELI_PROXY_ADMIN_TOKEN: adminToken },
    );
    onTestFinished(() => {
      if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
    });
    return cli;
  }

  it('never writes the bearer token, query-string tokens or the admin token', async () => {
    const cli = await serve('--access-log', 'on', '--log-level', 'trace', '--upstream-timeout', '200');
    const headers = { authorization: `Bearer ${bearerToken}` };
    for (const target of [
      `/users/me?access_token=${queryToken}`,
      `/items/MLA1?access_token=${queryToken}&attributes=id`,
      `/reset?access_token=${queryToken}`,
      `/slow?ms=1000&access_token=${queryToken}`,
      `/status/401?access_token=${queryToken}`,
    ]) {
      await httpRequest(cli.url, target, { headers });
    }
    await rawRequest(
      cli.url,
      rawGet(`/health?access_token=${queryToken}`, 'proxy.test', [`Authorization: Bearer ${bearerToken}`]),
    );
    await httpRequest(cli.adminUrl, '/admin/status', {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    await httpRequest(cli.adminUrl, '/admin/status', {
      headers: { authorization: `Bearer ${wrongAdminToken}` },
    });
    expect(await cli.stop()).toBe(0);

    const everything = cli.stdout + cli.stderr;
    expect(cli.logRecords().filter((line) => line.msg === 'request')).toHaveLength(5);
    for (const secret of [bearerToken, queryToken, adminToken, wrongAdminToken]) {
      expect(everything, secret).not.toContain(secret);
    }
  });

  it('--access-log off writes no request lines, on writes one per request', async () => {
    const off = await serve('--access-log', 'off');
    for (let i = 0; i < 5; i++) await httpRequest(off.url, `/items/MLA${i}`);
    expect(await off.stop()).toBe(0);
    expect(off.logRecords().filter((line) => line.msg === 'request')).toEqual([]);

    const on = await serve();
    for (let i = 0; i < 5; i++) await httpRequest(on.url, `/items/MLA${i}`);
    await httpRequest(on.url, '/health');
    expect(await on.stop()).toBe(0);
    const lines = on.logRecords().filter((line) => line.msg === 'request');
    // Under workers (the default) the workers' lines interleave in their own order.
    expect(lines.map((line) => line.url).sort()).toEqual([
      '/items/MLA0',
      '/items/MLA1',
      '/items/MLA2',
      '/items/MLA3',
      '/items/MLA4',
    ]);
  });

  it('loses no line at shutdown while stdout is read slowly, and "stopped" is the last line', async () => {
    const cli = await serve('--access-log', 'on');
    // Stop reading the child's stdout: the pipe fills and the logger has to wait for it.
    cli.child.stdout!.pause();
    const total = 400;
    const pad = 'x'.repeat(300);
    for (let i = 0; i < total; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) => httpRequest(cli.url, `/items/MLA${i + j}?pad=${pad}`)),
      );
    }
    cli.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    cli.child.stdout!.resume();
    expect(await cli.exited).toEqual({ code: 0, signal: null });

    const lines = cli.stdout.trim().split('\n');
    for (const line of lines) expect(() => JSON.parse(line), line.slice(0, 200)).not.toThrow();
    const records = cli.logRecords();
    const seen = records
      .filter((line) => line.msg === 'request')
      .map((line) => String(line.url).replace(/\?.*/, ''));
    const missing = Array.from({ length: total }, (_, i) => `/items/MLA${i}`).filter(
      (url) => !seen.includes(url),
    );
    expect(missing, 'access lines lost at shutdown').toEqual([]);
    expect(records.at(-1)?.msg).toBe('stopped');
  });
});
