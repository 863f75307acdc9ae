/**
 * `serve --workers 2` that cannot start exits with the usage code, promptly: a setting every worker
 * would refuse (an unprotected network admin API, --inject-token without its secret) is refused by
 * the primary before it forks anything (one message), and a worker that
 * cannot listen exits (its channel to the primary must not keep it alive), so the primary stops.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { killChildren, runCliProcess, serveArgs, tempDir } from '../support/proxy.js';

describe('serve --workers 2 that cannot start', () => {
  const data = tempDir();
  afterAll(() => {
    killChildren();
    data.remove();
  });

  it('refuses an admin API open to the network without a token once, before forking: exit 2', async () => {
    const result = await runCliProcess(
      serveArgs('http://127.0.0.1:9', data.dir, '--workers', '2', '--admin-host', '0.0.0.0'),
      {},
      { timeoutMs: 10_000 },
    );
    expect(result.code).toBe(2);
    expect(result.stderr.match(/Refusing to serve the admin API on 0\.0\.0\.0/g)).toHaveLength(1);
    expect(result.stdout).not.toContain('starting workers');
  });

  it('refuses --inject-token without the application secret once, before forking: exit 2', async () => {
    const result = await runCliProcess(
      serveArgs('http://127.0.0.1:9', data.dir, '--workers', '2', '--inject-token'),
      {},
      { timeoutMs: 10_000 },
    );
    expect(result.code).toBe(2);
    expect(result.stderr.match(/MELI_CLIENT_SECRET/g)).toHaveLength(1);
    expect(result.stdout).not.toContain('starting workers');
  });

  it('exits 2 when the workers cannot listen, naming the address in use', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const args = serveArgs('http://127.0.0.1:9', data.dir, '--workers', '2');
      args[args.indexOf('--port') + 1] = String(port);
      const result = await runCliProcess(args, {}, { timeoutMs: 15_000 });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`EADDRINUSE 127.0.0.1:${port}`);
      expect(result.stdout).toContain('a worker failed to start: stopping');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
