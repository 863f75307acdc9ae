/**
 * The README's "Try it locally" walkthrough, run as written: every ```sh block after a
 * `<!-- walkthrough -->` marker, in one bash, with `meli-proxy` on PATH (as `npm link` puts it) and
 * the default worker count. Only the well-known ports and the data directory are swapped for free
 * ones, so the run cannot collide with anything else on the machine.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/postgres.js';
import { BIN, childEnv, REPO_ROOT, tempDir } from '../support/proxy.js';
import { logSink } from '../support/secrets.js';

/** The commands of the walkthrough, in order, as the README shows them. */
function walkthroughBlocks(readme: string): string[] {
  const blocks: string[] = [];
  const marker = /<!-- walkthrough -->\s*```sh\n([\s\S]*?)```/g;
  for (let match = marker.exec(readme); match; match = marker.exec(readme)) blocks.push(match[1] ?? '');
  return blocks;
}

/**
 * The limit is per aligned minute with a sliding estimate: in a new minute the previous one's count
 * weighs a little less, so a burst that straddles the turn of the minute is admitted one request more
 * (docs/rate-limiting.md). A person sees that rarely; a suite run on a loaded machine would now and
 * then. So the block that exceeds the limit starts with at least 15 s left in its minute.
 */
const AWAY_FROM_THE_MINUTE_TURN = 's=$((10#$(date +%S))); if ((s >= 45)); then sleep $((61 - s)); fi';

const work = tempDir('meli-proxy-walkthrough-');
afterAll(() => work.remove());

describe('README walkthrough', () => {
  it('runs as written and shows a 429 for one client while the other is served', async () => {
    const blocks = walkthroughBlocks(readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8'));
    const burst = blocks.findIndex((block) => block.includes('MLA[1-12]'));
    expect(burst, 'the block that exceeds the limit').toBeGreaterThan(0);
    const script = blocks
      .map((block, index) => (index === burst ? `${AWAY_FROM_THE_MINUTE_TURN}\n${block}` : block))
      .join('\n');
    expect(script).toContain('meli-proxy serve');
    expect(script).toContain('meli-proxy limits set');

    const [proxyPort, adminPort, originPort] = [await freePort(), await freePort(), await freePort()];
    const ported = script
      .replaceAll('127.0.0.1:8080', `127.0.0.1:${proxyPort}`)
      .replaceAll('127.0.0.1:8081', `127.0.0.1:${adminPort}`)
      .replaceAll('127.0.0.1:9090', `127.0.0.1:${originPort}`)
      .replaceAll('--port 9090', `--port ${originPort}`);

    const bin = path.join(work.dir, 'bin');
    const shim = path.join(bin, 'meli-proxy');
    mkdirSync(bin, { recursive: true });
    writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
    chmodSync(shim, 0o755);

    const env = childEnv({
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      MELI_PROXY_PORT: String(proxyPort),
      MELI_PROXY_ADMIN_PORT: String(adminPort),
      MELI_PROXY_ADMIN_URL: `http://127.0.0.1:${adminPort}`,
      MELI_PROXY_DATA_DIR: path.join(work.dir, 'data'),
    });
    // What users run: the default worker count, not the suite's one-process default.
    delete env.MELI_PROXY_WORKERS;

    const sink = logSink('walkthrough');
    const child = spawn('bash', ['-c', `set -euo pipefail\n${ported}`], {
      cwd: work.dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
      sink.write(String(chunk));
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
      sink.write(String(chunk));
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the walkthrough stopped everything it started
    }
    sink.flush();

    expect(code, `walkthrough failed.\nstdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0);
    // The limited client: ten items a minute, then refusals; the other client is served.
    expect(stdout).toMatch(/^(200 ){10}429 429 $/m);
    expect(stdout).toMatch(/^200$/m);
    expect(stdout).toMatch(/^HTTP\/1\.1 429/m);
    expect(stdout).toMatch(/^retry-after: \d+/im);
    expect(stdout).toMatch(/^ratelimit: "ip-items";r=0;t=\d+/im);
    // limits list, stats and top saw the same traffic.
    expect(stdout).toMatch(/ip-items .* 10\/1m/);
    expect(stdout).toMatch(/152\.152\.152\.152\s+\d+/);
    expect(stdout).toContain('meli-proxy top');
    expect(stdout).toMatch(/dashboard: 200/);
  }, 120_000);
});
