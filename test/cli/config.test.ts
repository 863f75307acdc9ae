/**
 * Configuration from the user's side: every invalid value — from a flag, an environment variable
 * or a config file — stops `serve` with exit status 2 and a message that names the setting, the
 * value (unless it is a secret) and what is allowed. Precedence is defaults < file < env < flags.
 *
 * Most cases run `runCli` in this process with injected I/O (no server starts: validation fails
 * first); a few run the real binary to check that the exit status reaches the shell.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { loadConfig } from '../../src/config.js';
import { type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest } from '../support/net.js';
import { killChildren, runCliProcess, spawnCli, tempDir } from '../support/proxy.js';

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI in this process: one serving process, since a cluster primary would fork the test runner. */
async function run(argv: string[], env: Record<string, string> = {}, cwd = process.cwd()): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env: { MELI_PROXY_WORKERS: '1', ...env },
    cwd,
  });
  return { code, stdout, stderr };
}

const files = tempDir('meli-proxy-config-');
afterAll(() => {
  killChildren();
  files.remove();
});

function file(name: string, content: string): string {
  const full = path.join(files.dir, name);
  writeFileSync(full, content);
  return full;
}

/** serve with everything valid except what the case adds; validation fails before anything starts. */
const serve = (...args: string[]) => [
  'serve',
  '--store',
  'memory',
  '--data-dir',
  files.dir,
  '--port',
  '0',
  '--admin-port',
  '0',
  ...args,
];

