/**
 * Baseline forwarder, NOT meli-proxy: plain node:http + undici `Pool.dispatch` with a raw handler,
 * the forwarding technique meli-proxy itself uses, with nothing else: no framework, no limits, no
 * metrics, no request ids, no deadlines. Its CPU per request is the floor of that technique, so
 * "meli-proxy ÷ this row" is what everything the proxy adds costs, and "this row × nginx" is as
 * far as the technique can go on the machine.
 *
 * Usage: node --import tsx bench/baselines/node-undici-dispatch.ts [serve] --upstream URL [--port 0]
 * Other flags (meli-proxy's --log-level, --access-log, --admin-port…) are accepted and ignored.
 * An HTTPS upstream's certificate is trusted through NODE_EXTRA_CA_CERTS, as the bench sets it.
 * Prints `{"msg":"proxy listening","url":…}` once listening; exits 0 on SIGTERM.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { type Dispatcher, Pool } from 'undici';

const { values } = parseArgs({
  strict: false,
  allowPositionals: true,
  options: { upstream: { type: 'string' }, port: { type: 'string' } },
});
if (typeof values.upstream !== 'string') {
  console.error('node-undici-dispatch: --upstream URL is required, e.g. --upstream https://127.0.0.1:8443');
  process.exit(2);
}
const upstream = new URL(values.upstream);
const port = typeof values.port === 'string' ? Number(values.port) : 0;

const pool = new Pool(upstream.origin, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 });

/** Connection-specific fields (RFC 9110 §7.6.1): never passed across the hop. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Client request headers → upstream headers, flat, minus hop-by-hop fields; Host is the upstream's. */
function requestHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (lower === 'host' || HOP_BY_HOP.has(lower)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  out.push('host', upstream.host);
  return out;
}

/** undici's raw response headers → a flat array for writeHead, minus hop-by-hop fields. */
function responseHeaders(raw: Buffer[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (HOP_BY_HOP.has(name.toLowerCase())) continue;
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  return out;
}

type Tracked = http.ServerResponse & { handler?: Handler | undefined };

function onDrain(this: http.ServerResponse): void {
  (this as Tracked).handler?.resumeUpstream?.();
}

function onClose(this: http.ServerResponse): void {
  const handler = (this as Tracked).handler;
  if (handler && !handler.done) handler.abort?.(new Error('client closed the connection'));
}

/** One forwarded request: undici's legacy callbacks, which hand over raw header buffers. */
class Handler implements Dispatcher.DispatchHandler {
  abort: ((error?: Error) => void) | undefined;
  resumeUpstream: (() => void) | undefined;
  done = false;

  constructor(private readonly res: Tracked) {
    res.handler = this;
    res.on('close', onClose);
  }

  onConnect(abort: (error?: Error) => void): void {
    if (this.res.destroyed) throw new Error('client closed the connection');
    this.abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true;
    this.resumeUpstream = resume;
    this.res.writeHead(statusCode, statusText || undefined, responseHeaders(rawHeaders));
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    this.res.once('drain', onDrain); // undici pauses the upstream socket until the client drains
    return false;
  }

  onComplete(): void {
    this.done = true;
    this.res.end();
  }

  onError(error: Error): void {
    this.done = true;
    if (this.res.headersSent || this.res.destroyed) this.res.destroy(error);
    else this.res.writeHead(502, { 'content-type': 'application/json' }).end('{"error":"bad gateway"}');
  }
}

const server = http.createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  const bodyless = req.method === 'GET' || req.method === 'HEAD';
  const handler = new Handler(res);
  try {
    pool.dispatch(
      {
        path: req.url ?? '/',
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: requestHeaders(req.rawHeaders),
        body: bodyless ? null : req,
      },
      handler,
    );
  } catch (error) {
    handler.onError(error as Error);
  }
});

server.listen(port, '127.0.0.1', () => {
  const { port: bound } = server.address() as AddressInfo;
  console.log(JSON.stringify({ level: 30, msg: 'proxy listening', url: `http://127.0.0.1:${bound}` }));
});

process.on('SIGTERM', () => {
  server.close(() => {
    void pool.close().then(() => process.exit(0));
  });
  server.closeAllConnections();
});
