/**
 * The container files, offline (no container engine here):
 *   docker-compose.yml   valid against the Compose Specification schema (the copy shipped in the
 *                        `dclint` npm package), after Compose's own ${VAR:-default} interpolation, and
 *                        a stack that starts with one `docker compose up`: healthchecks, depends_on
 *                        conditions, one-shot migration, matching ports and credentials
 *   Dockerfile           multi-stage, production dependencies only, non-root, HEALTHCHECK, serve
 *   Prometheus configs   `promtool check config` where promtool is installed
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv } from 'ajv';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { isRecord } from '../../src/deploy/manifests.js';
import { REPO_ROOT } from '../support/proxy.js';

type Json = Record<string, unknown>;

function record(value: unknown): Json {
  return isRecord(value) ? value : {};
}

/**
 * The Compose Specification JSON schema (Apache-2.0, github.com/compose-spec/compose-spec), as the
 * dclint package ships it. MELI_COMPOSE_SCHEMA may point at another copy of the file.
 */
function composeSchema(): { schema: Json; source: string } | undefined {
  let source = process.env.MELI_COMPOSE_SCHEMA;
  if (!source) {
    try {
      // dclint's `exports` hide the file from require.resolve; its package.json is exported.
      const manifest = createRequire(import.meta.url).resolve('dclint/package.json');
      source = join(dirname(manifest), 'schemas', 'compose.schema.json');
    } catch {
      return undefined;
    }
  }
  const schema = JSON.parse(readFileSync(source, 'utf8')) as Json;
  // It names its meta-schema as https://json-schema.org/draft-07/schema, a spelling Ajv does not
  // know; draft-07 is Ajv's default dialect anyway.
  delete schema.$schema;
  return { schema, source };
}

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, $$ → $. */
function interpolate(value: unknown, env: Record<string, string | undefined>): unknown {
  if (typeof value === 'string') {
    return value.replace(
      /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)-([^}]*))?\}/g,
      (whole, name, colon, fallback) => {
        if (whole === '$$') return '$';
        const set = env[name as string];
        if (fallback === undefined) return set ?? '';
        if (colon === ':') return set === undefined || set === '' ? (fallback as string) : set;
        return set === undefined ? (fallback as string) : set;
      },
    );
  }
  if (Array.isArray(value)) return value.map((item) => interpolate(item, env));
  if (isRecord(value))
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolate(item, env)]));
  return value;
}

const composeText = readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
/** As `docker compose config` would see it with an empty environment (every default applies). */
const compose = record(interpolate(parseYaml(composeText, { merge: true }), {}));
const services = record(compose.services);
const service = (name: string) => record(services[name]);
const environment = (name: string) => record(service(name).environment) as Record<string, string>;

const SCHEMA = composeSchema();

