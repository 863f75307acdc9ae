/**
 * The interactive part of `auth login`: send the user to the authorization page, get the redirect
 * back (local listener, or a pasted URL), and exchange its code. Saying what happens at each step
 * is part of the job; storing the result is the caller's.
 */
import type * as oidc from 'openid-client';
import { RuntimeFailure } from '../errors.js';
import { type CallbackListener, type CallbackRequest, startCallbackListener } from './callback-listener.js';
import {
  type AuthorizationRequest,
  createAuthorizationRequest,
  exchangeCode,
  OAuthError,
  safeText,
  type TokenGrant,
} from './oauth-client.js';
import { createSelfSignedCertificate, type TlsPair } from './self-signed.js';

export interface LoginOptions {
  oauth: oidc.Configuration;
  /** The redirect URI registered with the application (port 0: the listener's port). */
  redirectUri: URL;
  /** Listen on this port instead of the redirect URI's (e.g. behind a port forward). */
  listenPort?: number | undefined;
  /** Read the redirected URL from `lines` instead of listening for it. */
  paste: boolean;
  openBrowser: boolean;
  timeoutMs: number;
  /** Extra authorization request parameters (e.g. scope for a generic OAuth server). */
  authorizationParameters?: Record<string, string>;
  /** One progress line for the user (stderr). */
  say(line: string): void;
  open(url: string): Promise<boolean>;
  /** Lines typed or pasted by the user; needed with `paste`. */
  lines?: AsyncIterator<string>;
  /** Certificate for an https:// redirect URI; default: a fresh self-signed one. */
  tls?: () => Promise<TlsPair>;
  now?: () => number;
}

export interface LoginResult {
  grant: TokenGrant;
  /** When the token request was sent (epoch ms): expiry is counted from here. */
  sentAt: number;
  redirectUri: URL;
}

export async function runLogin(options: LoginOptions): Promise<LoginResult> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  return options.paste ? loginByPaste(options, signal) : loginByListener(options, signal);
}

async function loginByListener(options: LoginOptions, signal: AbortSignal): Promise<LoginResult> {
  const https = options.redirectUri.protocol === 'https:';
  const tls = https ? await (options.tls ?? createSelfSignedCertificate)() : undefined;
  const listener = await startCallbackListener({
    redirectUri: options.redirectUri,
    port: options.listenPort,
    tls,
  });
  try {
    const request = await createAuthorizationRequest(
      options.oauth,
      listener.redirectUri,
      options.authorizationParameters,
    );
    options.say(
      `Waiting for the login redirect on ${https ? 'https' : 'http'}://127.0.0.1:${listener.port}${listener.redirectUri.pathname}`,
    );
    await showUrl(options, request);
    if (tls) {
      options.say(
        'MercadoLibre redirects only to https, so this listener serves https with a certificate made just now for localhost. No authority vouches for it, so after you allow access the browser warns that the connection to localhost is not private (e.g. NET::ERR_CERT_AUTHORITY_INVALID): the warning is about this listener on your own machine, not about MercadoLibre. Choose to continue to localhost (or use --paste).',
      );
    }
    options.say(`Waiting up to ${formatDuration(options.timeoutMs)} for the browser…`);
    let callback = await nextCallback(listener, signal, options.timeoutMs);
    while (callback.params.get('state') !== request.state) {
      const refusal = statelessError(callback.params);
      if (refusal) {
        // The server refused the request itself (e.g. redirect_uri_mismatch) and can carry no
        // state: waiting on would only run into --timeout, so the login ends with its reason.
        callback.respond({ ok: false, message: refusal.message });
        throw refusal;
      }
      // A stale tab of an older attempt, or a forged request: refused, and this login still waits
      // for its own redirect instead of letting any local request end it.
      callback.respond({
        ok: false,
        message:
          'This redirect does not belong to the login in progress (its "state" differs); nothing was exchanged. Use the newest login URL.',
      });
      options.say('Ignored a redirect with a different "state" (an older login attempt?); still waiting…');
      callback = await nextCallback(listener, signal, options.timeoutMs);
    }
    options.say('The browser came back; exchanging the code for tokens…');
    const sentAt = (options.now ?? Date.now)();
    try {
      const grant = await exchangeCode(options.oauth, request, callback.params);
      callback.respond({
        ok: true,
        message: 'meli-proxy has the token. You can close this tab and return to the terminal.',
      });
      return { grant, sentAt, redirectUri: listener.redirectUri };
    } catch (error) {
      callback.respond({
        ok: false,
        message: error instanceof OAuthError ? error.message : 'The login failed; see the terminal.',
      });
      throw error;
    }
  } finally {
    await listener.close();
  }
}

