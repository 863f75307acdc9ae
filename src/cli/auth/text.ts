/** How the auth commands word a token for people (and print JSON for scripts). */
import { formatDuration } from '../../auth/login.js';
import type { StoredToken } from '../../auth/token-store.js';
import type { CliIO } from '../io.js';

export function userText(token: Pick<StoredToken, 'nickname' | 'userId' | 'siteId'>): string {
  const who = token.nickname ?? `user ${token.userId ?? '(unknown)'}`;
  const details = [
    token.userId ? `user id ${token.userId}` : undefined,
    token.siteId ? `site ${token.siteId}` : undefined,
  ]
    .filter(Boolean)
    .join(', ');
  return details ? `${who} (${details})` : who;
}

export function expiryText(expiresAt: number, now: number): string {
  const when = new Date(expiresAt).toISOString();
  return expiresAt > now
    ? `${when} (in ${formatDuration(expiresAt - now)})`
    : `${when} (expired ${formatDuration(now - expiresAt)} ago)`;
}

export function writeJson(io: CliIO, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function userJson(token: Pick<StoredToken, 'nickname' | 'userId' | 'siteId'>): object {
  return { id: token.userId, nickname: token.nickname, siteId: token.siteId };
}
