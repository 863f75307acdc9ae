/**
 * The local end of the login redirect: a tiny HTTP(S) server on 127.0.0.1 that waits for the
 * browser to come back to the redirect URI with `code` and `state` (or `error`), hands the
 * parameters over, and shows the browser a page saying how it ended.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { UsageError } from '../errors.js';
import type { TlsPair } from './self-signed.js';

export interface CallbackListenerOptions {
  /** The redirect URI as registered with the application; its path is the one listened on. */
  redirectUri: URL;
  /** Port to listen on; default the redirect URI's port. 0 picks a free one. */
  port?: number;
  /** Serve https with this certificate (for an https:// redirect URI). */
  tls?: TlsPair;
  /** Longest the browser is kept waiting for the final page. Default 30 s. */
  pageTimeoutMs?: number;
}

export interface CallbackRequest {
  /** The redirect's query parameters. */
  params: URLSearchParams;
  /** Answers the browser with the outcome; later calls are ignored. */
  respond(outcome: { ok: boolean; message: string }): void;
}

export interface CallbackListener {
  readonly port: number;
  /** The redirect URI to send, with the port filled in when the listener picked one. */
  readonly redirectUri: URL;
  /** Resolves with the first request to the redirect path that carries `code` or `error`. */
  next(signal?: AbortSignal): Promise<CallbackRequest>;
  /** Stops listening and drops every connection. Safe to call twice. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';

function defaultPort(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

export async function startCallbackListener(options: CallbackListenerOptions): Promise<CallbackListener> {
  const { redirectUri } = options;
  const pageTimeoutMs = options.pageTimeoutMs ?? 30_000;
  const waiting: Array<(request: CallbackRequest) => void> = [];
  const arrived: CallbackRequest[] = [];

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://callback.invalid');
    if (req.method !== 'GET' || url.pathname !== redirectUri.pathname) {
      sendPage(res, 404, 'Not found', 'This is the meli-proxy login listener; nothing lives here.');
      return;
    }
    if (!url.searchParams.has('code') && !url.searchParams.has('error')) {
      sendPage(
        res,
        400,
        'Not a login redirect',
        'This address expects the redirect from the authorization page.',
      );
      return;
    }
    let answered = false;
    const timer = setTimeout(
      () => respond({ ok: false, message: 'meli-proxy did not finish in time; check the terminal.' }),
      pageTimeoutMs,
    );
    const respond = (outcome: { ok: boolean; message: string }): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      const title = outcome.ok ? 'Logged in' : 'Login failed';
      sendPage(res, outcome.ok ? 200 : 400, title, outcome.message);
    };
    const request: CallbackRequest = { params: url.searchParams, respond };
    const waiter = waiting.shift();
    if (waiter) waiter(request);
    else arrived.push(request);
  };

  const server: Server = options.tls
    ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, onRequest)
    : createHttpServer(onRequest);
  const port = options.port ?? defaultPort(redirectUri);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE' || error.code === 'EACCES') {
        reject(
          new UsageError(
            `Cannot listen for the login redirect on ${HOST}:${port} (${error.code}). Free the port, choose another with --port (and register the matching redirect URI), or use --paste.`,
          ),
        );
      } else {
        reject(error);
      }
    });
    server.listen(port, HOST, () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;
  const effectiveUri = new URL(redirectUri);
  // A redirect URI written with port 0 means "whatever port the listener got".
  if (effectiveUri.port === '0') effectiveUri.port = String(actualPort);

  let closing: Promise<void> | undefined;
  return {
    port: actualPort,
    redirectUri: effectiveUri,
    next(signal?: AbortSignal): Promise<CallbackRequest> {
      const ready = arrived.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise<CallbackRequest>((resolve, reject) => {
        const onAbort = (): void => {
          const index = waiting.indexOf(deliver);
          if (index >= 0) waiting.splice(index, 1);
          reject(signal?.reason ?? new Error('aborted'));
        };
        const deliver = (request: CallbackRequest): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve(request);
        };
        if (signal?.aborted) {
          onAbort();
          return;
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        waiting.push(deliver);
      });
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        for (const request of arrived) request.respond({ ok: false, message: 'meli-proxy stopped waiting.' });
        server.close(() => resolve());
        // Browsers keep connections alive; without this, close() would wait for them to time out.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function sendPage(res: ServerResponse, status: number, title: string, message: string): void {
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>meli-proxy: ${escapeHtml(title)}</title></head><body style="font-family: sans-serif; max-width: 40em; margin: 3em auto"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></body></html>`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // The page must not leak the code in the URL to anything it might load.
    'referrer-policy': 'no-referrer',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    connection: 'close',
  });
  res.end(body);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
