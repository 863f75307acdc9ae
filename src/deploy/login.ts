/**
 * `meli-proxy deploy login`: the browser login of `meli-proxy auth login`, storing the token in the
 * cluster's database, then token injection switched on for the deployed proxy.
 *
 *   1. read the deploy-time Secret: database URL, token encryption key, application credentials;
 *   2. with the in-cluster PostgreSQL, `kubectl port-forward svc/postgres` to a free local port and
 *      point the URL there (an external database is reached directly);
 *   3. run `meli-proxy auth login` against that store, in this terminal (browser, callback, …);
 *   4. set `inject-token: on` in the Secret (its own field manager: the other keys stay `deploy`'s)
 *      and restart the proxy so it starts injecting. Later deploys keep the key.
 */
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { RuntimeFailure, UsageError } from '../errors.js';
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { readExistingSecret, SECRET_NAME } from './secrets.js';

export interface PortForward {
  localPort: number;
  close(): Promise<void>;
}

export interface LoginDeps {
  /** Already carries --context. */
  run: RunKubectl;
  /** `kubectl port-forward svc/<service> :<port>`, resolved once kubectl says where it listens. */
  portForward(namespace: string, service: string, port: number): Promise<PortForward>;
  /** Runs `meli-proxy auth login` with this environment; resolves with its exit code. */
  authLogin(env: NodeJS.ProcessEnv): Promise<number>;
  say(line: string): void;
}

const IN_CLUSTER_HOST = 'postgres';
const LOGIN_FIELD_MANAGER = 'meli-proxy-login';

/** The kubectl-backed port-forward; `context` as for every other kubectl call. */
export function kubectlPortForward(context: string | undefined, timeoutMs = 30_000) {
  return async (namespace: string, service: string, port: number): Promise<PortForward> => {
    const child = execa(
      'kubectl',
      [
        ...(context ? ['--context', context] : []),
        'port-forward',
        `svc/${service}`,
        `:${port}`,
        '--namespace',
        namespace,
      ],
      { reject: false, stdin: 'ignore', buffer: false },
    );
    const close = async (): Promise<void> => {
      child.kill();
      await child.catch(() => undefined);
    };
    const localPort = await new Promise<number>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(
        () =>
          reject(
            new RuntimeFailure(
              `kubectl port-forward svc/${service} gave no port within ${timeoutMs / 1000}s.`,
            ),
          ),
        timeoutMs,
      );
      child.stdout?.on('data', (chunk: Buffer) => {
        seen += chunk.toString('utf8');
        const match = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(seen);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      child.then((result) => {
        clearTimeout(timer);
        reject(
          new RuntimeFailure(
            `kubectl port-forward svc/${service} stopped: ${firstErrorLine({ stderr: String(result.stderr ?? ''), stdout: '' })}`,
          ),
        );
      }, reject);
    }).catch(async (error: unknown) => {
      await close();
      throw error;
    });
    return { localPort, close };
  };
}

/** Runs this package's own CLI: `meli-proxy auth login`, attached to this terminal. */
export async function spawnAuthLogin(env: NodeJS.ProcessEnv, args: readonly string[] = []): Promise<number> {
  const bin = fileURLToPath(new URL('../../bin/meli-proxy.js', import.meta.url));
  const result = await execa(process.execPath, [bin, 'auth', 'login', ...args], {
    env,
    stdio: 'inherit',
    reject: false,
  });
  return typeof result.exitCode === 'number' ? result.exitCode : 1;
}

export async function clusterLogin(
  namespace: string,
  env: NodeJS.ProcessEnv,
  deps: LoginDeps,
): Promise<void> {
  const secret = await readExistingSecret(deps.run, namespace);
  if (!secret) {
    throw new UsageError(`No Secret ${namespace}/${SECRET_NAME}: run \`meli-proxy deploy\` first.`);
  }
  const missing = ['database-url', 'client-id', 'client-secret'].filter((key) => !secret[key]);
  if (missing.length > 0) {
    throw new UsageError(
      `Secret ${SECRET_NAME} has no ${missing.join(', ')}: deploy again with MELI_CLIENT_ID and MELI_CLIENT_SECRET set.`,
    );
  }
  const url = new URL(secret['database-url']!);
  let forward: PortForward | undefined;
  if (url.hostname === IN_CLUSTER_HOST) {
    forward = await deps.portForward(namespace, IN_CLUSTER_HOST, Number(url.port || 5432));
    url.hostname = '127.0.0.1';
    url.port = String(forward.localPort);
    deps.say(
      `Reaching the cluster's PostgreSQL through kubectl port-forward on 127.0.0.1:${forward.localPort}.`,
    );
  }
  let code: number;
  try {
    code = await deps.authLogin({
      ...env,
      MELI_PROXY_STORE: url.toString(),
      MELI_CLIENT_ID: secret['client-id'],
      MELI_CLIENT_SECRET: secret['client-secret'],
      ...(secret['token-key'] ? { MELI_PROXY_TOKEN_KEY: secret['token-key'] } : {}),
    });
  } finally {
    await forward?.close();
  }
  if (code !== 0) throw new RuntimeFailure('The login did not complete: token injection stays as it was.');

  const patch = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: SECRET_NAME, namespace },
    data: { 'inject-token': Buffer.from('on', 'utf8').toString('base64') },
  };
  const applied = await deps.run({
    args: ['apply', '--server-side', `--field-manager=${LOGIN_FIELD_MANAGER}`, '--filename', '-'],
    input: JSON.stringify(patch),
    timeoutMs: 30_000,
  });
  if (applied.exitCode !== 0) {
    throw new RuntimeFailure(
      `Could not switch token injection on in Secret/${SECRET_NAME}: ${firstErrorLine(applied)}`,
    );
  }
  const restarted = await deps.run({
    args: ['rollout', 'restart', 'deployment/meli-proxy', '--namespace', namespace],
    timeoutMs: 30_000,
  });
  if (restarted.exitCode !== 0) {
    throw new RuntimeFailure(
      `Token stored, injection on, but the proxy did not restart: ${firstErrorLine(restarted)}`,
    );
  }
  deps.say('Token stored in the cluster; token injection is on and the proxy is restarting to use it.');
}
