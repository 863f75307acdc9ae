/**
 * Slow-client attacks against meli-proxy and an nginx reverse proxy in front of the same origin,
 * with a well-behaved probe client measuring what everyone else gets meanwhile.
 *
 *   node --import tsx bench/attacks/run.ts [--duration S] [--only LIST] [--proxy-bin [label=]FILE,…]
 *
 * Attacks (slowhttptest, Debian's `slowhttptest` package, except `flood`):
 *   slow-body  -B: 150 connections, Content-Length 100000, a few bytes every 2 s
 *   slow-read  -X: 150 connections reading 32 bytes every 2 s of a 200 MB response, window ≤ 64 bytes
 *   slowloris  -H: 500 connections, a header line every 2 s
 *   flood      one client opens 500 connections, each asking for a response the origin holds 20 s
 * The probe (another client: it connects from 127.0.0.2) sends GET /small every 200 ms (5 s
 * timeout) from the start of each attack to its end and reports answered / sent and its latency. Nothing is installed or fetched; a missing tool is
 * named and the run stops (exit 2).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Options {
  durationS: number;
  only: string[];
  bins: Array<{ label: string; file: string }>;
}

const ATTACKS = ['slow-body', 'slow-read', 'slowloris', 'flood'] as const;
type Attack = (typeof ATTACKS)[number];

function parseOptions(argv: string[]): Options {
  const options: Options = {
    durationS: 20,
    only: [...ATTACKS],
    bins: [{ label: 'meli-proxy', file: 'bin/meli-proxy.js' }],
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--duration' && value) options.durationS = Number(value);
    else if (flag === '--only' && value) options.only = value.split(',');
    else if (flag === '--proxy-bin' && value) {
      options.bins = value.split(',').map((item) => {
        const [label, file] = item.includes('=') ? item.split('=') : ['meli-proxy', item];
        return { label: label!, file: file! };
      });
    } else {
      console.error(
        `Unknown option ${flag}. Usage: node --import tsx bench/attacks/run.ts [--duration S] [--only ${ATTACKS.join(',')}] [--proxy-bin [label=]FILE,…]`,
      );
      process.exit(2);
    }
    i++;
  }
  if (!(options.durationS >= 5)) {
    console.error('--duration must be at least 5 seconds');
    process.exit(2);
  }
  return options;
}

function requireTool(name: string): void {
  if (spawnSync('sh', ['-c', `command -v ${name}`]).status !== 0) {
    console.error(
      `${name} is not installed (Debian: apt-get install ${name === 'nginx' ? 'nginx-light' : name})`,
    );
    process.exit(2);
  }
}

const SMALL = Buffer.alloc(1024, 'a');
const BIG_BYTES = 200 * 1024 * 1024;

/** The origin: /small (1 KB), /big (200 MB, streamed with backpressure), /hold (answers after 20 s); bodies are drained. */
async function startOrigin(): Promise<{ server: Server; port: number }> {
  const chunk = Buffer.alloc(64 * 1024, 'b');
  const server = createServer((req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG_BYTES });
      let sent = 0;
      const pump = (): void => {
        while (sent < BIG_BYTES) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      res.on('close', () => {
        sent = BIG_BYTES;
      });
      pump();
      return;
    }
    const answer = (): void => {
      if (!res.destroyed) res.writeHead(200, { 'content-type': 'text/plain' }).end(SMALL);
    };
    if (path === '/hold') setTimeout(answer, 20_000).unref();
    else req.on('end', answer);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

interface Target {
  label: string;
  port: number;
  stop(): Promise<void>;
}

function waitForExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

async function startMeliProxy(label: string, file: string, originPort: number, dir: string): Promise<Target> {
  const child = spawn(
    process.execPath,
    [
      file,
      'serve',
      '--upstream',
      `http://127.0.0.1:${originPort}`,
      '--port',
      '0',
      '--admin-port',
      '0',
      '--workers',
      '1',
      '--store',
      'memory',
      '--data-dir',
      join(dir, label),
      '--access-log',
      'off',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (data: Buffer) => {
      text += data.toString();
      const match = /"msg":"proxy listening"/.test(text) && /"url":"http:\/\/[^"]*:(\d+)"/.exec(text);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`${label} exited with ${code} before listening`)));
  });
  child.stdout!.resume();
  return {
    label,
    port,
    stop: async () => {
      child.kill('SIGTERM');
      await waitForExit(child);
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** nginx as a reverse proxy with its defaults for slow clients (client_body_timeout, send_timeout 60 s). */
async function startNginx(originPort: number, dir: string): Promise<Target> {
  const port = await freePort();
  const prefix = join(dir, 'nginx');
  rmSync(prefix, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', join(prefix, 'logs')]);
  writeFileSync(
    join(prefix, 'nginx.conf'),
    `worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  upstream origin { server 127.0.0.1:${originPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off;'], {
    stdio: 'inherit',
  });
  for (let i = 0; i < 100; i++) {
    if (await probeOnce(port, 1000).then((r) => r.ok)) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    label: 'nginx',
    port,
    stop: async () => {
      child.kill('SIGQUIT');
      await waitForExit(child);
    },
  };
}

function probeOnce(port: number, timeoutMs: number): Promise<{ ok: boolean; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    // From another loopback address: the attackers' connections come from 127.0.0.1, and the
    // probe is another client, as it would be in production.
    const options = { host: '127.0.0.1', port, path: '/small', agent: false, localAddress: '127.0.0.2' };
    const req = request(options, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: res.statusCode === 200, ms: performance.now() - started }));
      res.on('error', () => resolve({ ok: false, ms: performance.now() - started }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ ok: false, ms: performance.now() - started }));
    req.end();
  });
}

interface ProbeResult {
  sent: number;
  answered: number;
  p50: number;
  max: number;
}

/** Probes every 200 ms until `stop` resolves; a probe counts when it got a 200 within 5 s. */
async function probe(port: number, stop: Promise<unknown>): Promise<ProbeResult> {
  let over = false;
  void stop.then(() => {
    over = true;
  });
  const pending: Array<Promise<{ ok: boolean; ms: number }>> = [];
  while (!over) {
    pending.push(probeOnce(port, 5000));
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const results = await Promise.all(pending);
  const times = results
    .filter((r) => r.ok)
    .map((r) => r.ms)
    .sort((a, b) => a - b);
  return {
    sent: results.length,
    answered: times.length,
    p50: times[Math.floor(times.length / 2)] ?? Number.NaN,
    max: times.at(-1) ?? Number.NaN,
  };
}

function slowhttptest(attack: Exclude<Attack, 'flood'>, port: number, durationS: number): ChildProcess {
  const url = `http://127.0.0.1:${port}`;
  const modes: Record<typeof attack, string[]> = {
    'slow-body': [
      '-B',
      '-c',
      '150',
      '-r',
      '150',
      '-i',
      '2',
      '-s',
      '100000',
      '-x',
      '10',
      '-u',
      `${url}/small`,
    ],
    'slow-read': [
      '-X',
      '-c',
      '150',
      '-r',
      '150',
      '-n',
      '2',
      '-w',
      '1',
      '-y',
      '64',
      '-z',
      '32',
      '-k',
      '1',
      '-u',
      `${url}/big`,
    ],
    slowloris: ['-H', '-c', '500', '-r', '250', '-i', '2', '-u', `${url}/small`],
  };
  return spawn('slowhttptest', [...modes[attack], '-l', String(durationS), '-p', '5'], { stdio: 'ignore' });
}

/** One client, 500 connections, each asking for a response the origin holds back. */
async function flood(port: number, durationS: number): Promise<void> {
  const sockets: Socket[] = [];
  for (let i = 0; i < 500; i++) {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    socket.write('GET /hold HTTP/1.1\r\nHost: bench\r\n\r\n');
    socket.resume();
    sockets.push(socket);
  }
  await new Promise((resolve) => setTimeout(resolve, durationS * 1000));
  for (const socket of sockets) socket.destroy();
}

async function runAttack(attack: Attack, target: Target, durationS: number): Promise<ProbeResult> {
  if (attack === 'flood') {
    const attacking = flood(target.port, durationS);
    // The attack takes a moment to be in place before the probe starts.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return probe(target.port, attacking);
  }
  const child = slowhttptest(attack, target.port, durationS);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const result = await probe(target.port, waitForExit(child));
  return result;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  requireTool('slowhttptest');
  requireTool('nginx');
  const dir = mkdtempSync(join(tmpdir(), 'meli-attacks-'));
  const origin = await startOrigin();
  const targets: Target[] = [await startNginx(origin.port, dir)];
  for (const bin of options.bins) targets.push(await startMeliProxy(bin.label, bin.file, origin.port, dir));
  const stopAll = async (): Promise<void> => {
    await Promise.all(targets.map((target) => target.stop()));
    origin.server.closeAllConnections();
    origin.server.close();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  console.log(`attacks of ${options.durationS} s each; probe: GET /small every 200 ms, 5 s timeout\n`);
  console.log('| attack | target | probes answered | probe p50 ms | probe max ms |');
  console.log('|---|---|---|---|---|');
  try {
    for (const attack of options.only as Attack[]) {
      if (!ATTACKS.includes(attack))
        throw new Error(`unknown attack ${attack}: one of ${ATTACKS.join(', ')}`);
      for (const target of targets) {
        const result = await runAttack(attack, target, options.durationS);
        const share = `${result.answered}/${result.sent}`;
        console.log(
          `| ${attack} | ${target.label} | ${share} | ${result.p50.toFixed(1)} | ${result.max.toFixed(1)} |`,
        );
        // Let the target shed the attack's connections before the next one.
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  } finally {
    await stopAll();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
