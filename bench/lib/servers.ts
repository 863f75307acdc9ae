/**
 * The servers of a run: the origin (nginx serving the bench's bodies over HTTP and, with a
 * certificate, HTTPS; else a node:http origin), the nginx reverse proxy baseline, and anything that
 * follows the proxy's "proxy listening" log contract.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BODIES } from './bodies.js';
import { BODY } from './body.js';
import { type Child, start } from './processes.js';
import type { Certificate } from './tls.js';

export interface Server {
  name: string;
  url: string;
  child: Child;
}

/** An nginx origin: plain HTTP always, HTTPS too when started with a certificate. */
export interface OriginServer extends Server {
  tlsUrl: string | undefined;
  /**
   * One line per TLS connection accepted (`<connection> <r or .>`: `r` when the client resumed a
   * session), written on each connection's first request: how often clients handshake, and how.
   */
  tlsConnectionLog: string | undefined;
}

/** What a target must answer: these exact bytes, sent with these request headers. */
export interface Expectation {
  body: Buffer;
  headers: Record<string, string>;
}

const READY_TIMEOUT_MS = 20_000;

/** A port that was free a moment ago (nginx needs a concrete port in its config). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface Fetched {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One GET on a fresh connection; rejects on network errors or after `timeoutMs`. */
export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Checks that `url` answers 200 with exactly the expected body; throws a descriptive error otherwise. */
export async function checkServes(
  name: string,
  url: string,
  headers: Record<string, string> = {},
  expected: Buffer = BODY,
) {
  const res = await get(url, headers);
  if (res.status !== 200) {
    const excerpt = res.body.subarray(0, 200).toString();
    throw new Error(`${name}: GET ${url} answered ${res.status}, expected 200: ${excerpt}`);
  }
  if (!res.body.equals(expected)) {
    throw new Error(
      `${name}: GET ${url} returned ${res.body.length} bytes (content-encoding ${res.headers['content-encoding'] ?? 'none'}) ` +
        `that differ from the origin's ${expected.length}`,
    );
  }
}

/** Polls until `url` serves the body, failing early if the process exits. */
async function waitServing(server: Server, path: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!server.child.running) break;
    try {
      await checkServes(server.name, server.url + path);
      return;
    } catch (error) {
      lastError = error;
      await sleep(50);
    }
  }
  const why = server.child.running ? String(lastError) : 'the process exited';
  throw new Error(`${server.name}: not serving after start (${why})\n${server.child.describeTail()}`);
}

export interface NginxInfo {
  binary: string;
  version: string;
}

/** The pieces every nginx config of ours has: no daemon, one worker, everything inside `dir`. */
function nginxMain(dir: string, http: string, workers = 1): string {
  return `# written by bench/lib/servers.ts
daemon off;
master_process on;
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {
  worker_connections 4096;
}
http {
  access_log off;
  server_tokens off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  # wrk and the proxies keep their connections for the whole run: never recycle them.
  keepalive_requests 10000000;
  keepalive_timeout 120s;
${http}
}
`;
}

async function startNginx(
  nginx: NginxInfo,
  name: string,
  dir: string,
  conf: string,
  port: number,
  path: string,
  cpus: string | undefined,
): Promise<Server> {
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const confPath = join(dir, 'nginx.conf');
  await writeFile(confPath, conf);
  const child = start(name, nginx.binary, ['-p', dir, '-c', confPath, '-e', join(dir, 'error.log')], {
    cpus,
  });
  const server = { name, url: `http://127.0.0.1:${port}`, child };
  await waitServing(server, path);
  return server;
}

