/**
 * The Secret `meli-proxy-secrets`, made at deploy time and never written to disk.
 *
 * Each key comes from, in order: its environment variable (or a file named by <VARIABLE>_FILE, for
 * secrets mounted as files), the Secret already in the cluster (so a
 * redeploy keeps the database password PostgreSQL was initialised with), or a fresh random value.
 * The object goes to `kubectl apply -f -` on stdin — not as `--from-literal` arguments, which any
 * user of the machine could read in the process list. Values are never printed: only where each key
 * came from.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { RuntimeFailure, UsageError } from '../errors.js';
import { firstErrorLine, type RunKubectl } from './kubectl.js';
import { isRecord, type Manifest } from './manifests.js';

export const SECRET_NAME = 'meli-proxy-secrets';
/** The htpasswd Secret ingress-nginx checks in front of an exposed Prometheus. */
export const PROMETHEUS_AUTH_SECRET = 'meli-proxy-prometheus-auth';
export const PROMETHEUS_USER = 'admin';

/** Every key of the Secret and where it comes from, as the dry-run plan shows it. */
export const SECRET_KEYS: ReadonlyArray<{ key: string; from: string }> = [
  { key: 'admin-token', from: 'MELI_PROXY_ADMIN_TOKEN, else kept, else generated' },
  { key: 'client-id', from: 'MELI_CLIENT_ID, else kept (optional)' },
  { key: 'client-secret', from: 'MELI_CLIENT_SECRET, else kept (optional)' },
  { key: 'database-url', from: 'MELI_PROXY_DATABASE_URL, else the in-cluster PostgreSQL' },
  { key: 'grafana-admin-password', from: 'GRAFANA_ADMIN_PASSWORD, else kept, else generated' },
  { key: 'inject-token', from: 'MELI_PROXY_INJECT_TOKEN, else kept (set on by `deploy login`)' },
  { key: 'postgres-password', from: 'kept, else generated' },
  { key: 'prometheus-password', from: 'PROMETHEUS_PASSWORD, else kept, else generated' },
  { key: 'token-key', from: 'MELI_PROXY_TOKEN_KEY, else kept, else generated (32 random bytes)' },
];

/** Must match the `postgres` StatefulSet and Service in deploy/k8s/base/postgres.yaml. */
const DATABASE = { user: 'meli_proxy', database: 'meli_proxy', host: 'postgres', port: 5432 };

export type SecretOrigin = 'environment' | 'kept' | 'generated' | 'derived';

export interface SecretKeySource {
  key: string;
  origin: SecretOrigin;
  /** The environment variable, when origin is 'environment'. */
  variable?: string;
}

export interface SecretBuild {
  manifest: Manifest;
  sources: SecretKeySource[];
}

interface KeySpec {
  key: string;
  variable?: string;
  generate?: () => string;
  validate?: (value: string, variable: string) => void;
}

const minLength =
  (length: number) =>
  (value: string, variable: string): void => {
    if (value.length < length) {
      throw new UsageError(`${variable} is too short (${value.length} characters): use at least ${length}.`);
    }
  };

function postgresUrl(value: string, variable: string): void {
  if (!/^postgres(ql)?:\/\/[^\s]+$/.test(value)) {
    throw new UsageError(`${variable} must be a postgres:// or postgresql:// URL (its value is not shown).`);
  }
}

/** Variables the Secret is made from; each may instead be given as <NAME>_FILE. */
export const SECRET_VARIABLES = [
  'MELI_PROXY_ADMIN_TOKEN',
  'MELI_PROXY_DATABASE_URL',
  'MELI_CLIENT_ID',
  'MELI_CLIENT_SECRET',
  'GRAFANA_ADMIN_PASSWORD',
  'PROMETHEUS_PASSWORD',
  'MELI_PROXY_TOKEN_KEY',
] as const;

/**
 * The environment with every `<NAME>_FILE` replaced by the file's content (trailing newline
 * removed) under `<NAME>`, unless `<NAME>` itself is set. Throws UsageError for an unreadable file.
 */
export function withSecretFiles(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const resolved = { ...env };
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (!file || (env[name] !== undefined && env[name] !== '')) continue;
    try {
      resolved[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new UsageError(`Cannot read ${name}_FILE ${file} (${code}): point it at a readable file.`);
    }
  }
  return resolved;
}

export function randomSecret(): string {
  return randomBytes(24).toString('hex');
}

/** An AES-256 key: base64 of 32 random bytes. */
export function randomKey(): string {
  return randomBytes(32).toString('base64');
}

function aes256Key(value: string, variable: string): void {
  if (Buffer.from(value, 'base64').length !== 32 || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) {
    throw new UsageError(`${variable} must be base64 of exactly 32 bytes (its value is not shown).`);
  }
}

function onOff(value: string, variable: string): void {
  if (value !== 'on' && value !== 'off') throw new UsageError(`${variable} must be on or off.`);
}

