/**
 * The probe paths and ports named in the deployment files are the ones the real server serves:
 * builds the CLI when dist/ is stale, starts `node bin/meli-proxy.js serve` with the ConfigMap's config
 * file (listeners moved to free loopback ports), and asks
 * it for every path the Deployment's probes, the Prometheus annotation, the Dockerfile HEALTHCHECK
 * and docker-compose.yml's healthcheck name. None of them may reach the upstream.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { containersOf, type Manifest } from '../../src/deploy/manifests.js';
import { type CliProcess, killChildren, REPO_ROOT, spawnCli } from '../support/proxy.js';
import { find, findConfigMap, httpProbes, record, render, SKIP_RENDERING } from './manifests-helpers.js';

/** Newest modification time under a directory, in ms. */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/** `npm run build` unless dist/ is newer than every source file (`npm test` has just built it). */
async function ensureBuilt(): Promise<void> {
  const main = join(REPO_ROOT, 'dist', 'cli', 'main.js');
  let built = 0;
  try {
    built = statSync(main).mtimeMs;
  } catch {
    built = 0;
  }
  if (built > newest(join(REPO_ROOT, 'src'))) return;
  await execa('npm', ['run', 'build'], { cwd: REPO_ROOT, timeout: 120_000 });
}

/**
 * Paths a healthcheck command requests: `http://127.0.0.1:8080/ready`, or the Dockerfile's
 * `'http://127.0.0.1:'+(port)+'/health'`.
 */
function healthcheckPaths(text: string): string[] {
  return [...text.matchAll(/(?:http:\/\/127\.0\.0\.1:[^/'"]+|\+\s*')(\/[A-Za-z0-9/_-]*)/g)].map(
    (match) => match[1]!,
  );
}

let upstream: Server;
const upstreamHits: string[] = [];
let proxy: CliProcess;
let production: Manifest[];
let workDir: string | undefined;

describe.skipIf(SKIP_RENDERING)('probes against the real server', () => {
  beforeAll(async () => {
    production = await render('production');
    await ensureBuilt();
    upstream = createServer((request, response) => {
      upstreamHits.push(request.url ?? '');
      response.end('{}');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const port = (upstream.address() as AddressInfo).port;
    // The config file exactly as the ConfigMap ships it; flags move the listeners to free loopback
    // ports (flags beat the file) and the admin token comes from the environment, as in the pod.
    workDir = mkdtempSync(join(tmpdir(), 'meli-probes-'));
    const configFile = join(workDir, 'meli-proxy.yaml');
    writeFileSync(
      configFile,
      String(record(findConfigMap(production, 'meli-proxy-config').data)['meli-proxy.yaml']),
    );
    proxy = await spawnCli(
      [
        'serve',
        '--config',
        configFile,
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--admin-host',
        '127.0.0.1',
        '--admin-port',
        '0',
        '--upstream',
        `http://127.0.0.1:${port}`,
        '--data-dir',
        join(workDir, 'data'),
      ],
      { MELI_PROXY_ADMIN_TOKEN: 'probe-test-admin-token-0123456789' },
    );
  }, 150_000);

  afterAll(async () => {
    await proxy?.stop('SIGTERM').catch(() => undefined);
    killChildren();
    await new Promise((resolve) => upstream?.close(resolve));
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('serves every probe path of the proxy Deployment with 200', async () => {
    const probes = httpProbes(find(production, 'Deployment', 'meli-proxy'));
    expect(probes.map((probe) => probe.probe).sort()).toEqual([
      'livenessProbe',
      'readinessProbe',
      'startupProbe',
    ]);
    for (const probe of probes) {
      const response = await fetch(new URL(probe.path, proxy.url));
      expect(response.status, `${probe.probe} ${probe.path}`).toBe(200);
    }
  });

  it('serves the Prometheus scrape path, with the series the autoscaler rule reads', async () => {
    const template = record(record(find(production, 'Deployment', 'meli-proxy').spec).template);
    const annotations = record(record(template.metadata).annotations);
    const response = await fetch(new URL(String(annotations['prometheus.io/path']), proxy.url));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const body = await response.text();
    const adapter = parseYaml(
      String(record(findConfigMap(production, 'prometheus-adapter-config').data)['config.yaml']),
    );
    const seriesQuery = String(record((record(adapter).rules as unknown[])[0]).seriesQuery);
    const metric = /^([a-z_]+)\{/.exec(seriesQuery)![1]!;
    expect(body).toMatch(new RegExp(`^# TYPE ${metric} counter$`, 'm'));
  });

  it('serves the Dockerfile HEALTHCHECK and docker-compose healthcheck paths', async () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    // The instruction with its continuation lines.
    const healthcheck = /^HEALTHCHECK(?:[^\n]*\\\n)*[^\n]*/m.exec(dockerfile)![0];
    const compose = record(
      parseYaml(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }),
    );
    const proxyService = record(record(compose.services).proxy);
    const paths = [
      ...healthcheckPaths(healthcheck),
      ...healthcheckPaths(JSON.stringify(record(proxyService.healthcheck).test)),
    ];
    expect(paths).toEqual(['/health', '/ready']);
    for (const path of paths) expect((await fetch(new URL(path, proxy.url))).status, path).toBe(200);
  });

  it('answers the probes itself: none reaches the upstream', () => {
    expect(upstreamHits).toEqual([]);
  });

  it('listens where the Deployment says: container port = configured port', () => {
    const container = containersOf(find(production, 'Deployment', 'meli-proxy'))[0]!;
    const configFile = parseYaml(
      String(record(findConfigMap(production, 'meli-proxy-config').data)['meli-proxy.yaml']),
    );
    const http = (container.ports as Array<Record<string, unknown>>).find((port) => port.name === 'http');
    expect(http?.containerPort).toBe(record(configFile).port);
    // The server started from that very file (only the listeners moved by flags), and says so.
    const listening = proxy.logRecords().find((line) => line.msg === 'proxy listening');
    expect(String(listening?.url)).toBe(proxy.url);
    const admin = proxy.logRecords().find((line) => line.msg === 'admin listening');
    expect(admin?.authenticated).toBe(true);
  });
});
