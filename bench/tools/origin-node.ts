/**
 * The fallback origin when nginx is not installed: node:http serving the 1 KB body on every GET.
 * Usage: node --import tsx bench/tools/origin-node.ts [--port 0]
 * Prints `{"msg":"origin listening","url":…}` (the contract the bench waits for); exits 0 on SIGTERM.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { BODY } from '../lib/body.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

const headers = {
  'content-type': 'application/json; charset=utf-8',
  'content-length': String(BODY.length),
  'cache-control': 'max-age=300',
};

const server = http.createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : BODY);
});

server.listen(Number(values.port), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.log(JSON.stringify({ msg: 'origin listening', url: `http://127.0.0.1:${port}` }));
});

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
