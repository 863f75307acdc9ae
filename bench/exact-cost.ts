/**
 * What exact shared counting costs per request: one `meli-proxy serve` on a real PostgreSQL and a
 * real Redis (started here, as the tests start them), one keep-alive connection, requests one after
 * another, against three rule sets on the same path: none, an approximate rule, an exact one.
 * The added latency of the exact rule over the approximate one is its store round trip.
 *
 *   node --import tsx bench/exact-cost.ts [--requests 2000]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { createDatabase, startPostgres } from '../test/support/postgres.js';
import { startRedis } from '../test/support/redis.js';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '2000' } } });
const REQUESTS = Number(values.requests);
const BIN = path.resolve('bin/meli-proxy.js');

const RULE_SETS: Record<string, string> = {
  'no rule': 'limits: []\n',
  approximate: 'limits:\n  - { id: r, limit: 1000000000/d, counting: approximate }\n',
  exact: 'limits:\n  - { id: r, limit: 1000000000/d, counting: exact }\n',
};

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function serve(store: string, config: string, origin: string): Promise<{ url: string; stop(): void }> {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'serve',
      '--store',
      store,
      '--config',
      config,
      '--upstream',
      origin,
      '--port',
      '0',
      '--admin-port',
      '0',
      '--access-log',
      'off',
      '--workers',
      '1',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const match =
        /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(buffered) ??
        /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(buffered);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${buffered}`)));
  });
  return { url, stop: () => child.kill('SIGTERM') };
}

async function measure(url: string): Promise<{ p50: number; p99: number }> {
  const pool = new Pool(url, { connections: 1 });
  const times: number[] = [];
  try {
    for (let i = 0; i < REQUESTS + 200; i++) {
      const started = process.hrtime.bigint();
      const response = await pool.request({ path: '/items/MLA1', method: 'GET' });
      await response.body.dump();
      if (response.statusCode !== 200) throw new Error(`answered ${response.statusCode}`);
      if (i >= 200) times.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  } finally {
    await pool.close();
  }
  times.sort((a, b) => a - b);
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
}

const dir = mkdtempSync(path.join(tmpdir(), 'exact-cost-'));
const origin = createServer((_, res) => res.end('{"id":"MLA1"}')).listen(0, '127.0.0.1');
await new Promise((resolve) => origin.once('listening', resolve));
const originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
const postgres = await startPostgres();
const redis = await startRedis();
try {
  const db = await createDatabase(postgres.url);
  const stores = { PostgreSQL: db.url, Redis: redis.url };
  await new Promise<void>((resolve, reject) => {
    const migrate = spawn(process.execPath, [BIN, 'migrate', '--store', db.url], { stdio: 'inherit' });
    migrate.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`migrate exited ${code}`))));
  });
  console.log(`${REQUESTS} sequential requests on one keep-alive connection, after 200 warm-up; ms`);
  for (const [storeName, storeUrl] of Object.entries(stores)) {
    for (const [name, rules] of Object.entries(RULE_SETS)) {
      const config = path.join(dir, `${name.replace(' ', '-')}.yaml`);
      writeFileSync(config, rules);
      const proxy = await serve(storeUrl, config, originUrl);
      try {
        const { p50, p99 } = await measure(proxy.url);
        console.log(
          `${storeName.padEnd(10)} ${name.padEnd(12)} p50 ${p50.toFixed(3)}  p99 ${p99.toFixed(3)}`,
        );
      } finally {
        proxy.stop();
      }
    }
  }
} finally {
  origin.close();
  await redis.dispose();
  await postgres.stop();
  rmSync(dir, { recursive: true, force: true });
}
