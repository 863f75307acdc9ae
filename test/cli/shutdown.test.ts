/**
 * The real binary, started and stopped by signals: it logs where it listens, drains on SIGTERM
 * (readiness fails, the listener closes, in-flight requests finish within --shutdown-grace and are
 * told to close their connection), cuts what is left when the grace period ends, and exits 0.
 */
import { describe, expect, it, onTestFinished } from 'vitest';

import { httpRequest, RawConnection, rawGet } from '../support/net.js';
import { type CliProcess, serveArgs, spawnCli, useOriginAndDataDir } from '../support/proxy.js';

// Time bounds here come from the settings under test, set far apart (a long grace period against
// prompt exits, a short one against a slow origin), so a busy machine cannot blur one into the
// other; other waits only guard against hangs.
const LONG_GRACE_MS = 60_000;
const HANG_MS = 30_000;

describe('serve as a process', () => {
  const fixture = useOriginAndDataDir({ resetOrigin: true });

  async function serve(...extra: string[]): Promise<CliProcess> {
    const cli = await spawnCli(serveArgs(fixture.origin.url, fixture.dir, ...extra));
    onTestFinished(() => {
      if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
    });
    return cli;
  }

  async function adminStatus(
    cli: CliProcess,
  ): Promise<{ ready: boolean; reasons: string[]; inFlightRequests: number }> {
    return (await httpRequest(cli.adminUrl, '/admin/status')).json();
  }

  it('logs JSON lines saying where it listens, serves, and exits 0 on SIGTERM and on SIGINT', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const cli = await serve('--shutdown-grace', String(LONG_GRACE_MS));
      expect(cli.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(cli.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(cli.url).not.toBe(cli.adminUrl);
      const listening = cli.logRecords().find((line) => line.msg === 'proxy listening');
      expect(listening).toMatchObject({ level: 'info', upstream: fixture.origin.url, url: cli.url });
      expect((await httpRequest(cli.url, '/categories/MLA97994')).status).toBe(200);
      const started = performance.now();
      expect(await cli.stop(signal, LONG_GRACE_MS * 2)).toBe(0);
      // Nothing in flight: it did not wait for the grace period.
      expect(performance.now() - started).toBeLessThan(LONG_GRACE_MS / 2);
      const messages = cli.logRecords().map((line) => line.msg);
      expect(messages).toContain('draining');
      // (That 'stopped' is also the last line is checked in logs.test.ts.)
      expect(messages).toContain('stopped');
      for (const line of cli.stdout.trim().split('\n')) expect(() => JSON.parse(line), line).not.toThrow();
    }
  });

  it('drains on SIGTERM: not ready, no new connections, in-flight request finishes with 200, exit 0', async () => {
    const cli = await serve('--shutdown-grace', String(LONG_GRACE_MS));
    // An idle keep-alive connection opened before the signal.
    const idle = await RawConnection.open(cli.url);
    onTestFinished(() => idle.close());
    await idle.send(rawGet('/health', 'proxy.test'));
    expect((await idle.readResponse()).status).toBe(200);

    const inFlight = await RawConnection.open(cli.url);
    onTestFinished(() => inFlight.close());
    await inFlight.send(rawGet('/slow?ms=1500', 'proxy.test'));
    await fixture.origin.waitForRequests(1, (r) => r.url.startsWith('/slow'));

    const signalled = performance.now();
    cli.child.kill('SIGTERM');

    // Readiness turns false (seen on the admin port, which stays up while the proxy drains) …
    await expect
      .poll(async () => (await adminStatus(cli)).ready, { timeout: HANG_MS, interval: 20 })
      .toBe(false);
    const status = await adminStatus(cli);
    expect(status.reasons).toContain('draining: the server is shutting down');
    expect(status.inFlightRequests).toBe(1);
    // … the listener is closed, so new connections are refused …
    await expect(RawConnection.open(cli.url)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // … and the idle keep-alive connection is closed rather than left to receive new requests.
    expect(await idle.waitForClose(HANG_MS)).toBe(true);

    // A request pipelined behind the in-flight one is not forwarded: the client may retry it elsewhere.
    await inFlight.send(rawGet('/items/MLA1', 'proxy.test')).catch(() => undefined);
    const response = await inFlight.readResponse({ timeoutMs: HANG_MS });
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body.toString())).toEqual({ slept: 1500 });
    expect(response.headers.connection).toBe('close');
    await expect(inFlight.readResponse({ timeoutMs: HANG_MS })).rejects.toThrow(/closed/);

    const exit = await cli.exited;
    const elapsed = performance.now() - signalled;
    expect(exit).toEqual({ code: 0, signal: null });
    // It waited for the request, and exited once it was done rather than at the end of the grace.
    expect(elapsed).toBeGreaterThan(1200);
    expect(elapsed).toBeLessThan(LONG_GRACE_MS);
    expect(fixture.origin.requests.map((r) => r.url)).toEqual(['/slow?ms=1500']);
    expect(fixture.origin.requests[0]!.completed).toBe(true);
    const messages = cli.logRecords().map((line) => line.msg);
    expect(messages).not.toContain('grace period over: cutting the remaining requests');
    expect(messages).toContain('stopped');
  });

  it('cuts requests still running when --shutdown-grace ends, and still exits 0 promptly', async () => {
    const cli = await serve('--shutdown-grace', '300');
    const waiting = await RawConnection.open(cli.url);
    const streaming = await RawConnection.open(cli.url);
    onTestFinished(() => {
      waiting.close();
      streaming.close();
    });
    await waiting.send(rawGet('/slow?ms=60000', 'proxy.test'));
    await streaming.send(rawGet('/slow-body?ms=60000', 'proxy.test'));
    await fixture.origin.waitForRequests(2);

    const signalled = performance.now();
    cli.child.kill('SIGTERM');
    // Neither gets a complete response; both connections are closed, not left hanging.
    await expect(waiting.readResponse({ timeoutMs: HANG_MS })).rejects.toThrow(/closed/);
    await expect(streaming.readResponse({ timeoutMs: HANG_MS })).rejects.toThrow(/closed/);
    const cutAfter = performance.now() - signalled;
    // Cut at the end of the 300 ms grace period, long before the origin's 60 s.
    expect(cutAfter).toBeGreaterThanOrEqual(250);
    expect(cutAfter).toBeLessThan(HANG_MS);

    const exit = await cli.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(performance.now() - signalled).toBeLessThan(HANG_MS);
    // The upstream requests were given up too.
    await expect.poll(() => fixture.origin.requests.every((r) => r.aborted), { timeout: HANG_MS }).toBe(true);
    const messages = cli.logRecords().map((line) => line.msg);
    expect(messages).toContain('grace period over: cutting the remaining requests');
    expect(messages).toContain('stopped');
  });

  it('a second signal during the drain forces an immediate exit with status 1 (close-with-grace)', async () => {
    const cli = await serve('--shutdown-grace', String(LONG_GRACE_MS));
    const inFlight = await RawConnection.open(cli.url);
    onTestFinished(() => inFlight.close());
    await inFlight.send(rawGet('/slow?ms=60000', 'proxy.test'));
    await fixture.origin.waitForRequests(1);
    cli.child.kill('SIGTERM');
    await expect
      .poll(() => cli.logRecords().some((line) => line.msg === 'draining'), { timeout: HANG_MS })
      .toBe(true);
    const second = performance.now();
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toEqual({ code: 1, signal: null });
    // Immediate: neither the grace period nor the origin's 60 s.
    expect(performance.now() - second).toBeLessThan(LONG_GRACE_MS / 2);
    await expect(inFlight.readResponse({ timeoutMs: HANG_MS })).rejects.toThrow(/closed/);
  });
});
