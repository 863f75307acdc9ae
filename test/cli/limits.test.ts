/**
 * `meli-proxy limits set|list|rm|test` through runCli with injected IO: against the real server in
 * this process (memory store, an admin token), and straight into a store with `--store` (embedded in
 * a temp data dir, and PostgreSQL). Traffic goes over real sockets to the stand-in origin.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashToken } from '../../src/limits/index.js';
import { listStoredRules } from '../../src/limits/rule-store.js';
import { MIGRATIONS, openStore } from '../../src/store/index.js';
import {
  ADMIN_TOKEN,
  admin,
  adminRules,
  Clients,
  cli,
  expectExit,
  expectRejectedBy,
  statusCounts,
} from '../limits-e2e/helpers.js';
import { closedPort, type Origin, startOrigin } from '../peers/origin.js';
import { type TestDatabase, testDatabase } from '../support/postgres.js';
import { WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';

describe.each(WORKER_MODES)('limits against a running proxy ($name)', (mode) => {
  let origin: Origin;
  let proxy: ServedProxy;
  let env: Record<string, string>;
  const clients = new Clients();

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startServeProxy(mode, { upstream: origin.url, adminToken: ADMIN_TOKEN, accessLog: false });
    env = { MELI_PROXY_ADMIN_URL: proxy.adminUrl, MELI_PROXY_ADMIN_TOKEN: ADMIN_TOKEN };
  });

  afterAll(async () => {
    await clients.close();
    await proxy?.close();
    await origin?.close();
  });

  describe('limits through the admin API', () => {
    // The cases share one proxy: one that fails half-way must not leave its rules to the next.
    afterEach(async () => {
      const left = await adminRules(proxy.adminUrl);
      if (left.length > 0) expectExit(await cli(['limits', 'rm', ...left.map((rule) => rule.id)], env), 0);
    });

    it('sets the classic rules with one command each, lists them, tests a request and removes them', async () => {
      const classic = [
        ['ip-152', '--ip', '152.152.152.152', '--limit', '1000/m'],
        ['categories', '--path', '/categories/*', '--limit', '10000/m'],
        ['ip-items', '--ip', '152.152.152.152', '--path', '/items/*', '--limit', '10/m'],
        ['items-per-ip', '--path', '/items/*', '--by', 'ip', '--limit', '100/m', '--mode', 'shadow'],
      ];
      for (const args of classic) {
        const result = await cli(['limits', 'set', ...args], env);
        expectExit(result, 0);
        expect(result.stderr).toBe('');
      }
      const last = await cli(
        ['limits', 'set', 'ip-items', '--ip', '152.152.152.152', '--path', '/items/*', '--limit', '10/m'],
        env,
      );
      expect(last.stdout).toBe(
        'Saved rule "ip-items": ip=152.152.152.152 path=/items/* · 10/1m · enforce\n' +
          `In force now on the proxy at ${proxy.adminUrl}; its other replicas pick it up within about a second.\n`,
      );

      const list = await cli(['limits', 'list'], env);
      expectExit(list, 0);
      const lines = list.stdout.split('\n');
      expect(lines[0]).toBe(`Rate-limit rules of the proxy at ${proxy.adminUrl}`);
      expect(lines[2]).toMatch(/^ID\s+MATCH\s+BY\s+LIMIT\s+BURST\s+MODE\s+SOURCE\s+MATCHED\s+REJECTED$/);
      expect(list.stdout).toMatch(
        /^categories\s+path=\/categories\/\*\s+-\s+10000\/1m\s+0\s+enforce\s+store\s+0\s+0$/m,
      );
      expect(list.stdout).toMatch(
        /^ip-152\s+ip=152\.152\.152\.152\s+-\s+1000\/1m\s+0\s+enforce\s+store\s+0\s+0$/m,
      );
      expect(list.stdout).toMatch(
        /^ip-items\s+ip=152\.152\.152\.152 path=\/items\/\*\s+-\s+10\/1m\s+0\s+enforce\s+store\s+0\s+0$/m,
      );
      expect(list.stdout).toMatch(
        /^items-per-ip\s+path=\/items\/\*\s+ip\s+100\/1m\s+0\s+shadow\s+store\s+0\s+0 \(shadow\)$/m,
      );

      const test = await cli(['limits', 'test', '--ip', '152.152.152.152', '--path', '/items/MLA1'], env);
      expectExit(test, 0);
      expect(test.stdout).toMatch(/^GET \/items\/MLA1 from 152\.152\.152\.152: 3 rules match$/m);
      expect(test.stdout).toMatch(/^ip-152\s+enforce\s+1000\/1m\s+ip-152\s+0\s+1,000\s+\d+ s$/m);
      expect(test.stdout).toMatch(/^ip-items\s+enforce\s+10\/1m\s+ip-items\s+0\s+10\s+\d+ s$/m);
      expect(test.stdout).toMatch(
        /^items-per-ip\s+shadow\s+100\/1m\s+items-per-ip\|152\.152\.152\.152\s+0\s+100\s+\d+ s$/m,
      );
      expect(test.stdout).toContain('The next such request would be let through.');
      const none = await cli(['limits', 'test', '--ip', '10.0.0.1', '--path', '/users/1'], env);
      expect(none.stdout).toBe(
        'GET /users/1 from 10.0.0.1: no rule matches; such requests are not rate limited.\n',
      );

      const rm = await cli(['limits', 'rm', 'ip-152', 'categories', 'ip-items', 'items-per-ip'], env);
      expectExit(rm, 0);
      expect(rm.stdout).toContain(`Removed rule "ip-152" from the proxy at ${proxy.adminUrl}.`);
      expect(await adminRules(proxy.adminUrl)).toEqual([]);
      const empty = await cli(['limits', 'list'], env);
      expect(empty.stdout).toContain('No rate-limit rules.');

      const again = await cli(['limits', 'rm', 'ip-152'], env);
      expectExit(again, 1);
      expect(again.stderr).toBe(
        `meli-proxy: error: no rule "ip-152" in the proxy at ${proxy.adminUrl} (\`meli-proxy limits list\` shows the rules).\n`,
      );
    });

    it('shows live counts: matched/rejected in list, used/remaining in test, both also as --json', async () => {
      expectExit(
        await cli(['limits', 'set', 'me', '--ip', '127.0.0.1', '--path', '/users/*', '--limit', '3/h'], env),
        0,
      );
      const hits = await clients.burst(proxy.url, '/users/12345', 4, { concurrency: 1 });
      expect(hits.map((hit) => hit.status)).toEqual([200, 200, 200, 429]);
      expectRejectedBy(hits[3]!, 'me', 3, 3600);

      const list = await cli(['limits', 'list'], env);
      expect(list.stdout).toMatch(
        /^me\s+ip=127\.0\.0\.1 path=\/users\/\*\s+-\s+3\/1h\s+0\s+enforce\s+store\s+4\s+1$/m,
      );
      const listJson = await cli(['limits', 'list', '--json'], env);
      expectExit(listJson, 0);
      expect(JSON.parse(listJson.stdout)).toEqual(await admin(proxy.adminUrl, '/admin/limits'));
      expect(JSON.parse(listJson.stdout).rules).toEqual([
        {
          id: 'me',
          match: { ip: ['127.0.0.1'], path: ['/users/*'] },
          limit: '3/1h',
          source: 'store',
          matched: 4,
          rejected: 1,
          shadowExceeded: 0,
        },
      ]);

      const test = await cli(
        ['limits', 'test', '--ip', '127.0.0.1', '--path', '/users/777', '--method', 'get'],
        env,
      );
      expect(test.stdout).toMatch(/^me\s+enforce\s+3\/1h\s+me\s+3\s+0\s+\d+ s$/m);
      expect(test.stdout).toContain('The next such request would be rejected (429) by me.');
      const testJson = await cli(
        ['limits', 'test', '--ip', '127.0.0.1', '--path', '/users/777', '--json'],
        env,
      );
      // The window moves on between the two answers: the seconds to its reset may differ by the time taken.
      const withoutReset = (answer: { matches: Array<Record<string, unknown>> }) =>
        answer.matches.map(({ resetSeconds, ...rest }) => {
          expect(resetSeconds).toEqual(expect.any(Number));
          return rest;
        });
      expect(withoutReset(JSON.parse(testJson.stdout))).toEqual(
        withoutReset(await admin(proxy.adminUrl, '/admin/limits/test?ip=127.0.0.1&path=/users/777')),
      );
      expect(JSON.parse(testJson.stdout).matches[0]).toMatchObject({
        id: 'me',
        used: 3,
        remaining: 0,
        limit: 3,
        burst: 0,
      });
      expectExit(await cli(['limits', 'rm', 'me'], env), 0);
    });

    it('GET /admin/limits/test refuses a repeated parameter with 400 naming it; header may repeat', async () => {
      const get = async (query: string) => {
        const response = await fetch(`${proxy.adminUrl}/admin/limits/test?${query}`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const base = {
        ip: '10.0.0.1',
        path: '/x',
        method: 'GET',
        token: 'sekrit-repeat-1',
        tokenHash: 'a'.repeat(64),
      };
      for (const name of ['ip', 'path', 'method', 'token', 'tokenHash'] as const) {
        const params = new URLSearchParams({ ip: base.ip, path: base.path });
        params.delete(name);
        params.append(name, base[name]);
        params.append(name, name === 'tokenHash' ? 'b'.repeat(64) : `${base[name]}2`);
        const answer = await get(params.toString());
        expect(answer.status, name).toBe(400);
        expect(answer.body).toEqual({
          message: `Give ${name} at most once (only header may repeat).`,
          error: 'bad_request',
          status: 400,
          cause: [],
        });
      }
      const headers = await get('ip=10.0.0.1&path=/x&method=get&header=x-a%3D1&header=x-b%3D2');
      expect(headers).toEqual({ status: 200, body: { matches: [] } });
    });

    it('sends only the SHA-256 of a --token, for set and for test', async () => {
      const token = 'APP_USR-very-secret-token-4821';
      const sent: string[] = [];
      const realFetch = globalThis.fetch;
      const spy = vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
        sent.push(`${String(input)} ${String(init?.body ?? '')} ${JSON.stringify(init?.headers ?? {})}`);
        return realFetch(input, init);
      });
      try {
        const set = await cli(
          ['limits', 'set', 'tok', '--token', token, '--header', 'x-client-id', '--limit', '5/m'],
          env,
        );
        expectExit(set, 0);
        expect(set.stdout).toContain(`token=sha256:${hashToken(token).slice(0, 12)}…`);
        const test = await cli(
          [
            'limits',
            'test',
            '--ip',
            '10.1.1.1',
            '--path',
            '/x',
            '--header',
            'x-client-id=abc',
            '--token',
            token,
          ],
          env,
        );
        expectExit(test, 0);
        expect(test.stdout).toMatch(/^tok\s+enforce\s+5\/1m\s+tok\s+0\s+5\s+\d+ s$/m);
        const wrongToken = await cli(
          [
            'limits',
            'test',
            '--ip',
            '10.1.1.1',
            '--path',
            '/x',
            '--header',
            'x-client-id=abc',
            '--token',
            'other',
          ],
          env,
        );
        expect(wrongToken.stdout).toContain('no rule matches');
      } finally {
        spy.mockRestore();
      }
      expect(sent.length).toBeGreaterThanOrEqual(3);
      expect(sent.join('\n')).not.toContain(token);
      expect(sent.join('\n')).toContain(hashToken(token));
      const kept = JSON.stringify(await admin(proxy.adminUrl, '/admin/limits'));
      expect(kept).not.toContain(token);
      expect(kept).toContain(hashToken(token));
      expectExit(await cli(['limits', 'rm', 'tok'], env), 0);
    });

    it('takes repeated and comma-separated flags', async () => {
      const result = await cli(
        [
          'limits',
          'set',
          'multi',
          '--ip',
          '10.0.0.1,10.0.0.2',
          '--ip',
          '10.1.0.0/16',
          '--path',
          '/items/*',
          '--path',
          '/users/:id',
          '--method',
          'get,post',
          '--header',
          'x-client-id=abc',
          '--header',
          'x-team',
          '--by',
          'ip,header:x-client-id',
          '--by',
          'method',
          '--burst',
          '5',
          '--limit',
          '50/10s',
          '--json',
        ],
        env,
      );
      expectExit(result, 0);
      const expected = {
        id: 'multi',
        match: {
          ip: ['10.0.0.1', '10.0.0.2', '10.1.0.0/16'],
          path: ['/items/*', '/users/:id'],
          method: ['GET', 'POST'],
          header: ['x-client-id=abc', 'x-team'],
        },
        by: ['ip', 'header:x-client-id', 'method'],
        limit: '50/10s',
        burst: 5,
      };
      expect(JSON.parse(result.stdout)).toEqual({ rules: [expected] });
      const [listed] = await adminRules(proxy.adminUrl);
      expect(listed).toMatchObject({ ...expected, source: 'store' });
      expectExit(await cli(['limits', 'rm', 'multi'], env), 0);
    });

    it('saves several rules from --file (a list, or a config file with limits:) and --json-rule', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'limits-cli-'));
      try {
        writeFileSync(
          path.join(dir, 'rules.yaml'),
          [
            'limits:',
            '  - id: f-one',
            '    match: { ip: [10.0.0.0/8, 152.152.152.152] }',
            '    limit: 100/m',
            '  - id: f-two',
            "    match: { path: '/sites/*', method: GET }",
            '    by: [ip, header:x-client-id]',
            '    limit: 5/10s',
            '    burst: 2',
          ].join('\n'),
        );
        const file = await cli(['limits', 'set', '--file', 'rules.yaml', '--json'], env, dir);
        expectExit(file, 0);
        expect(JSON.parse(file.stdout)).toEqual({
          rules: [
            { id: 'f-one', match: { ip: ['10.0.0.0/8', '152.152.152.152'] }, limit: '100/1m' },
            {
              id: 'f-two',
              match: { path: ['/sites/*'], method: ['GET'] },
              by: ['ip', 'header:x-client-id'],
              limit: '5/10s',
              burst: 2,
            },
          ],
        });
        const json = await cli(
          [
            'limits',
            'set',
            'j-one',
            '--json-rule',
            '{"match":{"path":"/users/*"},"limit":"7/s","mode":"shadow"}',
          ],
          env,
        );
        expectExit(json, 0);
        expect(json.stdout).toContain('Saved rule "j-one": path=/users/* · 7/1s · shadow');
        expect((await adminRules(proxy.adminUrl)).map((rule) => rule.id)).toEqual([
          'f-one',
          'f-two',
          'j-one',
        ]);
        expectExit(await cli(['limits', 'rm', 'f-one', 'f-two', 'j-one'], env), 0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it.each([
      [
        ['bad', '--ip', '152.152.152.152', '--limit', '1000/min'],
        /--limit: rule "bad": invalid limit "1000\/min": expected N\/<window>/,
      ],
      [
        ['bad', '--ip', '300.1.1.1', '--limit', '1/m'],
        /--ip: rule "bad": invalid match\.ip\[0\] "300\.1\.1\.1": expected an IPv4\/IPv6 address or CIDR/,
      ],
      [
        ['bad', '--ip', '10.1.2.3/8', '--limit', '1/m'],
        /invalid match\.ip\[0\] "10\.1\.2\.3\/8".*did you mean 10\.0\.0\.0\/8/,
      ],
      [
        ['bad', '--path', 'items/*', '--limit', '1/m'],
        /--path: rule "bad": invalid match\.path\[0\] "items\/\*": expected a path pattern.*must start with "\/"/,
      ],
      [
        ['bad', '--by', 'country', '--limit', '1/m'],
        /--by: rule "bad": invalid by\[0\] "country": expected a list of ip, path, method, token or header:<name>/,
      ],
      [
        ['bad', '--mode', 'loud', '--limit', '1/m'],
        /--mode: rule "bad": invalid mode "loud": expected "enforce" \(the default\) or "shadow"/,
      ],
      [
        ['bad', '--burst', 'lots', '--limit', '1/m'],
        /--burst: rule "bad": invalid burst "lots": expected a whole number/,
      ],
      [['bad', '--ip', '1.2.3.4'], /--limit: rule "bad": missing limit: expected N\/<window>/],
      [['Bad_Id', '--limit', '1/m'], /^meli-proxy: error: rule: invalid id "Bad_Id": expected a slug/],
      [['bad', '--json-rule', '{"limit": 5'], /--json-rule is not valid JSON .*expected a rule such as/],
      [
        ['bad', '--json-rule', '{"limit":"5/m","match":{"ipp":"1.2.3.4"}}'],
        /--json-rule: rule "bad": invalid match\.ipp "1\.2\.3\.4": expected only the fields ip, path/,
      ],
      [
        ['bad', '--ip', '1.2.3.4', '--limit', '1/m', '--json-rule', '{}'],
        /--json-rule holds whole rules: drop --ip, --limit/,
      ],
      [['--limit', '1/m'], /Give the rule id, e\.g\. meli-proxy limits set ip-152/],
      // A rule that would limit every request must say so.
      [
        ['everything', '--limit', '1/m'],
        /Rule "everything" has no match condition .* add --all if that is what you want/,
      ],
      [
        ['narrow', '--all', '--ip', '1.2.3.4', '--limit', '1/m'],
        /--all means every request, but --ip narrows the rule/,
      ],
      [
        ['j', '--json-rule', '{"limit":"1/m"}'],
        /--json-rule \(rule "j"\) has no "match", so it would limit every request: add "match: \{\}"/,
      ],
      [['j', '--all', '--json-rule', '{"limit":"1/m","match":{}}'], /--all is for a rule given by flags/],
    ])('refuses a malformed rule with exit 2, naming the field: %j', async (args, message) => {
      const result = await cli(['limits', 'set', ...args], env);
      expectExit(result, 2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(message);
      expect(await adminRules(proxy.adminUrl)).toEqual([]);
    });

    it('never prints a token from a malformed rule', async () => {
      const result = await cli(['limits', 'set', 'bad', '--token', 'sekrit-abc', '--limit', 'often'], env);
      expectExit(result, 2);
      expect(result.stderr).toMatch(/invalid limit "often"/);
      expect(result.stderr).not.toContain('sekrit-abc');
    });

    it('never prints a token from a misspelled field or from --json-rule that is not JSON', async () => {
      const cases: Array<[string, RegExp]> = [
        ['{"match":{"tokens":"OAUTHSECRET99"},"limit":"5/m"}', /invalid match\.tokens "<redacted>"/],
        [
          '{"match":{"token":OAUTHSECRET99},"limit":"5/m"}',
          /not valid JSON \(Unexpected character at position 18 \(line 1 column 19\)\)/,
        ],
        [
          '{"match":{"token":"OAUTHSECRET99}',
          /not valid JSON \(Unterminated string in JSON at position 33( \(line 1 column 34\))?\)/,
        ],
        [
          '{"match":{"token":"OAUTHSECRET99"} "limit"}',
          /not valid JSON \(Expected ',' or '}' after property value/,
        ],
      ];
      for (const [json, message] of cases) {
        const result = await cli(['limits', 'set', 'bad', '--json-rule', json], env);
        expectExit(result, 2);
        expect(result.stderr, json).toMatch(message);
        expect(result.stderr, json).not.toContain('OAUTHSECRET');
      }
      const response = await fetch(`${proxy.adminUrl}/admin/limits/r1`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: '{"match":{"tokens":"SECRETTOKEN123"},"limit":"5/m"}',
      });
      expect(response.status).toBe(400);
      const body = await response.text();
      expect(body).toContain('invalid match.tokens \\"<redacted>\\"');
      expect(body).not.toContain('SECRETTOKEN123');
      expect(await adminRules(proxy.adminUrl)).toEqual([]);
    });

    it('answers a body that is not JSON in the admin API error shape, without quoting it', async () => {
      const response = await fetch(`${proxy.adminUrl}/admin/limits/r1`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: '{"match":{"token":SECRETTOKEN456},"limit":"5/m"}',
      });
      expect(response.status).toBe(400);
      const body = (await response.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ status: 400, error: 'bad_request', cause: [] });
      expect(typeof body.message).toBe('string');
      expect(JSON.stringify(body)).not.toContain('SECRETTOKEN456');
      expect(await adminRules(proxy.adminUrl)).toEqual([]);
    });

    it('refuses a malformed --file naming the file, the index and the field', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'limits-cli-'));
      try {
        writeFileSync(
          path.join(dir, 'r.yaml'),
          '- { id: ok, limit: 1/m }\n- { id: no, limit: 1/m, by: [ip, ip] }\n',
        );
        const result = await cli(['limits', 'set', '--file', 'r.yaml'], env, dir);
        expectExit(result, 2);
        expect(result.stderr).toContain(`${path.join(dir, 'r.yaml')}[1]: rule "no": invalid by[1] "ip"`);
        // A file that does not parse: where, but never the line itself (it may hold a token).
        writeFileSync(
          path.join(dir, 'broken.yaml'),
          '- { id: t, match: { token: OAUTHSECRET42 }, limit: 1/m\n',
        );
        const broken = await cli(['limits', 'set', '--file', 'broken.yaml'], env, dir);
        expectExit(broken, 2);
        expect(broken.stderr).toMatch(/broken\.yaml is not valid YAML or JSON: .*line \d+, column \d+/);
        expect(broken.stderr).not.toContain('OAUTHSECRET42');
        const missing = await cli(['limits', 'set', '--file', 'nope.yaml'], env, dir);
        expectExit(missing, 2);
        expect(missing.stderr).toContain(`Cannot read --file ${path.join(dir, 'nope.yaml')} (ENOENT)`);
        expect(await adminRules(proxy.adminUrl)).toEqual([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('exits 1 with a clear message on a wrong or missing admin token', async () => {
      for (const token of ['wrong-token-wrong-token', undefined]) {
        const result = await cli(['limits', 'list'], {
          MELI_PROXY_ADMIN_URL: proxy.adminUrl,
          ...(token ? { MELI_PROXY_ADMIN_TOKEN: token } : {}),
        });
        expectExit(result, 1);
        expect(result.stdout).toBe('');
        expect(result.stderr).toMatch(/^meli-proxy: error: admin token rejected: set MELI_PROXY_ADMIN_TOKEN/);
        expect(result.stderr).not.toContain('wrong-token');
      }
      const set = await cli(['limits', 'set', 'x', '--all', '--limit', '1/m'], {
        ...env,
        MELI_PROXY_ADMIN_TOKEN: 'nope-nope-nope-nope',
      });
      expectExit(set, 1);
    });

    it('exits 1 when no admin API answers, naming the URL', async () => {
      const port = await closedPort();
      for (const args of [
        ['list'],
        ['set', 'x', '--all', '--limit', '1/m'],
        ['rm', 'x'],
        ['test', '--ip', '1.2.3.4', '--path', '/x'],
      ]) {
        const result = await cli(['limits', ...args, '--admin-url', `http://127.0.0.1:${port}`], {
          MELI_PROXY_ADMIN_TOKEN: ADMIN_TOKEN,
        });
        expectExit(result, 1);
        expect(result.stderr).toBe(
          `meli-proxy: error: no proxy admin API at http://127.0.0.1:${port}: is \`meli-proxy serve\` running?\n`,
        );
      }
    });
  });

  describe('statuses of the same rules in traffic', () => {
    it('a rule set with --by ip counts each client separately', async () => {
      expectExit(
        await cli(['limits', 'set', 'per-ip', '--path', '/sites/*', '--by', 'ip', '--limit', '2/h'], env),
        0,
      );
      const a = await clients.burst(proxy.url, '/sites/MLA/search?q=a', 3, {
        from: '127.0.0.2',
        concurrency: 1,
      });
      const b = await clients.burst(proxy.url, '/sites/MLA/search?q=b', 3, {
        from: '127.0.0.3',
        concurrency: 1,
      });
      expect(statusCounts(a)).toEqual({ 200: 2, 429: 1 });
      expect(statusCounts(b)).toEqual({ 200: 2, 429: 1 });
      expectRejectedBy(b[2]!, 'per-ip', 2, 3600);
      expectExit(await cli(['limits', 'rm', 'per-ip'], env), 0);
    });
  });

  describe('limits for every request, and a request that is not one', () => {
    it('saves a rule with no condition only with --all, or with match: {} in a file', async () => {
      const flags = await cli(['limits', 'set', 'all-flags', '--all', '--by', 'ip', '--limit', '600/m'], env);
      expectExit(flags, 0);
      const dir = mkdtempSync(path.join(tmpdir(), 'limits-cli-'));
      try {
        writeFileSync(path.join(dir, 'all.yaml'), '- { id: all-file, match: {}, limit: 50000/s }\n');
        expectExit(await cli(['limits', 'set', '--file', 'all.yaml'], env, dir), 0);
        writeFileSync(
          path.join(dir, 'forgot.yaml'),
          '- { id: ok, match: { ip: 1.2.3.4 }, limit: 1/m }\n- { id: forgot, limit: 1/m }\n',
        );
        const forgot = await cli(['limits', 'set', '--file', 'forgot.yaml'], env, dir);
        expectExit(forgot, 2);
        expect(forgot.stderr).toContain(`${path.join(dir, 'forgot.yaml')}[1] (rule "forgot") has no "match"`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const ids = (await adminRules(proxy.adminUrl)).map((rule) => rule.id);
      expect(ids).toEqual(expect.arrayContaining(['all-flags', 'all-file']));
      expect(ids).not.toContain('ok');
      expectExit(await cli(['limits', 'rm', 'all-flags', 'all-file'], env), 0);
    });

    it('limits test refuses a client address that is none with exit 2, before asking the proxy', async () => {
      for (const ip of ['notanip', '1.2.3.4/8', '256.1.1.1', '']) {
        const result = await cli(['limits', 'test', '--ip', ip, '--path', '/items/MLA1'], {
          MELI_PROXY_ADMIN_URL: `http://127.0.0.1:${await closedPort()}`,
        });
        expectExit(result, 2);
        expect(result.stderr, ip).toContain(
          `Invalid --ip ${JSON.stringify(ip)}: expected the client address`,
        );
      }
    });
  });
});

describe('limits --store embedded', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'limits-embedded-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('writes documents.json in the data dir, lists without live counts, removes', async () => {
    const store = ['--store', 'embedded', '--data-dir', dataDir];
    const set = await cli(
      ['limits', 'set', 'ip-152', '--ip', '152.152.152.152', '--limit', '1000/m', ...store],
      {},
    );
    expectExit(set, 0);
    expect(set.stdout).toContain(
      `Saved in the embedded store in ${dataDir}: a proxy started with this data dir loads it.`,
    );
    expect(set.stderr).toMatch(
      /^note: a proxy already running on this data dir does not see changes made here/,
    );
    expectExit(
      await cli(['limits', 'set', 'tok', '--token', 'plain-token-xyz', '--limit', '1/s', ...store], {}),
      0,
    );
    const file = readFileSync(path.join(dataDir, 'documents.json'), 'utf8');
    expect(file).toContain('ip-152');
    expect(file).not.toContain('plain-token-xyz');

    // The data dir may come from the environment, like `serve` takes it.
    const list = await cli(['limits', 'list', '--store', 'embedded'], { MELI_PROXY_DATA_DIR: dataDir });
    expectExit(list, 0);
    expect(list.stdout).toContain(`Rate-limit rules of the embedded store in ${dataDir}`);
    expect(list.stdout).toMatch(/^ID\s+MATCH\s+BY\s+LIMIT\s+BURST\s+MODE\s+SOURCE$/m);
    expect(list.stdout).toMatch(/^ip-152\s+ip=152\.152\.152\.152\s+-\s+1000\/1m\s+0\s+enforce\s+store$/m);
    const json = JSON.parse((await cli(['limits', 'list', '--json', ...store], {})).stdout);
    expect(json.rules).toEqual([
      { id: 'ip-152', match: { ip: ['152.152.152.152'] }, limit: '1000/1m', source: 'store' },
      { id: 'tok', match: { tokenHash: [hashToken('plain-token-xyz')] }, limit: '1/1s', source: 'store' },
    ]);

    expectExit(await cli(['limits', 'rm', 'tok', ...store], {}), 0);
    const missing = await cli(['limits', 'rm', 'tok', ...store], {});
    expectExit(missing, 1);
    expect(missing.stderr).toContain(`no rule "tok" in the embedded store in ${dataDir}`);
  });

  it('`test` needs a running proxy: exit 2; --store memory is refused', async () => {
    const test = await cli(
      ['limits', 'test', '--ip', '1.2.3.4', '--path', '/x', '--store', 'embedded', '--data-dir', dataDir],
      {},
    );
    expectExit(test, 2);
    expect(test.stderr).toContain('`limits test` needs a running proxy');
    const memory = await cli(['limits', 'set', 'x', '--all', '--limit', '1/m', '--store', 'memory'], {});
    expectExit(memory, 2);
    expect(memory.stderr).toContain('--store memory keeps nothing');
  });
});

describe('limits --store postgres', () => {
  let db: TestDatabase;
  let password: string;
  beforeAll(async () => {
    db = await testDatabase();
    password = new URL(db.url).password;
  });
  afterAll(() => db?.drop());

  it('refuses an unmigrated database with exit 2 and the migrate hint, without the password', async () => {
    const result = await cli(['limits', 'list', '--store', db.url], {});
    expectExit(result, 2);
    expect(result.stderr).toContain(`needs ${MIGRATIONS.length} migration(s)`);
    expect(result.stderr).toContain('Run "meli-proxy migrate --store postgres://postgres:***@');
    expect(result.stderr).not.toContain(password);
  });

  it('sets, lists and removes rules in the store once migrated', async () => {
    expectExit(await cli(['migrate', '--store', db.url], {}), 0);
    const set = await cli(
      ['limits', 'set', 'categories', '--path', '/categories/*', '--limit', '10000/m', '--store', db.url],
      {},
    );
    expectExit(set, 0);
    expect(set.stdout).toContain('Saved in the store postgres://postgres:***@');
    expect(set.stdout).toContain('running proxies pick it up within about a second.');
    expect(set.stdout + set.stderr).not.toContain(password);

    const store = await openStore(db.url, { dataDir: '/nonexistent' });
    try {
      const { rules } = await listStoredRules(store.documents);
      expect(rules.map((rule) => rule.id)).toEqual(['categories']);
    } finally {
      await store.close();
    }
    const list = await cli(['limits', 'list', '--store', db.url], {});
    expect(list.stdout).toMatch(
      /^categories\s+path=\/categories\/\*\s+-\s+10000\/1m\s+0\s+enforce\s+store$/m,
    );
    expect(list.stdout).not.toContain(password);
    expectExit(await cli(['limits', 'rm', 'categories', '--store', db.url], {}), 0);
    expect(JSON.parse((await cli(['limits', 'list', '--json', '--store', db.url], {})).stdout)).toEqual({
      rules: [],
    });
  });

  it('exits 1 when PostgreSQL is unreachable and 2 for a malformed URL', async () => {
    const port = await closedPort();
    const down = await cli(['limits', 'list', '--store', `postgres://u:hunter22@127.0.0.1:${port}/db`], {});
    expectExit(down, 1);
    expect(down.stderr).toContain(`Cannot use the PostgreSQL store postgres://u:***@127.0.0.1:${port}/db`);
    expect(down.stderr).not.toContain('hunter22');
    const bad = await cli(['limits', 'list', '--store', 'postgres:hunter22@db'], {});
    expectExit(bad, 2);
    expect(bad.stderr).not.toContain('hunter22');
  });
});
