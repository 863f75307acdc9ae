/**
 * The address a rate limit counts is the socket's, unless the socket's peer is a configured trusted
 * proxy (`--trust-proxy`, Fastify's trustProxy): then the rightmost X-Forwarded-For entry that is
 * not itself trusted. No header a client sends — X-Forwarded-For in any spelling or number,
 * Forwarded, X-Real-IP — gets it a counter of its own, and every spelling of one address (IPv4,
 * IPv4-mapped IPv6 in any notation) is one client. (test/limits-e2e covers the plain end-to-end
 * case; these are the hostile variants.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, rawGet, rawRequest } from '../support/net.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const LIMIT = 3;

/** One request from `localAddress` with extra raw header lines; resolves with the status. */
async function hit(
  proxy: TestProxy,
  localAddress: string,
  headers: string[],
  url = proxy.url,
): Promise<number> {
  const response = await rawRequest(
    url,
    rawGet('/items/MLA1', 'proxy.test', [...headers, 'Connection: close']),
    { localAddress },
  );
  return response.status;
}

async function putRule(proxy: TestProxy, id: string, rule: unknown): Promise<void> {
  const response = await httpRequest(proxy.adminUrl, `/admin/limits/${id}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(rule),
  });
  expect(response.status, response.body.toString()).toBe(200);
}

/** The `ip` of the access-log lines written for requests from `peer` (the last `count`). */
function loggedIps(proxy: TestProxy, count: number): unknown[] {
  return proxy.logs
    .withMessage('request')
    .slice(-count)
    .map((line) => line.ip);
}

/** Requests that each claim to come from somewhere else; a client sends them from one socket. */
const SPOOFS: Array<[string, string[][]]> = [
  [
    'X-Forwarded-For',
    [
      ['X-Forwarded-For: 1.1.1.1'],
      ['X-Forwarded-For: 2.2.2.2'],
      ['X-Forwarded-For: 3.3.3.3'],
      ['X-Forwarded-For: 4.4.4.4'],
    ],
  ],
  [
    'several X-Forwarded-For fields',
    [
      ['X-Forwarded-For: 1.1.1.1', 'X-Forwarded-For: 5.5.5.5'],
      ['X-Forwarded-For: 2.2.2.2', 'x-forwarded-for: 6.6.6.6'],
      ['X-Forwarded-For: 3.3.3.3, 7.7.7.7', 'X-FORWARDED-FOR: 8.8.8.8'],
      ['X-Forwarded-For: 4.4.4.4', 'X-Forwarded-For: 9.9.9.9'],
    ],
  ],
  [
    'garbage X-Forwarded-For',
    [
      ['X-Forwarded-For: garbage'],
      ['X-Forwarded-For: , , ,'],
      ['X-Forwarded-For: 999.999.1.1'],
      [`X-Forwarded-For: ${'a'.repeat(4000)}`],
    ],
  ],
  [
    'IPv6 and IPv4-mapped X-Forwarded-For',
    [
      ['X-Forwarded-For: 2001:db8::1'],
      ['X-Forwarded-For: ::ffff:1.2.3.4'],
      ['X-Forwarded-For: [::1]:8080'],
      ['X-Forwarded-For: ::1'],
    ],
  ],
  [
    'Forwarded: for=',
    [
      ['Forwarded: for=1.2.3.4'],
      ['Forwarded: for="[2001:db8::2]";proto=https'],
      ['Forwarded: for=unknown'],
      ['Forwarded: for=_hidden, for=5.6.7.8'],
    ],
  ],
  [
    'X-Real-IP, True-Client-IP, CF-Connecting-IP, Client-IP',
    [
      ['X-Real-IP: 1.2.3.4'],
      ['True-Client-IP: 2.3.4.5'],
      ['CF-Connecting-IP: 3.4.5.6'],
      ['Client-IP: 4.5.6.7'],
    ],
  ],
];

describe('client address without --trust-proxy', () => {
  let origin: Origin;
  let proxy: TestProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startTestProxy({ upstream: origin.url });
    await putRule(proxy, 'per-client', { match: { path: '/items/*' }, by: ['ip'], limit: `${LIMIT}/h` });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });

  it.each(SPOOFS.map(([name, requests], i) => [name, requests, `127.0.0.${20 + i}`] as const))(
    'cannot escape its limit with %s',
    async (_name, requests, address) => {
      const statuses: number[] = [];
      for (const headers of requests) statuses.push(await hit(proxy, address, headers));
      expect(statuses).toEqual([200, 200, 200, 429]);
      // Counted, logged and forwarded as the socket's address, whatever the headers said.
      expect(loggedIps(proxy, LIMIT)).toEqual([address, address, address]);
      for (const request of origin.requests.slice(-LIMIT)) {
        expect(request.headers['x-forwarded-for']).toBe(address);
      }
    },
  );
});

describe('client address with --trust-proxy', () => {
  const TRUSTED = '127.0.0.2';
  let origin: Origin;
  let proxy: TestProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startTestProxy({ upstream: origin.url, trustProxy: `${TRUSTED},127.0.0.4` });
    await putRule(proxy, 'per-client', { match: { path: '/items/*' }, by: ['ip'], limit: `${LIMIT}/h` });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });

  it('ignores X-Forwarded-For from a peer that is not trusted', async () => {
    const statuses: number[] = [];
    for (const headers of SPOOFS[1]![1]) statuses.push(await hit(proxy, '127.0.0.30', headers));
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(loggedIps(proxy, LIMIT)).toEqual(['127.0.0.30', '127.0.0.30', '127.0.0.30']);
  });

  it('counts every spelling of one address (IPv4, IPv4-mapped IPv6 in any notation) as one client', async () => {
    const statuses: number[] = [];
    for (const spelling of [
      '152.152.152.152',
      '::ffff:152.152.152.152',
      '::FFFF:9898:9898',
      '0:0:0:0:0:ffff:152.152.152.152',
    ]) {
      statuses.push(await hit(proxy, TRUSTED, [`X-Forwarded-For: ${spelling}`]));
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  it('takes the rightmost untrusted entry: what a client puts to the left does not matter', async () => {
    const statuses: number[] = [];
    for (const headers of [
      ['X-Forwarded-For: 1.1.1.1, 152.152.152.160'],
      ['X-Forwarded-For: 2.2.2.2, 152.152.152.160, 127.0.0.4'],
      ['X-Forwarded-For: 3.3.3.3', 'X-Forwarded-For: 152.152.152.160'],
      ['X-Forwarded-For: 152.152.152.161, 152.152.152.160'],
    ]) {
      statuses.push(await hit(proxy, TRUSTED, headers));
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(new Set(loggedIps(proxy, LIMIT))).toEqual(new Set(['152.152.152.160']));
  });

  it('falls back to the trusted peer itself when X-Forwarded-For holds no address', async () => {
    const statuses: number[] = [];
    for (const headers of [
      ['X-Forwarded-For: garbage'],
      ['X-Forwarded-For: 1.2.3.4:5678'],
      ['X-Forwarded-For: [2001:db8::1]:443'],
      ['X-Forwarded-For: other-garbage'],
    ]) {
      statuses.push(await hit(proxy, '127.0.0.4', headers));
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(loggedIps(proxy, LIMIT)).toEqual(['127.0.0.4', '127.0.0.4', '127.0.0.4']);
  });

  it('ignores Forwarded and X-Real-IP even from a trusted peer (only X-Forwarded-For is read)', async () => {
    const statuses: number[] = [];
    for (const headers of SPOOFS[4]![1].map((h, i) => [...h, ...SPOOFS[5]![1][i]!])) {
      statuses.push(await hit(proxy, TRUSTED, headers));
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(loggedIps(proxy, LIMIT)).toEqual([TRUSTED, TRUSTED, TRUSTED]);
  });
});

describe('client address on a socket that reports IPv4-mapped IPv6 addresses', () => {
  let origin: Origin;
  let proxy: TestProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    // An IPv6 socket bound to the mapped loopback address: IPv4 peers show as ::ffff:127.0.0.x.
    proxy = await startTestProxy({ upstream: origin.url, host: '::ffff:127.0.0.1' });
    await putRule(proxy, 'one-client', { match: { ip: '127.0.0.40' }, limit: '2/h' });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });

  it('matches an IPv4 rule against the mapped socket address', async () => {
    const statuses: number[] = [];
    // Connect over IPv4; the server's IPv6 socket sees ::ffff:127.0.0.40.
    const ipv4 = `http://127.0.0.1:${new URL(proxy.url).port}`;
    for (let i = 0; i < 3; i++) statuses.push(await hit(proxy, '127.0.0.40', [], ipv4));
    expect(statuses).toEqual([200, 200, 429]);
    expect(loggedIps(proxy, 2)).toEqual(['::ffff:127.0.0.40', '::ffff:127.0.0.40']);
    // Another client on the same socket family is not that rule's business.
    expect(await hit(proxy, '127.0.0.41', [], ipv4)).toBe(200);
  });
});
