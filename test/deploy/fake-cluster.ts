/**
 * The set-up the deploy suites share: the kubectl stand-in first on PATH for the suite, its script
 * cleared before each test, PATH and the environment restored after; the credentials deploy reads
 * from the environment (test values); the kubectl command of a recorded call.
 *
 *   const cluster = kubectlStandInForSuite();   // read cluster.fake in tests and hooks
 */
import { delimiter } from 'node:path';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { createFakeKubectl, type FakeCall, type FakeKubectl } from '../support/fake-kubectl.js';

export const DEPLOY_ADMIN_TOKEN = 'admin-token-0123456789abcdef';
export const DEPLOY_CLIENT_SECRET = 'client-secret-value-xyz-42';
/** What `deploy` needs in its environment to build the Secret. */
export const DEPLOY_ENV = {
  MELI_PROXY_ADMIN_TOKEN: DEPLOY_ADMIN_TOKEN,
  MELI_CLIENT_SECRET: DEPLOY_CLIENT_SECRET,
  MELI_CLIENT_ID: '12345',
};

/** The arguments of a kubectl call after `--context NAME`, joined. */
export function kubectlCommand(call: FakeCall): string {
  const args = call.args[0] === '--context' ? call.args.slice(2) : call.args;
  return args.join(' ');
}

export function kubectlStandInForSuite(): { readonly fake: FakeKubectl } {
  let fake: FakeKubectl | undefined;
  const savedEnv = { ...process.env };
  beforeAll(() => {
    fake = createFakeKubectl();
    process.env.PATH = `${fake.binDir}${delimiter}${process.env.PATH ?? ''}`;
    Object.assign(process.env, fake.env);
  });
  afterAll(() => {
    process.env = { ...savedEnv };
    fake?.remove();
  });
  beforeEach(() => fake?.script([]));
  return {
    get fake() {
      if (!fake) throw new Error('the kubectl stand-in is created in beforeAll; it is not there yet');
      return fake;
    },
  };
}