/** Builds the Secret from the environment and the values already in the cluster (`existing`). */
export function buildSecret(
  namespace: string,
  env: NodeJS.ProcessEnv,
  existing: Readonly<Record<string, string>> | undefined,
  random: () => string = randomSecret,
  randomAesKey: () => string = randomKey,
): SecretBuild {
  const specs: KeySpec[] = [
    { key: 'postgres-password', generate: random },
    { key: 'admin-token', variable: 'MELI_PROXY_ADMIN_TOKEN', generate: random, validate: minLength(16) },
    { key: 'client-id', variable: 'MELI_CLIENT_ID' },
    { key: 'client-secret', variable: 'MELI_CLIENT_SECRET' },
    {
      key: 'grafana-admin-password',
      variable: 'GRAFANA_ADMIN_PASSWORD',
      generate: random,
      validate: minLength(8),
    },
    {
      key: 'prometheus-password',
      variable: 'PROMETHEUS_PASSWORD',
      generate: random,
      validate: minLength(12),
    },
    { key: 'token-key', variable: 'MELI_PROXY_TOKEN_KEY', generate: randomAesKey, validate: aes256Key },
    { key: 'inject-token', variable: 'MELI_PROXY_INJECT_TOKEN', validate: onOff },
  ];
  const data: Record<string, string> = {};
  const sources: SecretKeySource[] = [];
  const pick = (spec: KeySpec): void => {
    const fromEnv = spec.variable ? env[spec.variable] : undefined;
    if (spec.variable && fromEnv !== undefined && fromEnv !== '') {
      spec.validate?.(fromEnv, spec.variable);
      data[spec.key] = fromEnv;
      sources.push({ key: spec.key, origin: 'environment', variable: spec.variable });
    } else if (existing?.[spec.key]) {
      data[spec.key] = existing[spec.key]!;
      sources.push({ key: spec.key, origin: 'kept' });
    } else if (spec.generate) {
      data[spec.key] = spec.generate();
      sources.push({ key: spec.key, origin: 'generated' });
    }
  };
  for (const spec of specs) pick(spec);
  if (data['inject-token'] === 'on' && !data['client-secret']) {
    throw new UsageError(
      'Token injection is on but the Secret has no client-secret: set MELI_CLIENT_SECRET (and MELI_CLIENT_ID).',
    );
  }

  // The database URL: given, kept (with the password it was made with), or pointing at the
  // in-cluster PostgreSQL with its password.
  const passwordKept = sources.find((source) => source.key === 'postgres-password')?.origin === 'kept';
  const url = env.MELI_PROXY_DATABASE_URL;
  if (url !== undefined && url !== '') {
    postgresUrl(url, 'MELI_PROXY_DATABASE_URL');
    data['database-url'] = url;
    sources.push({ key: 'database-url', origin: 'environment', variable: 'MELI_PROXY_DATABASE_URL' });
  } else if (existing?.['database-url'] && passwordKept) {
    data['database-url'] = existing['database-url'];
    sources.push({ key: 'database-url', origin: 'kept' });
  } else {
    const password = encodeURIComponent(data['postgres-password']!);
    data['database-url'] =
      `postgres://${DATABASE.user}:${password}@${DATABASE.host}:${DATABASE.port}/${DATABASE.database}`;
    sources.push({ key: 'database-url', origin: 'derived' });
  }

  const encoded = Object.fromEntries(
    Object.entries(data)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, value]) => [key, Buffer.from(value, 'utf8').toString('base64')]),
  );
  return {
    manifest: {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: SECRET_NAME,
        namespace,
        labels: { 'app.kubernetes.io/part-of': 'meli-proxy', 'app.kubernetes.io/component': 'config' },
      },
      data: encoded,
    },
    sources,
  };
}

/**
 * The Secret ingress-nginx reads for basic authentication in front of Prometheus: one htpasswd line,
 * `{SHA}` form (the password is random and long, so an unsalted hash is no weakness here).
 */
export function buildPrometheusAuthSecret(namespace: string, password: string): Manifest {
  const hash = createHash('sha1').update(password, 'utf8').digest('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: PROMETHEUS_AUTH_SECRET,
      namespace,
      labels: { 'app.kubernetes.io/part-of': 'meli-proxy', 'app.kubernetes.io/component': 'config' },
    },
    data: { auth: Buffer.from(`${PROMETHEUS_USER}:{SHA}${hash}\n`, 'utf8').toString('base64') },
  };
}

/** "admin-token from MELI_PROXY_ADMIN_TOKEN, postgres-password kept, …" — names only, no values. */
export function describeSources(sources: readonly SecretKeySource[]): string {
  return sources
    .map((source) => {
      switch (source.origin) {
        case 'environment':
          return `${source.key} from ${source.variable}`;
        case 'kept':
          return `${source.key} kept`;
        case 'generated':
          return `${source.key} generated`;
        case 'derived':
          return `${source.key} for the in-cluster PostgreSQL`;
      }
      return source.key;
    })
    .join(', ');
}

/** The Secret's current values, decoded (in memory only), or undefined when it does not exist. */
export async function readExistingSecret(
  run: RunKubectl,
  namespace: string,
): Promise<Record<string, string> | undefined> {
  const result = await run({
    args: ['get', 'secret', SECRET_NAME, '--namespace', namespace, '--ignore-not-found', '--output', 'json'],
  });
  if (result.exitCode !== 0) {
    throw new RuntimeFailure(`Cannot read Secret ${namespace}/${SECRET_NAME}: ${firstErrorLine(result)}`);
  }
  if (result.stdout.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed) || !isRecord(parsed.data)) return {};
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed.data)) {
    if (typeof value === 'string') values[key] = Buffer.from(value, 'base64').toString('utf8');
  }
  return values;
}