/** nginx serving the bench's bodies as static files (and their gzip encodings to clients that ask). */
export async function startNginxOrigin(
  nginx: NginxInfo,
  name: string,
  dir: string,
  path: string,
  cpus: string | undefined,
  cert?: Certificate,
): Promise<OriginServer> {
  const www = join(dir, 'www');
  await mkdir(www, { recursive: true });
  for (const body of Object.values(BODIES)) {
    await writeFile(join(www, body.file), body.plain);
    await writeFile(join(www, `${body.file}.gz`), body.gzip);
  }
  // When we are root, nginx's worker runs as an unprivileged user and must read the files.
  await chmod(dir, 0o755);
  await chmod(www, 0o755);
  const port = await freePort();
  const tlsPort = cert ? await freePort() : undefined;
  const tlsConnectionLog = cert ? join(dir, 'tls-connections.log') : undefined;
  const locations = `
    root ${www};
    default_type "application/json; charset=utf-8";
    add_header Cache-Control "max-age=300";
    # The precompressed .gz next to each file goes to clients that accept gzip, proxied or not.
    gzip_static on;
    gzip_proxied any;
    gzip_vary on;
${Object.values(BODIES)
  .filter((body) => body.id !== '1k')
  .map((body) => `    location ${new URL(body.path, 'http://x').pathname} { try_files /${body.file} =404; }`)
  .join('\n')}
    location / { try_files /${BODIES['1k'].file} =404; }`;
  const tlsServer = cert
    ? `
  log_format tls_connection '$connection $ssl_session_reused';
  map $connection_requests $first_on_connection { 1 1; default 0; }
  server {
    listen 127.0.0.1:${tlsPort} ssl backlog=4096;
    ssl_certificate ${cert.certFile};
    ssl_certificate_key ${cert.keyFile};
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    access_log ${tlsConnectionLog} tls_connection if=$first_on_connection;
${locations}
  }`
    : '';
  const conf = nginxMain(
    dir,
    `  sendfile on;
  tcp_nodelay on;
  open_file_cache max=64 inactive=1h;
  open_file_cache_valid 1h;
  server {
    listen 127.0.0.1:${port} backlog=4096;
${locations}
  }${tlsServer}`,
  );
  const server = await startNginx(nginx, name, dir, conf, port, path, cpus);
  return {
    ...server,
    tlsUrl: tlsPort === undefined ? undefined : `https://127.0.0.1:${tlsPort}`,
    tlsConnectionLog,
  };
}

/**
 * nginx as a reverse proxy with a keep-alive upstream pool: the baseline of every ratio. `workers`
 * nginx worker processes (the same count as meli-proxy's `--workers`, so multi-core runs compare
 * like with like). To an https upstream it verifies the certificate (`caFile`) and reuses TLS
 * sessions, as meli-proxy does. `keepalive` idle upstream connections are kept per worker: nginx
 * opens as many as it has requests in flight and closes those beyond it, so a row with more
 * concurrent clients than that would pay upstream handshakes that meli-proxy's pool does not.
 */
export async function startNginxProxy(
  nginx: NginxInfo,
  name: string,
  dir: string,
  upstream: string,
  path: string,
  cpus: string | undefined,
  options: { workers?: number; keepalive?: number; caFile?: string | undefined } = {},
): Promise<Server> {
  const port = await freePort();
  const { host, protocol } = new URL(upstream);
  const tls = protocol === 'https:';
  if (tls && !options.caFile) throw new Error(`${name}: an https upstream needs the CA file`);
  const tlsLines = tls
    ? `
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${options.caFile};
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;`
    : '';
  const conf = nginxMain(
    dir,
    `  upstream origin {
    server ${host};
    keepalive ${options.keepalive ?? 64};
    keepalive_requests 10000000;
    keepalive_timeout 120s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass ${tls ? 'https' : 'http'}://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";${tlsLines}
    }
  }`,
    options.workers ?? 1,
  );
  return startNginx(nginx, name, dir, conf, port, path, cpus);
}

/** The JSON log line our servers print once listening, e.g. `{"msg":"proxy listening","url":…}`. */
export function parseListening(line: string, msg: string): string | undefined {
  if (!line.includes(msg)) return undefined;
  try {
    const record = JSON.parse(line) as { msg?: unknown; url?: unknown };
    if (record.msg === msg && typeof record.url === 'string') return record.url;
  } catch {
    // not JSON: some other output
  }
  return undefined;
}

/**
 * Starts a process that prints a JSON line `{"msg": msg, "url": …}` (meli-proxy and the node
 * baselines print "proxy listening", the node origin "origin listening"), then checks that it
 * serves the body. `checkHeaders` go on that check.
 */
export async function startListening(
  name: string,
  command: string,
  args: readonly string[],
  path: string,
  cpus: string | undefined,
  checkHeaders: Record<string, string> = {},
  msg = 'proxy listening',
  env: NodeJS.ProcessEnv = process.env,
): Promise<Server> {
  const child = start(name, command, args, { cpus, env });
  const url = await child.waitForLine((line) => parseListening(line, msg), READY_TIMEOUT_MS);
  const server = { name, url: url.replace(/\/$/, ''), child };
  try {
    await checkServes(name, server.url + path, checkHeaders);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${child.describeTail()}`);
  }
  return server;
}
