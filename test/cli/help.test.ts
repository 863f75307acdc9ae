/**
 * --help, --version and serve --help: exit 0 and say something useful. serve --help lists every
 * setting with its environment variable, derived from the same table as the config loader.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { SETTING_KEYS, SETTINGS } from '../../src/config.js';
import { REPO_ROOT, runCliProcess } from '../support/proxy.js';

const PACKAGE_JSON = path.join(REPO_ROOT, 'package.json');
const VERSION = (JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version;

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env: {},
    cwd: process.cwd(),
  });
  return { code, stdout, stderr };
}

describe('help and version', () => {
  it('--version and -v print the package version', async () => {
    for (const flag of ['--version', '-v']) {
      const result = await run([flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`${VERSION}\n`);
      expect(result.stderr).toBe('');
    }
  });

  it('--help describes the program and lists serve', async () => {
    const result = await run(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: meli-proxy /);
    expect(result.stdout).toContain("MercadoLibre's API");
    expect(result.stdout).toMatch(/^\s+serve \[options\]\s+Run the proxy/m);
    expect(result.stderr).toBe('');
  });

  it('serve --help lists every setting with its flag and environment variable', async () => {
    const result = await run(['serve', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: meli-proxy serve \[options\]/);
    // commander wraps long lines; compare with whitespace collapsed.
    const text = result.stdout.replace(/\s+/g, ' ');
    for (const key of SETTING_KEYS) {
      expect(text, key).toContain(`${SETTINGS[key].flag} ${SETTINGS[key].arg}`);
      expect(text, key).toContain(`(env ${SETTINGS[key].env})`);
    }
    expect(text).toContain('--config <file>');
    expect(text).toContain('Precedence: defaults < config file < environment < flags');
  });

  it('help serve is the same as serve --help', async () => {
    const viaHelp = await run(['help', 'serve']);
    const viaFlag = await run(['serve', '--help']);
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toBe(viaFlag.stdout);
  });

  it('the binary exits 0 for --version, --help and serve --help', async () => {
    const [version, help, serveHelp] = await Promise.all([
      runCliProcess(['--version']),
      runCliProcess(['--help']),
      runCliProcess(['serve', '--help']),
    ]);
    expect(version).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: meli-proxy');
    expect(serveHelp.code).toBe(0);
    expect(serveHelp.stdout).toContain('--upstream <url>');
  });
});
