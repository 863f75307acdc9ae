/**
 * CONNECT is refused, and no way of sending it may hurt the proxy: the refused socket is always
 * closed and released, and a client that resets it cannot crash the process. Runs the real CLI as a
 * child process because a failure here takes the whole process down (or keeps it from exiting).
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { httpRequest, RawConnection, rawGet } from '../support/net.js';
import { type CliProcess, serveArgs, spawnCli, useOriginAndDataDir } from '../support/proxy.js';

describe('CONNECT against the running binary', () => {
  const fixture = useOriginAndDataDir();

  const serve = (extra: string[] = []): Promise<CliProcess> =>
    spawnCli(serveArgs(fixture.origin.url, fixture.dir, '--access-log', 'off', ...extra));

  it('survives clients that send CONNECT and reset the connection at once', async () => {
    const cli = await serve();
    const port = Number(new URL(cli.url).port);
    await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<void>((resolve) => {
            const socket = connect(port, '127.0.0.1', () => {
              socket.write(
                `CONNECT ${fixture.origin.host} HTTP/1.1\r\nHost: ${fixture.origin.host}\r\n\r\n`,
                () => {
                  socket.resetAndDestroy();
                  resolve();
                },
              );
            });
            socket.on('error', () => resolve());
          }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(cli.child.exitCode, `the proxy exited:\n${cli.stdout}`).toBeNull();
    expect((await httpRequest(cli.url, '/items/MLA1')).status).toBe(200);
    expect(cli.stdout).not.toContain('uncaught error');
    expect(await cli.stop('SIGTERM')).toBe(0);
  });

  it('releases a refused CONNECT socket that kept sending, so SIGTERM still exits promptly with 0', async () => {
    // A grace period far longer than a prompt exit takes, however busy the machine.
    const cli = await serve(['--shutdown-grace', '30000']);
    const connection = await RawConnection.open(cli.url);
    await connection.send(`CONNECT ${fixture.origin.host} HTTP/1.1\r\nHost: ${fixture.origin.host}\r\n\r\n`);
    expect((await connection.readResponse()).status).toBe(405);
    // A client that does not wait for the answer before it talks on (a TLS hello, another request).
    await connection.send(rawGet('/items/MLA1', fixture.origin.host)).catch(() => undefined);
    await connection.waitForClose(10_000);
    connection.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    // Without the fix the drain waits for that socket until the forced exit (grace + 5 s, code 1).
    const code = await cli.stop('SIGTERM', 60_000);
    const ms = performance.now() - started;
    expect(code, `exit code after ${Math.round(ms)} ms`).toBe(0);
    expect(ms).toBeLessThan(30_000);
    expect(fixture.origin.requests.filter((r) => r.method === 'CONNECT')).toEqual([]);
  });
});
