/**
 * A tiny stand-in for MercadoLibre's API, for trying the proxy without the internet: a handful of
 * read-only resources answered with fixed JSON in the real API's shapes, and its error shape for
 * everything else. It keeps no state and never calls out.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Answer = { status: number; body: unknown };
type Resource = { pattern: RegExp; answer: (match: RegExpExecArray, request: IncomingMessage) => Answer };

const SITE_NAMES: Readonly<Record<string, string>> = { MLA: 'Argentina', MLB: 'Brasil', MLM: 'Mexico' };

const RESOURCES: readonly Resource[] = [
  {
    pattern: /^\/sites\/([A-Z]{3})$/,
    answer: ([, site]) => ({ status: 200, body: { id: site, name: SITE_NAMES[site ?? ''] ?? site } }),
  },
  {
    pattern: /^\/categories\/([A-Z]{3}\d+)$/,
    answer: ([, id]) => ({
      status: 200,
      body: { id, name: `Demo category ${id}`, path_from_root: [{ id, name: `Demo category ${id}` }] },
    }),
  },
  {
    pattern: /^\/items\/([A-Z]{3}\d+)$/,
    answer: ([, id]) => ({
      status: 200,
      body: { id, title: `Demo item ${id}`, price: 1999.9, currency_id: 'ARS', available_quantity: 7 },
    }),
  },
  {
    pattern: /^\/sites\/([A-Z]{3})\/search$/,
    answer: ([, site]) => ({
      status: 200,
      body: {
        site_id: site,
        paging: { total: 2, offset: 0, limit: 50 },
        results: [{ id: `${site}1` }, { id: `${site}2` }],
      },
    }),
  },
  {
    pattern: /^\/users\/me$/,
    answer: (_match, request) =>
      request.headers.authorization
        ? { status: 200, body: { id: 123456789, nickname: 'DEMO_SELLER', site_id: 'MLA' } }
        : apiError(401, 'unauthorized', 'invalid access token'),
  },
];

function apiError(status: number, error: string, message: string): Answer {
  return { status, body: { message, error, status, cause: [] } };
}

/** The answer the demo origin gives to one request. */
export function demoAnswer(request: IncomingMessage): Answer {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    return apiError(405, 'method_not_allowed', `the demo origin only answers GET, not ${request.method}`);
  }
  const path = (request.url ?? '/').split('?', 1)[0] ?? '/';
  for (const resource of RESOURCES) {
    const match = resource.pattern.exec(path);
    if (match) return resource.answer(match, request);
  }
  return apiError(404, 'not_found', `no demo resource at ${path}`);
}

function respond(request: IncomingMessage, response: ServerResponse): void {
  const { status, body } = demoAnswer(request);
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json;charset=UTF-8',
    'content-length': Buffer.byteLength(text),
    'x-request-id': String(request.headers['x-request-id'] ?? ''),
    // Echoed so a walkthrough can show which client address the proxy reported upstream.
    'x-demo-forwarded-for': String(request.headers['x-forwarded-for'] ?? ''),
  });
  response.end(request.method === 'HEAD' ? undefined : text);
}

/** Starts the demo origin; resolves once it listens, with its URL. */
export async function startDemoOrigin(host: string, port: number): Promise<{ server: Server; url: string }> {
  const server = createServer(respond);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { server, url: `http://${shown}:${address.port}` };
}
