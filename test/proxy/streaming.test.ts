/**
 * Bodies stream through the proxy with backpressure both ways: a 50 MB download and a 50 MB upload
 * arrive intact while the proxy's resident memory grows by a small fraction of the body size, and
 * a client (or origin) that stops reading stalls the other side instead of filling the proxy.
 *
 * The proxy runs as the real CLI in a child process and its RSS is read from /proc/<pid>/status.
 * A tiny preload in the child collects garbage every 10 ms (a scavenge, and a full GC every 200 ms)
 * so that RSS tracks live memory: without it a well-behaved stream still shows +30..60 MB of dead
 * 64 KB chunks (V8 only collects when external memory has grown by ~64 MB), which would hide the
 * difference between streaming and buffering a 50 MB body. Measured with it: +0..17 MB.
 */
import { createHash } from 'node:crypto';
import { get, type IncomingMessage, request } from 'node:http';
import { describe, expect, it, onTestFinished } from 'vitest';
import { bigBodyDigest } from '../peers/origin.js';
import {
  type CliProcess,
  HANG_DEADLINE_MS,
  serveArgs,
  spawnCli,
  useOriginAndDataDir,
} from '../support/proxy.js';

const MB = 1024 * 1024;
/** Growth allowed while moving a 50 MB body: a buffering proxy needs at least the body size. */
const RSS_BUDGET = 30 * MB;
const GC_TICKER = [
  '--expose-gc',
  '--import',
  'data:text/javascript,let n=0;setInterval(()=>{n+=1;if(n>=20){n=0;globalThis.gc()}else globalThis.gc({type:"minor"})},10).unref()',
];

interface RssSampler {
  /** Highest RSS growth over the baseline so far, in bytes. */
  growth(): number;
  stop(): number;
}

function sampleRss(cli: CliProcess): RssSampler {
  const base = cli.rss();
  let peak = base;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, cli.rss());
    } catch {
      // the process is gone; the test will say why
    }
  }, 5);
  return {
    growth: () => peak - base,
    stop: () => {
      clearInterval(timer);
      return peak - base;
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Resolves with `read()` once it has not changed for `quietMs` (the transfer stalled), or rejects
 * after `timeoutMs` of continued progress. Polling instead of fixed sleeps keeps this meaningful on
 * a loaded machine, where the buffers along the way take longer to fill.
 */
async function stalledAt(
  read: () => number,
  what: string,
  quietMs = 300,
  timeoutMs = 10_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = read();
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(25);
    const now = read();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return now;
    }
  }
  throw new Error(
    `${what} never stalled: still moving at ${(last / MB).toFixed(1)} MB after ${timeoutMs} ms`,
  );
}

/** A deterministic body of `bytes`, produced chunk by chunk as the socket accepts it. */
function uploadBody(bytes: number): { chunks: () => Generator<Buffer>; digest: string } {
  const block = Buffer.alloc(256 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + (i >> 8)) & 0xff;
  const chunks = function* () {
    let left = bytes;
    while (left > 0) {
      const size = Math.min(left, block.length);
      left -= size;
      yield size === block.length ? block : block.subarray(0, size);
    }
  };
  const hash = createHash('sha256');
  for (const chunk of chunks()) hash.update(chunk);
  return { chunks, digest: hash.digest('hex') };
}

interface Upload {
  /** Bytes the proxy has accepted so far (handed to the socket without it asking to wait). */
  readonly written: number;
  response: Promise<{ status: number; body: string }>;
  abort(): void;
}

function startUpload(url: string, target: string, bytes: number, chunks: Generator<Buffer>): Upload {
  let written = 0;
  const req = request(new URL(target, url), {
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes) },
  });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.once('error', reject);
    });
  });
  // A test that fails early kills the proxy under an upload still running: not an unhandled rejection.
  response.catch(() => undefined);
  const pump = (): void => {
    for (;;) {
      const next = chunks.next();
      if (next.done) {
        req.end();
        return;
      }
      written += next.value.length;
      if (!req.write(next.value)) {
        req.once('drain', pump);
        return;
      }
    }
  };
  pump();
  return {
    get written() {
      return written;
    },
    response,
    abort: () => req.destroy(),
  };
}

