/**
 * What `meli-proxy serve` says when it starts: a summary and human lines for a person
 * (`--log-format pretty`, the default on a terminal), JSON lines otherwise, and a warning, without
 * unreadiness, when the upstream cannot be reached.
 */
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { prettyLine } from '../../src/log-pretty.js';
import { httpRequest } from '../support/net.js';
import { freePort } from '../support/postgres.js';
import {
  BIN,
  childEnv,
  killChildren,
  REPO_ROOT,
  serveArgs,
  spawnCli,
  tempDir,
  useOriginAndDataDir,
} from '../support/proxy.js';

const extra = tempDir();
afterAll(() => {
  killChildren();
  extra.remove();
});

/** Starts `serve` with its stdout piped and resolves with the text once `until` appears in it. */
function serveUntil(args: string[], until: RegExp): Promise<{ text: string; stop: () => void }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: REPO_ROOT,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no ${until} in:\n${text}`));
    }, 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      text += chunk;
      if (until.test(text)) {
        clearTimeout(timer);
        resolve({ text, stop: () => child.kill('SIGTERM') });
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      text += chunk;
    });
    child.once('exit', () => reject(new Error(`exited before ${until}:\n${text}`)));
  });
}

describe('serve start-up output', () => {
  const env = useOriginAndDataDir();

  it('--log-format pretty prints a summary a person reads, and log lines that are not JSON', async () => {
    const { text, stop } = await serveUntil(
      [...serveArgs(env.origin.url, env.dir), '--log-format', 'pretty'],
      /Ctrl-C stops it/,
    );
    stop();
    expect(text).toMatch(/meli-proxy \S+ is ready/);
    expect(text).toMatch(/^ {2}proxy +http:\/\/127\.0\.0\.1:\d+$/m);
    expect(text).toContain(`upstream   ${new URL(env.origin.url).origin}`);
    expect(text).toMatch(/dashboard +http:\/\/127\.0\.0\.1:\d+\/admin\/dashboard \(no sign-in/);
    expect(text).toMatch(/token +off/);
    // Under workers (the default) each worker's lines name it.
    expect(text).toMatch(/^\d\d:\d\d:\d\d INFO {2}proxy listening {2}(worker=\d+ )?url=/m);
    expect(text).not.toMatch(/^\{"level"/m);
  });

  it('writes JSON lines and no summary when output is not a terminal', async () => {
    const proxy = await spawnCli(serveArgs(env.origin.url, env.dir));
    await proxy.stop('SIGTERM');
    expect(proxy.stdout).not.toContain('is ready');
    expect(proxy.logRecords().some((record) => record.msg === 'proxy listening')).toBe(true);
  });

  it('warns once when the upstream refuses connections, and stays ready', async () => {
    const closed = await freePort();
    const proxy = await spawnCli(serveArgs(`http://127.0.0.1:${closed}`, extra.dir));
    let warning: Record<string, unknown> | undefined;
    for (let i = 0; i < 200 && !warning; i++) {
      warning = proxy
        .logRecords()
        .find((record) => String(record.msg).includes('upstream looks unreachable'));
      if (!warning) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(warning?.level).toBe('warn');
    expect(String(warning?.problem)).toContain('refused the connection');
    expect((await httpRequest(proxy.url, '/ready')).status).toBe(200);
    await proxy.stop('SIGTERM');
  });

  it('a pretty line keeps every field but the ones each line repeats', () => {
    const line = prettyLine(
      JSON.stringify({
        level: 'warn',
        time: '2026-12-06T10:11:12.000Z',
        service: 'meli-proxy',
        msg: 'hello',
        worker: 2,
        note: 'a b',
      }),
      false,
    );
    expect(line).toBe('10:11:12 WARN  hello  worker=2 note="a b"');
    expect(prettyLine('not json', false)).toBe('not json');
  });
});
