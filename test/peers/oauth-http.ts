/**
 * The HTTP side of the fake MercadoLibre (oauth-server.ts): its small response helpers, and what a
 * person's browser does on its authorization page (press Allow or Deny, follow the redirect).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, fetch as undiciFetch } from 'undici';

export function random(prefix: string): string {
  return `${prefix}${randomBytes(18).toString('base64url')}`;
}

export function base64urlSha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** MercadoLibre's error body. */
export function meliError(res: ServerResponse, status: number, error: string, message: string): void {
  sendJson(res, status, { message, error, status, cause: [] });
}

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registrable(uri: string): string {
  if (!uri.startsWith('https://')) throw new Error(`redirect URIs must be https, got ${uri}`);
  return uri;
}

export function isLoopbackRedirect(uri: string): boolean {
  try {
    const url = new URL(uri);
    return (
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      ['127.0.0.1', 'localhost'].includes(url.hostname)
    );
  } catch {
    return false;
  }
}

/**
 * What a person does on the fake authorization page, over plain HTTP: open it and press Allow (or
 * Deny). Resolves with the URL the browser would be redirected to.
 */
export async function clickThrough(authorizationUrl: string | URL, decision: 'allow' | 'deny'): Promise<URL> {
  const page = await fetch(authorizationUrl);
  const html = await page.text();
  if (page.status !== 200) throw new Error(`authorization page answered ${page.status}: ${html}`);
  const request = /name="request" value="([^"]+)"/.exec(html)?.[1];
  if (!request) throw new Error('no authorization request id on the page');
  const action = new URL('/authorization/decide', authorizationUrl);
  const answer = await fetch(action, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ request, decision }).toString(),
    redirect: 'manual',
  });
  const location = answer.headers.get('location');
  if (answer.status !== 302 || !location) throw new Error(`decision answered ${answer.status}`);
  return new URL(location);
}

/** Loopback listeners of `auth login` serve https with a certificate made for the login. */
const trustingLoopback = new Agent({ connect: { rejectUnauthorized: false } });

/**
 * What the browser does after the redirect: load the redirect URI (the CLI's listener on
 * localhost, https with its self-signed certificate, or http). Only ever for loopback URLs.
 */
export function openRedirect(url: URL): ReturnType<typeof undiciFetch> {
  if (!isLoopbackRedirect(url.href)) throw new Error(`not a loopback redirect: ${url.origin}`);
  return undiciFetch(url, { dispatcher: trustingLoopback });
}