describe('streaming through the CLI proxy', () => {
  const fixture = useOriginAndDataDir();

  /** A fresh proxy per test, warmed up, so each RSS baseline is its own. */
  async function freshProxy(): Promise<CliProcess> {
    const cli = await spawnCli(
      serveArgs(
        fixture.origin.url,
        fixture.dir,
        '--access-log',
        'off',
        // These tests move up to 200 MB; the body limit (default 64 MB) has its own suite.
        '--max-body',
        '0',
      ),
      {},
      { nodeArgs: GC_TICKER },
    );
    // A failed assertion must not leave a proxy (and the transfer through it) running into the next test.
    onTestFinished(() => {
      if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
    });
    for (let i = 0; i < 20; i++) await fetch(`${cli.url}/items/MLA${i}`).then((r) => r.arrayBuffer());
    await fetch(`${cli.url}/big?bytes=${2 * MB}`).then((r) => r.arrayBuffer());
    await sleep(100);
    return cli;
  }

  it('streams a 50 MB download intact with flat memory', async () => {
    const cli = await freshProxy();
    const bytes = 50 * MB;
    const rss = sampleRss(cli);
    const result = await new Promise<{ length: number; digest: string; headers: IncomingMessage['headers'] }>(
      (resolve, reject) => {
        get(`${cli.url}/big?bytes=${bytes}&length=1`, { agent: false }, (res) => {
          const hash = createHash('sha256');
          let length = 0;
          res.on('data', (chunk: Buffer) => {
            hash.update(chunk);
            length += chunk.length;
          });
          res.once('end', () => resolve({ length, digest: hash.digest('hex'), headers: res.headers }));
          res.once('error', reject);
        }).once('error', reject);
      },
    );
    const growth = rss.stop();
    expect(result.headers['content-length']).toBe(String(bytes));
    expect(result.length).toBe(bytes);
    expect(result.digest).toBe(bigBodyDigest(bytes));
    expect(growth, `RSS grew by ${(growth / MB).toFixed(1)} MB`).toBeLessThan(RSS_BUDGET);
    expect(await cli.stop()).toBe(0);
  }, 60_000);

  it('streams a 50 MB upload intact with flat memory', async () => {
    const cli = await freshProxy();
    const bytes = 50 * MB;
    const body = uploadBody(bytes);
    const rss = sampleRss(cli);
    const upload = startUpload(cli.url, '/echo', bytes, body.chunks());
    const response = await upload.response;
    const growth = rss.stop();
    expect(response.status).toBe(200);
    const echoed = JSON.parse(response.body) as { bodyLength: number; bodySha256: string; chunks: number };
    expect(echoed.bodyLength).toBe(bytes);
    expect(echoed.bodySha256).toBe(body.digest);
    // It arrived as a stream of pieces, not as one buffered block.
    expect(echoed.chunks).toBeGreaterThan(50);
    expect(growth, `RSS grew by ${(growth / MB).toFixed(1)} MB`).toBeLessThan(RSS_BUDGET);
    expect(await cli.stop()).toBe(0);
  }, 60_000);

  it('stalls the origin while the client does not read, and stops it when the client leaves', async () => {
    const cli = await freshProxy();
    fixture.origin.reset();
    const bytes = 200 * MB;
    const rss = sampleRss(cli);
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      get(`${cli.url}/big?bytes=${bytes}`, { agent: false }, resolve).once('error', reject);
    });
    res.pause();
    onTestFinished(() => {
      res.destroy();
    });
    // Without backpressure the proxy would read all 200 MB (≈100 MB/s here) into its memory.
    const stalled = await stalledAt(() => fixture.origin.bigBytesSent, 'the origin');
    const growthWhilePaused = rss.growth();
    expect(stalled, `origin sent ${(stalled / MB).toFixed(1)} MB`).toBeLessThan(100 * MB);
    expect(growthWhilePaused, `RSS grew by ${(growthWhilePaused / MB).toFixed(1)} MB`).toBeLessThan(
      RSS_BUDGET,
    );

    // Read slowly for a while: the stream moves on, memory stays flat.
    let received = 0;
    res.on('data', (chunk: Buffer) => {
      received += chunk.length;
      res.pause();
      setTimeout(() => res.resume(), 1);
    });
    res.resume();
    await expect.poll(() => received, { timeout: 20_000, interval: 20 }).toBeGreaterThan(stalled + 10 * MB);
    expect(fixture.origin.bigBytesSent).toBeGreaterThan(stalled);

    res.destroy();
    await expect.poll(() => fixture.origin.requests[0]?.aborted, { timeout: HANG_DEADLINE_MS }).toBe(true);
    const growth = rss.stop();
    expect(fixture.origin.bigBytesSent).toBeLessThan(bytes);
    expect(growth, `RSS grew by ${(growth / MB).toFixed(1)} MB`).toBeLessThan(RSS_BUDGET);
    // The proxy is fine afterwards.
    expect((await fetch(`${cli.url}/items/MLA1`)).status).toBe(200);
    expect(await cli.stop()).toBe(0);
  }, 60_000);

  it('stalls the client upload while the origin does not read, then delivers it whole', async () => {
    const cli = await freshProxy();
    const bytes = 80 * MB;
    const body = uploadBody(bytes);
    const rss = sampleRss(cli);
    // The origin does not read the body until the test releases it.
    const upload = startUpload(cli.url, '/echo?hold=stalled-upload', bytes, body.chunks());
    onTestFinished(() => upload.abort());
    const stalled = await stalledAt(() => upload.written, 'the client upload');
    const growthWhileStalled = rss.growth();
    // Without backpressure the proxy would take the whole body into its memory.
    expect(stalled, `client wrote ${(stalled / MB).toFixed(1)} MB`).toBeLessThan(60 * MB);
    expect(growthWhileStalled, `RSS grew by ${(growthWhileStalled / MB).toFixed(1)} MB`).toBeLessThan(
      RSS_BUDGET,
    );
    fixture.origin.release('stalled-upload');

    const response = await upload.response;
    const growth = rss.stop();
    const echoed = JSON.parse(response.body) as { bodyLength: number; bodySha256: string };
    expect(echoed.bodyLength).toBe(bytes);
    expect(echoed.bodySha256).toBe(body.digest);
    expect(growth, `RSS grew by ${(growth / MB).toFixed(1)} MB`).toBeLessThan(RSS_BUDGET);
    expect(await cli.stop()).toBe(0);
  }, 60_000);
});