function nextCallback(
  listener: CallbackListener,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<CallbackRequest> {
  return listener.next(signal).catch((error: unknown) => {
    throw signal.aborted ? timedOut(timeoutMs) : error;
  });
}

async function loginByPaste(options: LoginOptions, signal: AbortSignal): Promise<LoginResult> {
  const lines = options.lines;
  if (!lines) throw new RuntimeFailure('--paste needs standard input to read the redirected URL from.');
  const request = await createAuthorizationRequest(
    options.oauth,
    options.redirectUri,
    options.authorizationParameters,
  );
  await showUrl(options, request);
  options.say(
    `After you allow access, the browser is sent to ${options.redirectUri.origin}${options.redirectUri.pathname}?code=… (the page may fail to load; that is fine). Copy the complete URL from the address bar, paste it here and press Enter:`,
  );
  for (;;) {
    const line = await nextLine(lines, signal, options.timeoutMs);
    if (line === undefined) {
      throw new RuntimeFailure(
        'Standard input ended before a redirected URL was pasted. Run "meli-proxy auth login --paste" again and paste the URL when asked.',
      );
    }
    const params = pastedParameters(line);
    const refusal = params && statelessError(params);
    if (refusal) throw refusal;
    if (!params) {
      if (line.trim() !== '') {
        options.say(
          'That is not the redirected URL (it must contain code=… and state=…, or error=…). Paste the complete URL:',
        );
      }
      continue;
    }
    options.say('Exchanging the code for tokens…');
    const sentAt = (options.now ?? Date.now)();
    const grant = await exchangeCode(options.oauth, request, params);
    return { grant, sentAt, redirectUri: options.redirectUri };
  }
}

async function showUrl(options: LoginOptions, request: AuthorizationRequest): Promise<void> {
  const url = request.url.href;
  options.say(`Open this URL in your browser to log in to MercadoLibre:\n\n  ${url}\n`);
  if (!options.openBrowser) return;
  const opened = await options.open(url).catch(() => false);
  options.say(
    opened
      ? 'Asked the system to open it in your browser.'
      : 'Could not open a browser: open the URL above yourself.',
  );
}

/** An error redirect without `state`: the authorization server's refusal of the request itself. */
function statelessError(params: URLSearchParams): OAuthError | undefined {
  const error = params.get('error');
  if (error === null || params.has('state')) return undefined;
  const description = params.get('error_description');
  const hint =
    error === 'redirect_uri_mismatch' || /redirect/i.test(description ?? '')
      ? ' Pass --redirect-uri with the redirect URI registered for the application, exactly as registered.'
      : ' Check --client-id and the application settings.';
  return new OAuthError(
    'authorization_error',
    `The authorization server refused the login: error=${safeText(error)}${description ? ` (${safeText(description)})` : ''}.${hint}`,
  );
}

/** The redirect's parameters from a pasted URL (or just its query); undefined when it is neither. */
export function pastedParameters(text: string): URLSearchParams | undefined {
  const trimmed = text.trim();
  let params: URLSearchParams;
  try {
    params = new URL(trimmed).searchParams;
  } catch {
    params = new URLSearchParams(trimmed.startsWith('?') ? trimmed.slice(1) : trimmed);
  }
  return params.has('code') || params.has('error') ? params : undefined;
}

async function nextLine(
  lines: AsyncIterator<string>,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<string | undefined> {
  if (signal.aborted) throw timedOut(timeoutMs);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(timedOut(timeoutMs));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const result = await Promise.race([lines.next(), aborted]);
    return result.done ? undefined : result.value;
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

function timedOut(timeoutMs: number): RuntimeFailure {
  return new RuntimeFailure(
    `No login redirect arrived within ${formatDuration(timeoutMs)}, so nothing was stored. Run "meli-proxy auth login" again and finish in the browser sooner (or raise --timeout); if the browser cannot reach this machine, use --paste.`,
  );
}

/** "5m", "1h 30m", "42s": whole minutes from an hour up, seconds below. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  if (total >= 3600) {
    // Rounded to the minute: "in 6h" rather than "in 5h 59m" for a token issued a moment ago.
    const minutes = Math.round(total / 60);
    const hours = Math.floor(minutes / 60);
    return minutes % 60 ? `${hours}h ${minutes % 60}m` : `${hours}h`;
  }
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  if (minutes === 0) return `${seconds}s`;
  return seconds ? `${minutes}m ${seconds}s` : `${minutes}m`;
}
