/**
 * Baseline forwarder, NOT meli-proxy: plain node:http + undici `Pool.stream`, no framework, no
 * limits, no metrics. It shows the framework-free ceiling of the Node forwarding technique the
 * design notes measured at ~0.36× nginx, and doubles as a stand-in for the proxy's CLI contract.
 *
 * Usage: node --import tsx bench/baselines/node-undici-stream.ts [serve] --upstream URL [--port 0]
 * Other flags (meli-proxy's --log-level, --access-log, --admin-port…) are accepted and ignored.
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
  console.error('node-undici-stream: --upstream URL is required, e.g. --upstream http://127.0.0.1:8081');
  process.exit(2);
}
const upstream = new URL(values.upstream);
const port = typeof values.port === 'string' ? Number(values.port) : 0;

const pool = new Pool(upstream.origin, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 });

/** Headers that belong to one connection and must not be forwarded (RFC 9110 §7.6.1). */
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

/** Client request headers → upstream headers (flat array), minus hop-by-hop and Host. */
function requestHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (lower === 'host' || HOP_BY_HOP.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

function responseHeaders(headers: Dispatcher.StreamFactoryData['headers']): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (!HOP_BY_HOP.has(name)) out[name] = headers[name];
  }
  return out;
}

const factory: Dispatcher.StreamFactory<http.ServerResponse> = ({ statusCode, headers, opaque: res }) => {
  res.writeHead(statusCode, responseHeaders(headers));
  return res; // undici writes the body into it, honouring backpressure, and ends it
};

function fail(res: http.ServerResponse, err: Error): void {
  if (!res.headersSent) {
    res.writeHead(502, { 'content-type': 'application/json' }).end('{"error":"bad gateway"}');
  } else {
    res.destroy(err);
  }
}

const server = http.createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  const abort = new AbortController();
  // The client went away before the response ended: stop the upstream request too.
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const bodyless = req.method === 'GET' || req.method === 'HEAD';
  pool.stream(
    {
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: requestHeaders(req.rawHeaders),
      body: bodyless ? null : req,
      opaque: res,
      signal: abort.signal,
    },
    factory,
    (err) => {
      if (err) fail(res, err);
    },
  );
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