describe('invalid values stop serve with exit 2 and say what is wrong', () => {
  const flagCases: Array<{ args: string[]; setting: string; value: string; allowed: RegExp }> = [
    { args: ['--port', '70000'], setting: '--port', value: '"70000"', allowed: /integer from 0 to 65535/ },
    { args: ['--port', '80a'], setting: '--port', value: '"80a"', allowed: /integer from 0 to 65535/ },
    {
      args: ['--upstream', 'ftp://api.mercadolibre.com'],
      setting: '--upstream',
      value: '"ftp://api.mercadolibre.com"',
      allowed: /http:\/\/ or https:\/\//i,
    },
    {
      args: ['--upstream', 'https://api.mercadolibre.com/v2'],
      setting: '--upstream',
      value: '"https://api.mercadolibre.com/v2"',
      allowed: /without path/,
    },
    { args: ['--upstream-timeout', '5x'], setting: '--upstream-timeout', value: '"5x"', allowed: /duration/ },
    { args: ['--access-log', 'maybe'], setting: '--access-log', value: '"maybe"', allowed: /on or off/ },
    {
      args: ['--trust-proxy', '10.0.0.0/33'],
      setting: '--trust-proxy',
      value: '"10.0.0.0/33"',
      allowed: /CIDR/,
    },
    // Passes a CIDR-shaped regex, and crashed the server's own parser with exit 1.
    { args: ['--trust-proxy', ':::::'], setting: '--trust-proxy', value: '":::::"', allowed: /CIDR/ },
    {
      args: ['--trust-proxy', '10.1.2.3/8'],
      setting: '--trust-proxy',
      value: '"10.1.2.3/8"',
      allowed: /did you mean 10\.0\.0\.0\/8/,
    },
    {
      args: ['--log-level', 'loud'],
      setting: '--log-level',
      value: '"loud"',
      allowed: /fatal, error, warn, info, debug, trace, silent/,
    },
    {
      args: ['--shutdown-grace', '2d'],
      setting: '--shutdown-grace',
      value: '"2d"',
      allowed: /duration from 0 to 1h/,
    },
    {
      args: ['--upstream-connections', '0'],
      setting: '--upstream-connections',
      value: '"0"',
      allowed: /integer from 1/,
    },
  ];
  for (const { args, setting, value, allowed } of flagCases) {
    it(`flag ${args.join(' ')}`, async () => {
      const result = await run(serve(...args));
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(setting);
      expect(result.stderr).toContain(value);
      expect(result.stderr).toContain(`flag ${setting}`);
      expect(result.stderr).toMatch(allowed);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    });
  }

  const envCases: Array<{ env: Record<string, string>; setting: string; value: string; allowed: RegExp }> = [
    { env: { MELI_PROXY_PORT: 'abc' }, setting: '--port', value: '"abc"', allowed: /integer/ },
    {
      env: { MELI_PROXY_UPSTREAM: 'api.mercadolibre.com' },
      setting: '--upstream',
      value: '"api.mercadolibre.com"',
      allowed: /http/,
    },
    {
      env: { MELI_PROXY_ACCESS_LOG: 'sometimes' },
      setting: '--access-log',
      value: '"sometimes"',
      allowed: /on or off/,
    },
    {
      env: { MELI_PROXY_SHUTDOWN_GRACE: '-5' },
      setting: '--shutdown-grace',
      value: '"-5"',
      allowed: /duration/,
    },
  ];
  for (const { env, setting, value, allowed } of envCases) {
    const [name] = Object.keys(env);
    it(`environment ${name}=${env[name!]}`, async () => {
      const result = await run(serve(), env);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(setting);
      expect(result.stderr).toContain(value);
      expect(result.stderr).toContain(`environment variable ${name}`);
      expect(result.stderr).toMatch(allowed);
    });
  }

  it('hides the value of a secret setting (admin token, store URL with a password)', async () => {
    const token = await run(serve('--admin-token', 'tiny-secret'));
    expect(token.code).toBe(2);
    expect(token.stderr).toContain('--admin-token');
    expect(token.stderr).toContain('(hidden)');
    expect(token.stderr).toMatch(/at least 16 characters/);
    expect(token.stderr).not.toContain('tiny-secret');

    const store = await run(['serve', '--store', 'mysql://root:hunter2@db.internal/meli'], {});
    expect(store.code).toBe(2);
    expect(store.stderr).toContain('--store');
    expect(store.stderr).toMatch(/postgres:\/\//);
    expect(store.stderr).not.toContain('hunter2');
  });

  it('YAML file with a bad value names the file, the setting, the value and the allowed form', async () => {
    const config = file('bad-port.yaml', 'upstream: https://api.mercadolibre.com\nport: 99999\n');
    const result = await run(['serve', '--store', 'memory', '--data-dir', files.dir, '--config', config]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--port');
    expect(result.stderr).toContain('99999');
    expect(result.stderr).toContain(`config file ${config}`);
    expect(result.stderr).toMatch(/integer from 0 to 65535/);
  });

  it('JSON file with a bad value', async () => {
    const config = file('bad-timeout.json', JSON.stringify({ upstreamTimeout: 'soon' }));
    const result = await run(serve('--config', config));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--upstream-timeout');
    expect(result.stderr).toContain('"soon"');
    expect(result.stderr).toContain(config);
  });

  it('file with an unknown key names the key and lists the known ones', async () => {
    const config = file('typo.yaml', 'prot: 8080\n');
    const result = await run(serve('--config', config));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown setting "prot"');
    expect(result.stderr).toContain('port');
    expect(result.stderr).toContain('upstreamTimeout');
  });

  it('malformed YAML and JSON files', async () => {
    const yaml = await run(serve('--config', file('broken.yaml', 'port: [8080\nupstream: x\n')));
    expect(yaml.code).toBe(2);
    expect(yaml.stderr).toMatch(/broken\.yaml is not valid YAML/);
    const json = await run(serve('--config', file('broken.json', '{"port": 8080,}')));
    expect(json.code).toBe(2);
    expect(json.stderr).toMatch(/broken\.json is not valid JSON/);
  });

  it('a file that is not a mapping, a missing file, limits that are not a list', async () => {
    const list = await run(serve('--config', file('list.yaml', '- port\n- 8080\n')));
    expect(list.code).toBe(2);
    expect(list.stderr).toMatch(/must hold a mapping/);

    const missing = path.join(files.dir, 'nope.yaml');
    const absent = await run(serve('--config', missing));
    expect(absent.code).toBe(2);
    expect(absent.stderr).toContain(missing);
    expect(absent.stderr).toContain('ENOENT');

    const limits = await run(serve('--config', file('limits.yaml', 'limits: 1000/min\n')));
    expect(limits.code).toBe(2);
    expect(limits.stderr).toMatch(/"limits" must be a list/);
  });

  it('a config file named by MELI_PROXY_CONFIG is read too', async () => {
    const config = file('env-named.yaml', 'accessLog: perhaps\n');
    const result = await run(serve(), { MELI_PROXY_CONFIG: config });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--access-log');
    expect(result.stderr).toContain('"perhaps"');
  });

  it('a relative config path is resolved against the working directory', async () => {
    file('relative.yaml', 'logLevel: chatty\n');
    const result = await run(serve('--config', 'relative.yaml'), {}, files.dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(path.join(files.dir, 'relative.yaml'));
    expect(result.stderr).toContain('"chatty"');
  });

  it('refuses a non-loopback admin address without an admin token', async () => {
    const result = await run(serve('--upstream', 'http://127.0.0.1:9', '--admin-host', '0.0.0.0'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('0.0.0.0');
    expect(result.stderr).toMatch(/MELI_PROXY_ADMIN_TOKEN|--admin-token/);
  });

  it('unknown options and commands are usage errors', async () => {
    const option = await run(serve('--prot', '8080'));
    expect(option.code).toBe(2);
    expect(option.stderr).toMatch(/unknown option '--prot'/);
    const command = await run(['serv']);
    expect(command.code).toBe(2);
    expect(command.stderr).toMatch(/unknown command 'serv'/);
    const missing = await run(['serve', '--port']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--port <port>.*argument missing/);
  });
});

describe.concurrent('the exit status reaches the shell (real binary)', () => {
  it('bad flag → exit 2 with the message on stderr and nothing on stdout', async () => {
    const result = await runCliProcess(serve('--port', '70000'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'Invalid --port "70000" (from flag --port): expected an integer from 0 to 65535.',
    );
    expect(result.stdout).toBe('');
  });

  it('bad environment variable → exit 2', async () => {
    const result = await runCliProcess(serve(), { MELI_PROXY_UPSTREAM_TIMEOUT: 'forever' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('MELI_PROXY_UPSTREAM_TIMEOUT');
    expect(result.stderr).toContain('"forever"');
  });

  it('malformed config file → exit 2', async () => {
    const result = await runCliProcess(serve('--config', file('bin-broken.json', '{')));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/bin-broken\.json is not valid JSON/);
  });

  it('serve --workers 2 refuses a bad rule from --config or the environment before forking', async () => {
    const config = file(
      'bad-rule.yaml',
      'limits:\n  - { id: wide, match: { ip: 10.0.0.0/33 }, limit: 1/m }\n',
    );
    const fromFile = await runCliProcess(
      serve('--config', config, '--workers', '2'),
      {},
      { timeoutMs: 60_000 },
    );
    expect(fromFile.code).toBe(2);
    expect(fromFile.stderr).toContain(`${config} limits[0]: rule "wide": invalid match.ip "10.0.0.0/33"`);
    // One message from the primary; no worker was started to fail on its own.
    expect(fromFile.stderr).not.toMatch(/worker/);
    const fromEnv = await runCliProcess(
      serve('--workers', '2'),
      { MELI_PROXY_LIMIT_PER_IP: 'lots' },
      { timeoutMs: 60_000 },
    );
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toContain('MELI_PROXY_LIMIT_PER_IP');
    expect(fromEnv.stderr).not.toMatch(/worker/);
  });

  it('bare meli-proxy (no command) shows the help and exits 2; help asked for exits 0', async () => {
    const bare = await runCliProcess([]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('Usage: meli-proxy');
    const group = await runCliProcess(['limits']);
    expect(group.code).toBe(2);
    expect(group.stderr).toContain('Usage: meli-proxy limits');
    expect((await runCliProcess(['help'])).code).toBe(0);
  });

  it('a port already in use → exit 2 naming the setting to change', async () => {
    const origin = await startOrigin();
    try {
      const result = await runCliProcess([
        'serve',
        '--store',
        'memory',
        '--data-dir',
        files.dir,
        '--upstream',
        origin.url,
        '--port',
        String(origin.port),
        '--admin-port',
        '0',
      ]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/EADDRINUSE/);
      expect(result.stderr).toMatch(/--port/);
    } finally {
      await origin.close();
    }
  });
});

describe('precedence: defaults < file < environment < flags', () => {
  it('loadConfig takes each setting from the strongest source that has it', () => {
    const config = file(
      'precedence.yaml',
      'port: 1111\nupstreamTimeout: 5s\nlogLevel: warn\naccessLog: off\n',
    );
    const defaults = loadConfig({ env: {}, flags: {} });
    expect(defaults.port).toBe(8080);
    expect(defaults.upstream.origin).toBe('https://api.mercadolibre.com');
    expect(defaults.upstreamTimeout).toBe(30_000);
    expect(defaults.accessLog).toBe(true);

    const fromFile = loadConfig({ file: config, env: {}, flags: {} });
    expect([fromFile.port, fromFile.upstreamTimeout, fromFile.logLevel, fromFile.accessLog]).toEqual([
      1111,
      5000,
      'warn',
      false,
    ]);
    expect(fromFile.upstream.origin).toBe('https://api.mercadolibre.com');

    const fromEnv = loadConfig({
      file: config,
      env: { MELI_PROXY_PORT: '2222', MELI_PROXY_LOG_LEVEL: 'debug' },
      flags: {},
    });
    expect([fromEnv.port, fromEnv.upstreamTimeout, fromEnv.logLevel, fromEnv.accessLog]).toEqual([
      2222,
      5000,
      'debug',
      false,
    ]);

    const fromFlags = loadConfig({
      file: config,
      env: { MELI_PROXY_PORT: '2222', MELI_PROXY_LOG_LEVEL: 'debug' },
      flags: { port: '3333' },
    });
    expect([fromFlags.port, fromFlags.upstreamTimeout, fromFlags.logLevel, fromFlags.accessLog]).toEqual([
      3333,
      5000,
      'debug',
      false,
    ]);
    expect(fromFlags.sources.port).toBe('flag --port');
    expect(fromFlags.sources.logLevel).toBe('environment variable MELI_PROXY_LOG_LEVEL');
    expect(fromFlags.sources.upstreamTimeout).toBe(`config file ${config}`);
  });

  it('an empty environment variable counts as unset', () => {
    const config = loadConfig({ env: { MELI_PROXY_PORT: '' }, flags: {} });
    expect(config.port).toBe(8080);
  });

  describe('in the running binary', () => {
    let a: Origin;
    let b: Origin;
    let c: Origin;
    beforeAll(async () => {
      [a, b, c] = await Promise.all([startOrigin(), startOrigin(), startOrigin()]);
    });
    afterAll(async () => {
      killChildren();
      await Promise.all([a?.close(), b?.close(), c?.close()]);
    });

    it('file < environment < flag for the upstream; the file still sets what nobody overrides', async () => {
      const config = file(
        'live.yaml',
        `upstream: ${a.url}\naccessLog: off\nstore: memory\ndataDir: ${files.dir}\nport: 0\nadminPort: 0\n`,
      );
      const envOnly = await spawnCli(['serve', '--config', config], { MELI_PROXY_UPSTREAM: b.url });
      try {
        expect((await httpRequest(envOnly.url, '/items/MLA1')).status).toBe(200);
        expect([a.requests.length, b.requests.length, c.requests.length]).toEqual([0, 1, 0]);
        expect(await envOnly.stop()).toBe(0);
        // accessLog: off came from the file.
        expect(envOnly.logRecords().filter((line) => line.msg === 'request')).toEqual([]);
      } finally {
        await envOnly.stop('SIGKILL').catch(() => undefined);
      }

      const withFlag = await spawnCli(['serve', '--config', config, '--upstream', c.url], {
        MELI_PROXY_UPSTREAM: b.url,
        MELI_PROXY_ACCESS_LOG: 'on',
      });
      try {
        expect((await httpRequest(withFlag.url, '/items/MLA2')).status).toBe(200);
        expect([a.requests.length, b.requests.length, c.requests.length]).toEqual([0, 1, 1]);
        expect(await withFlag.stop()).toBe(0);
        // accessLog: on from the environment beat the file's off.
        expect(withFlag.logRecords().filter((line) => line.msg === 'request')).toHaveLength(1);
      } finally {
        await withFlag.stop('SIGKILL').catch(() => undefined);
      }
    });
  });
});
