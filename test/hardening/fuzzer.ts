/**
 * The request generator and raw-socket client of fuzz.test.ts (and of anyone reproducing a run):
 *
 *   new Fuzzer(prng(seed), otherHost, maxBody).connection()  → [bytes, requests in them]
 *   fire(port, bytes)                                         → { status, hung }
 */
import { connect } from 'node:net';

/** Longest a connection may go without an answer or a close before it counts as hung. */
export const PER_CONNECTION_MS = 5000;
const HALF_CLOSE_MS = 300;
const QUIET_MS = 50;

/** mulberry32: small, fast, seedable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Fuzzer {
  /** Whether the request being built is meant to be well-formed (its content still random). */
  private sane = false;

  constructor(
    private readonly random: () => number,
    private readonly otherHost: string,
    private readonly maxBody: number,
  ) {}

  private int(max: number): number {
    return Math.floor(this.random() * max);
  }

  private chance(p: number): boolean {
    return this.random() < p;
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  private bytes(length: number, from = 0, to = 256): string {
    let text = '';
    for (let i = 0; i < length; i++) text += String.fromCharCode(from + this.int(to - from));
    return text;
  }

  private token(length: number): string {
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!#$&*+^`|';
    let text = '';
    for (let i = 0; i < length; i++) text += alphabet[this.int(alphabet.length)];
    return text;
  }

  method(): string {
    if (this.sane || this.chance(0.6))
      return this.pick(['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);
    return this.pick([
      'TRACE',
      'CONNECT',
      'PROPFIND',
      'get',
      'G ET',
      '',
      this.token(1 + this.int(12)),
      this.bytes(1 + this.int(8)),
    ]);
  }

  private segment(): string {
    switch (this.int(10)) {
      case 0:
        return '..';
      case 1:
        return '.';
      case 2:
        return `%${this.bytes(2, 0x30, 0x7a)}`;
      case 3:
        return '%2e%2e';
      case 4:
        return '%252e%252e%252f';
      case 5:
        return this.sane ? '%00%0d%0a' : this.bytes(1 + this.int(4), 0, 0x20);
      case 6:
        return this.sane ? '%c3%a9%ff' : this.bytes(1 + this.int(4), 0x80, 0x100);
      case 7:
        return this.pick(['admin', '%61dmin', 'health', 'metrics', 'ready', 'items', 'categories']);
      default:
        return this.token(1 + this.int(10));
    }
  }

  target(): string {
    if (this.sane && this.chance(0.3)) {
      return this.pick([
        '/items/MLA1',
        '/categories/MLA97994',
        '/sites/MLA/search?q=mochila',
        '/users/7',
        '/echo',
      ]);
    }
    const kind = this.sane ? 7 + this.int(13) : this.int(20);
    if (kind === 0) return '*';
    if (kind === 1) return this.otherHost;
    if (kind === 2) return this.bytes(1 + this.int(40));
    let path = '';
    const segments = 1 + this.int(6);
    for (let i = 0; i < segments; i++) path += `${this.chance(0.1) ? '//' : '/'}${this.segment()}`;
    if (this.chance(0.3))
      path += `?${this.token(1 + this.int(6))}=${this.segment()}&x=%${this.bytes(2, 0x30, 0x7a)}`;
    if (kind === 3) path = `${'/a'.repeat(9000)}`;
    if (kind === 4 || kind === 5) path = `http://${this.otherHost}${path}`;
    if (kind === 6) path = `https://${this.otherHost}${path}`;
    return path;
  }

  version(): string {
    if (this.sane || this.chance(0.85)) return 'HTTP/1.1';
    return this.pick([
      'HTTP/1.0',
      'HTTP/2.0',
      'HTTP/0.9',
      'HTTP/1.x',
      'http/1.1',
      '',
      'HTTP/1.1 junk',
      'HTTP/11',
    ]);
  }

  header(): string {
    const name =
      this.sane || this.chance(0.8)
        ? this.pick([
            'X-A',
            'Accept',
            'User-Agent',
            'Cookie',
            'X-Forwarded-For',
            'Forwarded',
            'Expect',
            'Connection',
            'Upgrade',
            'Authorization',
            'TE',
            'Trailer',
            'X-Request-Id',
            this.token(1 + this.int(20)),
          ])
        : this.bytes(1 + this.int(12), 0, 0x100);
    const value =
      this.sane || this.chance(0.8)
        ? this.pick([
            '1.2.3.4',
            'keep-alive',
            'close',
            'upgrade',
            '100-continue',
            'Bearer x',
            'for=1.2.3.4',
            this.token(this.int(40)),
          ])
        : this.bytes(this.int(40), 0, 0x100);
    return `${name}${this.sane ? ': ' : this.pick([': ', ':', ' : ', ':\t'])}${value}`;
  }

  private chunked(body: string): string {
    if (this.chance(0.2)) return `${this.bytes(1 + this.int(6), 0x30, 0x7a)}\r\n${body}\r\n0\r\n\r\n`;
    let out = '';
    for (let offset = 0; offset < body.length; ) {
      const size = 1 + this.int(body.length - offset);
      out += `${size.toString(16)}${this.chance(0.05) ? ';ext=1' : ''}\r\n${body.slice(offset, offset + size)}\r\n`;
      offset += size;
    }
    return `${out}0\r\n${this.chance(0.1) ? 'X-Trailer: t\r\n' : ''}\r\n`;
  }

  /** One request as bytes (latin1 string), possibly malformed, possibly truncated. */
  request(): string {
    this.sane = this.chance(0.4);
    const eol = this.sane || this.chance(0.95) ? '\r\n' : '\n';
    const lines = [`${this.method()} ${this.target()} ${this.version()}`.trimEnd()];
    const hostChoice = this.sane ? this.int(8) : this.int(10);
    if (hostChoice < 7) lines.push('Host: proxy.test');
    else if (hostChoice === 7) lines.push(`Host: ${this.otherHost}`);
    else if (hostChoice === 8) lines.push('Host: a', 'Host: b');
    for (let i = this.int(5); i > 0; i--) lines.push(this.header());
    const body = this.chance(0.5) ? this.bytes(this.int(this.chance(0.05) ? this.maxBody * 2 : 300)) : '';
    let payload = '';
    switch (this.sane ? this.pick([0, 2, 7]) : this.int(9)) {
      case 0:
        lines.push(`Content-Length: ${body.length}`);
        payload = body;
        break;
      case 1:
        lines.push(`Content-Length: ${body.length + this.int(20) - 10}`);
        payload = body;
        break;
      case 2:
        lines.push('Transfer-Encoding: chunked');
        payload = this.chunked(body);
        break;
      case 3:
        lines.push(`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked');
        payload = this.chunked(body);
        break;
      case 4:
        lines.push(`Content-Length: ${body.length}`, `Content-Length: ${this.int(100)}`);
        payload = body;
        break;
      case 5:
        lines.push(
          `Transfer-Encoding: ${this.pick(['gzip, chunked', 'chunked, identity', 'xchunked', ' chunked', 'identity', 'CHUNKED', 'chunked;q=1'])}`,
        );
        payload = this.chunked(body);
        break;
      case 6:
        lines.push(
          `Content-Length: ${this.pick(['-1', '+5', '0x10', '1e3', '99999999999999999999', ' 5', '5 5'])}`,
        );
        payload = body;
        break;
      default:
        break;
    }
    let text = `${lines.join(eol)}${eol}${eol}${payload}`;
    if (!this.sane && this.chance(0.15)) text = text.slice(0, this.int(text.length));
    return text;
  }

  /** What one connection sends: one request, or two or three pipelined; and how many. */
  connection(): [string, number] {
    let text = this.request();
    let count = 1;
    if (this.chance(0.15)) {
      for (let i = 1 + this.int(2); i > 0; i--, count++) text += this.request();
    }
    return [text, count];
  }
}

export interface Outcome {
  /** First status code received, or 0 for none. */
  status: number;
  hung: boolean;
}

/**
 * Sends `data` and reads until the server closes, or answers and then goes quiet for QUIET_MS. A
 * server that says nothing within HALF_CLOSE_MS gets the client's FIN (a truncated request then
 * fails at once); one that neither answers nor closes within PER_CONNECTION_MS counts as hung.
 * (A FIN sent right away would abort complete requests too: Node's httpAllowHalfOpen is off.)
 */
export function fire(port: number, data: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    let done = false;
    let quiet: NodeJS.Timeout | undefined;
    const finish = (hung: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(halfClose);
      clearTimeout(quiet);
      socket.destroy();
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(received);
      resolve({ status: match ? Number(match[1]) : 0, hung });
    };
    const deadline = setTimeout(() => finish(true), PER_CONNECTION_MS);
    const halfClose = setTimeout(() => socket.end(), HALF_CLOSE_MS);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      if (received.length < 64) received += chunk;
      clearTimeout(halfClose);
      clearTimeout(quiet);
      quiet = setTimeout(() => finish(false), QUIET_MS);
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
    socket.on('connect', () => socket.write(data, 'latin1'));
  });
}