describe('docker-compose.yml', () => {
  it.skipIf(!SCHEMA && !process.env.CI)('is valid against the Compose Specification schema', () => {
    expect(
      SCHEMA,
      'the Compose schema comes from the dclint package: add it to devDependencies (npm i -D dclint)',
    ).toBeDefined();
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(SCHEMA!.schema);
    const valid = validate(compose);
    expect(validate.errors ?? [], `schema ${SCHEMA!.source}`).toEqual([]);
    expect(valid).toBe(true);
  });

  it.skipIf(!SCHEMA)('the schema check is real: it rejects an unknown service key', () => {
    const validate = new Ajv({ allErrors: true, strict: false }).compile(SCHEMA!.schema);
    expect(validate({ services: { proxy: { image: 'x', helthcheck: {} } } })).toBe(false);
  });

  it('runs the whole stack: postgres, one-shot migrate, proxy, prometheus, grafana', () => {
    expect(Object.keys(services).sort()).toEqual(['grafana', 'migrate', 'postgres', 'prometheus', 'proxy']);
    expect(service('migrate').command).toEqual(['migrate']);
    expect(service('proxy').command).toEqual(['serve']);
    expect(service('migrate').image).toBe(service('proxy').image);
    expect(record(service('proxy').build).context).toBe('.');
    expect(existsSync(join(REPO_ROOT, 'Dockerfile'))).toBe(true);
  });

  it('orders start-up with healthchecks and depends_on conditions, so `up` needs no manual step', () => {
    const conditions = Object.fromEntries(
      Object.entries(services).map(([name, value]) => [
        name,
        Object.fromEntries(
          Object.entries(record(record(value).depends_on)).map(([dep, spec]) => [
            dep,
            record(spec).condition,
          ]),
        ),
      ]),
    );
    expect(conditions).toEqual({
      postgres: {},
      migrate: { postgres: 'service_healthy' },
      proxy: { postgres: 'service_healthy', migrate: 'service_completed_successfully' },
      prometheus: { proxy: 'service_healthy' },
      grafana: { prometheus: 'service_healthy' },
    });
    for (const [name, deps] of Object.entries(conditions)) {
      for (const [dep, condition] of Object.entries(deps)) {
        if (condition === 'service_healthy')
          expect(service(dep).healthcheck, `${name} waits for ${dep}'s health`).toBeDefined();
        if (condition === 'service_completed_successfully')
          expect(service(dep).restart, `${dep} runs once`).toBe('no');
      }
    }
    for (const name of ['postgres', 'proxy', 'prometheus', 'grafana']) {
      expect(record(service(name).healthcheck).test, name).toBeDefined();
    }
    expect(JSON.stringify(record(service('postgres').healthcheck).test)).toContain('pg_isready');
  });

  it('agrees with itself: store URL, password, ports and the scrape target', () => {
    const postgres = environment('postgres');
    const url = new URL(environment('proxy').MELI_PROXY_STORE!);
    expect(environment('migrate').MELI_PROXY_STORE).toBe(url.toString());
    expect(url.hostname).toBe('postgres');
    expect(decodeURIComponent(url.username)).toBe(postgres.POSTGRES_USER);
    expect(decodeURIComponent(url.password)).toBe(postgres.POSTGRES_PASSWORD);
    expect(url.pathname).toBe(`/${postgres.POSTGRES_DB}`);

    const proxyPort = environment('proxy').MELI_PROXY_PORT;
    expect(environment('proxy').MELI_PROXY_HOST).toBe('0.0.0.0');
    expect((service('proxy').ports as string[]).map((port) => port.split(':').at(-1))).toContain(proxyPort);
    expect(JSON.stringify(record(service('proxy').healthcheck).test)).toContain(
      `127.0.0.1:${proxyPort}/ready`,
    );
    const prometheus = record(
      parseYaml(readFileSync(join(REPO_ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8')),
    );
    const targets = (prometheus.scrape_configs as Json[]).flatMap((job) =>
      (job.static_configs as Json[]).flatMap((config) => config.targets as string[]),
    );
    expect(targets).toEqual([`proxy:${proxyPort}`]);
  });

  it('mounts files that exist, at the paths Grafana and Prometheus read', () => {
    const binds = Object.values(services).flatMap((value) =>
      ((record(value).volumes as string[] | undefined) ?? []).filter((volume) => volume.startsWith('./')),
    );
    for (const bind of binds.filter((item) => !item.includes('/dashboards:'))) {
      expect(existsSync(join(REPO_ROOT, bind.split(':')[0]!)), bind).toBe(true);
    }
    const providers = record(
      parseYaml(
        readFileSync(join(REPO_ROOT, 'deploy/grafana/provisioning/dashboards/meli-proxy.yaml'), 'utf8'),
      ),
    );
    const dashboardsPath = String(record(record((providers.providers as unknown[])[0]).options).path);
    expect(binds).toContain(`./deploy/grafana/dashboards:${dashboardsPath}:ro`);
    expect(record(service('prometheus')).command).toContain('--config.file=/etc/prometheus/prometheus.yml');
  });

  it('hardens the app containers and publishes ports on loopback only', () => {
    for (const name of ['proxy', 'migrate']) {
      expect(service(name).read_only, name).toBe(true);
      expect(service(name).cap_drop, name).toEqual(['ALL']);
    }
    for (const [name, value] of Object.entries(services)) {
      for (const port of (record(value).ports as string[] | undefined) ?? []) {
        expect(port, name).toMatch(/^127\.0\.0\.1:/);
      }
    }
    // A default for every variable: `up` works with an empty environment.
    expect(composeText).not.toMatch(/\$\{[A-Z_]+\}/);
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.trimStart().startsWith('#'));
  const stages: string[][] = [];
  for (const line of instructions) {
    if (/^FROM /i.test(line)) stages.push([]);
    stages.at(-1)?.push(line);
  }
  const final = stages.at(-1) ?? [];

  it('is multi-stage: the final image takes production dependencies and the build output only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    const depsStage = stages.find((stage) => stage.some((line) => /npm ci\b.*--omit=dev/.test(line)));
    expect(depsStage, 'a stage installs with npm ci --omit=dev').toBeDefined();
    expect(final.some((line) => /^COPY --from=deps \/app\/node_modules/.test(line))).toBe(true);
    expect(final.some((line) => /^COPY --from=build \/app\/dist/.test(line))).toBe(true);
    expect(
      final.some((line) => /^RUN .*npm (ci|install)/.test(line)),
      'no install in the final stage',
    ).toBe(false);
    expect(
      final.some((line) => /^COPY (\S+ )?src\b/.test(line)),
      'no sources in the final stage',
    ).toBe(false);
  });

  it('runs as a non-root user, checks its health, and starts `meli-proxy serve`', () => {
    const user = final.filter((line) => /^USER /.test(line)).at(-1);
    expect(user).toMatch(/^USER [1-9]\d*(:[1-9]\d*)?$/);
    expect(final.some((line) => /^HEALTHCHECK .*CMD/.test(line))).toBe(true);
    expect(final).toContain('ENTRYPOINT ["node", "bin/meli-proxy.js"]');
    expect(final).toContain('CMD ["serve"]');
    expect(
      final.some((line) => /MELI_PROXY_HOST=0\.0\.0\.0/.test(line)),
      'listens beyond loopback',
    ).toBe(true);
  });

  it('.dockerignore keeps local builds and dependencies out of the context', () => {
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['node_modules', 'dist', '.git', 'test']) expect(ignored).toContain(entry);
    for (const needed of ['src', 'bin', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      expect(ignored).not.toContain(needed);
    }
  });
});

const PROMTOOL = (process.env.PATH ?? '').split(':').some((dir) => existsSync(join(dir, 'promtool')));

describe.skipIf(!PROMTOOL && !process.env.CI)('Prometheus configuration', () => {
  it('docker compose: promtool check config', async () => {
    const result = await execa(
      'promtool',
      ['check', 'config', join(REPO_ROOT, 'deploy/prometheus/prometheus.yml')],
      {
        reject: false,
      },
    );
    expect(`${result.stdout}${result.stderr}`).toContain('SUCCESS');
    expect(result.exitCode).toBe(0);
  });
});
