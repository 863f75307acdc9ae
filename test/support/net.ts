/**
 * Raw HTTP/1.1 over a TCP socket, for what fetch and node:http would "fix" on the way out:
 * absolute-form targets, CONNECT, odd Host headers, exact percent-encoding, keep-alive control,
 * and a chosen local address (127.0.0.2 …) to appear as another client.
 *
 *   rawRequest(url, bytes, opts)   one request on a fresh connection; resolves with the parsed response
 *   RawConnection.open(url, opts)  a connection kept open: send() any bytes, readResponse() one at a time
 */
import { type Agent, type IncomingHttpHeaders, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface RawResponse {
  httpVersion: string;
  status: number;
  statusText: string;
  /** Lower-cased names; repeated fields joined with ', ' (set-cookie kept apart in rawHeaders). */
  headers: Record<string, string>;
  /** [name, value, …] exactly as received. */
  rawHeaders: string[];
  body: Buffer;
  /** Header block as text, for assertions on casing. */
  head: string;
}

export interface RawOptions {
  /** Bind the client side to this address, e.g. 127.0.0.2 to appear as another peer. */
  localAddress?: string;
  /** Give up (reject) after this many milliseconds (default 5000). */
  timeoutMs?: number;
}

export interface ReadOptions {
  /** The response answers a HEAD request: no body whatever the headers say. */
  head?: boolean;
  timeoutMs?: number;
}

export class ConnectionClosedError extends Error {
  constructor(
    message: string,
    readonly received: Buffer,
  ) {
    super(message);
    this.name = 'ConnectionClosedError';
  }
}

function hostPort(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(parsed.port) };
}

