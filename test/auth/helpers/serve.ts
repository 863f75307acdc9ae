/**
 * `meli-proxy serve --inject-token` as a process, the way the account suites start it: the built
 * binary in front of the fake MercadoLibre (also its token endpoint), on free ports, with the logins
 * the suite wrote into `dataDir` (or the store its arguments name), and the admin API they query.
 */
import { expect } from 'vitest';
import type { FakeMeli } from '../../peers/oauth-server.js';
import { type CliProcess, type SpawnOptions, spawnCli } from '../../support/proxy.js';

export interface InjectingServeOptions extends SpawnOptions {
  /** More `serve` arguments: a store, --workers, --admin-token… */
  args?: string[];
  /** More environment: the token key a shared store needs… */
  env?: Record<string, string>;
}

/**
 * Starts `serve --inject-token` for `meli` with the client secret in the environment (where users
 * put it), and no access log: the account suites read what reached the origin, not the log.
 */
export function spawnInjectingServe(
  meli: FakeMeli,
  dataDir: string,
  { args = [], env = {}, ...spawnOptions }: InjectingServeOptions = {},
): Promise<CliProcess> {
  return spawnCli(
    [
      'serve',
      '--inject-token',
      ...args,
      '--upstream',
      meli.url,
      '--token-url',
      meli.tokenUrl,
      '--port',
      '0',
      '--admin-port',
      '0',
      '--data-dir',
      dataDir,
      '--access-log',
      'off',
    ],
    { MELI_CLIENT_SECRET: meli.client.secret, ...env },
    spawnOptions,
  );
}

/** GETs `target` from the admin API with `adminToken`; any answer but 200 fails with its body. */
export async function adminJson<T>(adminUrl: string, adminToken: string, target: string): Promise<T> {
  const response = await fetch(`${adminUrl}${target}`, {
    headers: { authorization: `Bearer ${adminToken}` },
  });
  expect(response.status, `${target}: ${await response.clone().text()}`).toBe(200);
  return (await response.json()) as T;
}
