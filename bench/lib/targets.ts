/**
 * The servers under test of one scenario, started fresh for it (so its peak RSS and the origin's
 * handshake counts are its own): the origin itself (`direct`), meli-proxy (one row per build and
 * node binary), nginx as a reverse proxy, and the framework-free Node forwarder.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { clientIp } from './loadgen.js';
import type { BenchOptions, TargetId } from './options.js';
import { redact } from './report.js';
import type { Scenario } from './scenarios.js';
import {
  checkServes,
  type Expectation,
  type NginxInfo,
  type OriginServer,
  type Server,
  startListening,
  startNginxOrigin,
  startNginxProxy,
} from './servers.js';
import type { Certificate } from './tls.js';

export interface Target {
  id: TargetId;
  label: string;
  command: string;
  server: Server;
}

export interface BenchContext {
  options: BenchOptions;
  tmpDir: string;
  nginx: NginxInfo | null;
  /** The origin the proxies forward to (on the load generator's CPU). */
  upstream: OriginServer;
  cert: Certificate | undefined;
  serverCpus: string | undefined;
  /** `--limits features`: the rules file every meli-proxy row loads. */
  rulesFile: string | undefined;
}

/** The framework-free Node forwarders: not meli-proxy, the technique alone (bench/baselines). */
const BASELINES = {
  undici: {
    name: 'node-undici-stream',
    file: 'bench/baselines/node-undici-stream.ts',
    label: 'node:http + undici stream',
  },
  dispatch: {
    name: 'node-undici-dispatch',
    file: 'bench/baselines/node-undici-dispatch.ts',
    label: 'node:http + undici dispatch',
  },
} as const;

/** `node [--import tsx] file` for a launcher path. */
export function nodeCommand(file: string): string[] {
  return file.endsWith('.ts') ? ['--import', 'tsx', file] : [file];
}

/** The fallback origin without nginx: node:http serving the 1 KB body on every path, HTTP only. */
export async function startNodeOrigin(name: string, path: string, cpus: string | undefined) {
  const args = nodeCommand('bench/tools/origin-node.ts');
  const server = await startListening(name, process.execPath, args, path, cpus, {}, 'origin listening');
  return { ...server, tlsUrl: undefined, tlsConnectionLog: undefined } satisfies OriginServer;
}

function serveArgs(ctx: BenchContext, upstreamUrl: string, dataDir: string): string[] {
  const { options, rulesFile } = ctx;
  return [
    'serve',
    '--upstream',
    upstreamUrl,
    '--port',
    '0',
    '--admin-port',
    '0',
    '--log-level',
    'info',
    '--access-log',
    'off',
    // One process unless asked: serve's default (one per core) would not match nginx's row.
    '--workers',
    String(options.workers ?? 1),
    ...(options.store !== undefined ? ['--store', options.store] : []),
    ...(options.ips > 1 ? ['--trust-proxy', '127.0.0.1/32'] : []),
    ...(rulesFile ? ['--config', rulesFile] : []),
    // The embedded store writes documents.json: keep it in the temp dir, not the user's data dir.
    ...(options.serveArgs.some((a) => a.startsWith('--data-dir')) ? [] : ['--data-dir', dataDir]),
    ...options.serveArgs,
  ];
}

/** Starts every selected target for `scenario` and checks each answers its exact body. */
export async function startTargets(
  ctx: BenchContext,
  scenario: Scenario,
  expected: Expectation & { path: string },
): Promise<Target[]> {
  const { options, nginx, upstream, cert, serverCpus } = ctx;
  const dir = join(ctx.tmpDir, scenario.id);
  const upstreamUrl = scenario.tls ? upstream.tlsUrl : upstream.url;
  if (!upstreamUrl) throw new Error(`${scenario.id} needs an HTTPS origin, which needs nginx`);
  // Node's own CA store plus the origin's self-signed certificate (meli-proxy has no CA setting).
  const env = cert ? { ...process.env, NODE_EXTRA_CA_CERTS: cert.certFile } : process.env;
  const ipHeader: Record<string, string> = options.ips > 1 ? { 'x-forwarded-for': clientIp(0) } : {};
  const targets: Target[] = [];
  const add = async (target: Target, headers: Record<string, string> = {}) => {
    targets.push(target);
    await checkServes(
      target.label,
      target.server.url + expected.path,
      { ...expected.headers, ...headers },
      expected.body,
    );
  };

  for (const id of options.only) {
    if (id === 'direct') {
      const server = nginx
        ? await startNginxOrigin(nginx, 'origin-direct', join(dir, 'origin-direct'), options.path, serverCpus)
        : await startNodeOrigin('origin-direct', options.path, serverCpus);
      await add({ id, label: `direct (origin over HTTP)`, command: 'origin', server });
    } else if (id === 'proxy') {
      const rows = options.proxyBins.flatMap((bin) => options.nodes.map((node) => ({ bin, node })));
      for (const [index, { bin, node }] of rows.entries()) {
        if (!existsSync(bin.file)) {
          throw new Error(
            `meli-proxy: ${bin.file} does not exist (is the CLI built? npm run build); ` +
              'use --only to leave the proxy row out, or --proxy-bin FILE',
          );
        }
        const args = [
          ...options.nodeArgs,
          ...nodeCommand(bin.file),
          ...serveArgs(ctx, upstreamUrl, join(dir, `meli-proxy-data-${index}`)),
        ];
        const names = [
          ...(bin.named || options.proxyBins.length > 1 ? [bin.label] : []),
          ...(node.named || options.nodes.length > 1 ? [node.label] : []),
        ];
        const label = names.length === 0 ? 'meli-proxy' : `meli-proxy (${names.join(', ')})`;
        const server = await startListening(
          label,
          node.file,
          args,
          options.path,
          serverCpus,
          ipHeader,
          undefined,
          env,
        );
        await add(
          {
            id: index === 0 ? 'proxy' : `proxy:${names.join('+')}`,
            label,
            command: `${node.file} ${args.map(redact).join(' ')}`,
            server,
          },
          ipHeader,
        );
      }
    } else if (id === 'nginx' && nginx) {
      const server = await startNginxProxy(
        nginx,
        'nginx-proxy',
        join(dir, 'nginx-proxy'),
        upstreamUrl,
        options.path,
        serverCpus,
        {
          workers: options.workers ?? 1,
          // Room for every upstream connection it opens, as meli-proxy's pool keeps all of its own.
          keepalive: Math.max(128, scenario.connections ?? options.connections),
          caFile: cert?.certFile,
        },
      );
      await add({ id, label: `nginx ${nginx.version} reverse proxy`, command: 'nginx', server });
    } else if (id === 'undici' || id === 'dispatch') {
      const baseline = BASELINES[id];
      const args = [...nodeCommand(baseline.file), '--upstream', upstreamUrl];
      const server = await startListening(
        baseline.name,
        process.execPath,
        args,
        options.path,
        serverCpus,
        {},
        undefined,
        env,
      );
      await add({ id, label: baseline.label, command: `node ${args.join(' ')}`, server });
    }
  }
  return targets;
}