/** One keep-alive-capable connection with its own read buffer. */
export class RawConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private ended = false;
  private error: Error | undefined;
  /** Readers waiting for more data or the end (a connection may have several). */
  private readonly waiting = new Set<() => void>();

  private notify(): void {
    for (const wake of this.waiting) wake();
  }

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', (error) => {
      this.error = error;
      this.ended = true;
      this.notify();
    });
  }

  static open(url: string, options: RawOptions = {}): Promise<RawConnection> {
    const { host, port } = hostPort(url);
    return new Promise((resolve, reject) => {
      const socket = connect({
        host,
        port,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${url} timed out`));
      }, options.timeoutMs ?? 5000);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', reject);
        resolve(new RawConnection(socket));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /** Whether the peer has closed (or reset) the connection. */
  get closed(): boolean {
    return this.ended;
  }

  send(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(data, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Everything received and not yet consumed by readResponse(). */
  get pending(): Buffer {
    return this.buffer;
  }

  /** Waits until `ready()` holds or the connection ends; rejects on timeout. */
  private async waitFor(ready: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.ended) return;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `raw read timed out after ${timeoutMs} ms; received: ${this.buffer.toString('latin1').slice(0, 500)}`,
        );
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.waiting.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiting.add(wake);
      });
    }
  }

  /** Resolves when the peer closes the connection (true) or after timeoutMs (false). */
  async waitForClose(timeoutMs = 5000): Promise<boolean> {
    await this.waitFor(() => this.ended, timeoutMs).catch(() => undefined);
    return this.ended;
  }

  /** Reads and removes one complete response from the connection; skips 1xx interim responses. */
  async readResponse(options: ReadOptions = {}): Promise<RawResponse> {
    const timeoutMs = options.timeoutMs ?? 5000;
    for (;;) {
      await this.waitFor(() => this.buffer.indexOf('\r\n\r\n') !== -1, timeoutMs);
      const headEnd = this.buffer.indexOf('\r\n\r\n');
      if (headEnd === -1) {
        throw new ConnectionClosedError(
          `connection closed before a complete response head${this.error ? ` (${this.error.message})` : ''}`,
          this.buffer,
        );
      }
      const head = this.buffer.subarray(0, headEnd).toString('latin1');
      const [statusLine, ...lines] = head.split('\r\n');
      const statusMatch = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(statusLine ?? '');
      if (!statusMatch) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine)}`);
      const status = Number(statusMatch[2]);
      const rawHeaders: string[] = [];
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon);
        const value = line.slice(colon + 1).trim();
        rawHeaders.push(name, value);
        const lower = name.toLowerCase();
        headers[lower] = lower in headers ? `${headers[lower]}, ${value}` : value;
      }
      const rest = this.buffer.subarray(headEnd + 4);
      const response = (body: Buffer): RawResponse => ({
        httpVersion: statusMatch[1]!,
        status,
        statusText: statusMatch[3] ?? '',
        headers,
        rawHeaders,
        body,
        head,
      });

      if (status >= 100 && status < 200) {
        this.buffer = rest;
        continue;
      }
      if (options.head || status === 204 || status === 304) {
        this.buffer = rest;
        return response(Buffer.alloc(0));
      }
      if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
        for (;;) {
          const parsed = parseChunked(this.buffer, headEnd + 4);
          if (parsed) {
            this.buffer = this.buffer.subarray(parsed.end);
            return response(parsed.body);
          }
          if (this.ended) {
            throw new ConnectionClosedError('connection closed in the middle of a chunked body', this.buffer);
          }
          const have = this.buffer.length;
          await this.waitFor(() => this.buffer.length > have, timeoutMs);
        }
      }
      const length = headers['content-length'];
      if (length !== undefined) {
        const size = Number(length);
        await this.waitFor(() => this.buffer.length >= headEnd + 4 + size, timeoutMs);
        if (this.buffer.length < headEnd + 4 + size) {
          throw new ConnectionClosedError(
            `connection closed after ${this.buffer.length - headEnd - 4} of ${size} body bytes`,
            this.buffer,
          );
        }
        const body = this.buffer.subarray(headEnd + 4, headEnd + 4 + size);
        this.buffer = this.buffer.subarray(headEnd + 4 + size);
        return response(body);
      }
      // No framing: the body runs until the connection closes.
      await this.waitFor(() => false, timeoutMs);
      const body = this.buffer.subarray(headEnd + 4);
      this.buffer = Buffer.alloc(0);
      return response(body);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Decodes a complete chunked body starting at `start`; undefined while it is incomplete. */
function parseChunked(buffer: Buffer, start: number): { body: Buffer; end: number } | undefined {
  const parts: Buffer[] = [];
  let offset = start;
  for (;;) {
    const lineEnd = buffer.indexOf('\r\n', offset);
    if (lineEnd === -1) return undefined;
    const size = Number.parseInt(buffer.subarray(offset, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) throw new Error(`bad chunk size line at byte ${offset}`);
    if (size === 0) {
      // "0\r\n" then optional trailer lines, then an empty line.
      const trailerEnd = buffer.indexOf('\r\n\r\n', lineEnd);
      if (trailerEnd === -1) return undefined;
      return { body: Buffer.concat(parts), end: trailerEnd + 4 };
    }
    if (buffer.length < lineEnd + 2 + size + 2) return undefined;
    parts.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
}

/** Sends `data` on a fresh connection and reads one response; the connection is closed afterwards. */
export async function rawRequest(
  url: string,
  data: string | Buffer,
  options: RawOptions & ReadOptions = {},
): Promise<RawResponse> {
  const connection = await RawConnection.open(url, options);
  try {
    await connection.send(data);
    return await connection.readResponse(options);
  } finally {
    connection.close();
  }
}

/** `GET <target>` with a Host header naming the server (or `host`), built as one raw request. */
export function rawGet(target: string, host: string, extraHeaders: string[] = [], method = 'GET'): string {
  return [`${method} ${target} HTTP/1.1`, `Host: ${host}`, ...extraHeaders, '', ''].join('\r\n');
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string | string[]> | string[];
  /** A whole body, or a stream / generator of chunks (sent chunked unless a content-length is set). */
  body?: string | Buffer | Readable | AsyncIterable<Buffer | string>;
  localAddress?: string;
  /** Default false: a fresh connection per request. */
  agent?: Agent | false;
  timeoutMs?: number;
}

export interface HttpResult {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  /** Body as JSON (throws when it is not). */
  json<T = unknown>(): T;
}

/**
 * One request with node:http, which sends the path as given (no normalisation, no decoding) and
 * never decompresses. Rejects when the response is cut before its end.
 */
export function httpRequest(baseUrl: string, target: string, options: HttpOptions = {}): Promise<HttpResult> {
  const { host, port } = hostPort(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request({
      host,
      port,
      method: options.method ?? 'GET',
      path: target,
      headers: options.headers,
      agent: options.agent ?? false,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    const timer = setTimeout(
      () => req.destroy(new Error(`${options.method ?? 'GET'} ${target} timed out`)),
      options.timeoutMs ?? 10_000,
    );
    req.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      res.once('end', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body,
          json: <T>() => JSON.parse(body.toString('utf8')) as T,
        });
      });
      res.once('close', () => {
        if (!res.complete) {
          clearTimeout(timer);
          reject(new Error(`response to ${target} was cut after ${Buffer.concat(chunks).length} bytes`));
        }
      });
    });
    const body = options.body;
    if (body === undefined) {
      req.end();
    } else if (typeof body === 'string' || Buffer.isBuffer(body)) {
      req.end(body);
    } else {
      pipeline(Readable.from(body), req).catch((error: unknown) => req.destroy(error as Error));
    }
  });
}
