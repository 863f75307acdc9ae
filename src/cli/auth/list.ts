/** `meli-proxy auth list`: every account with its expiry, last refresh and health. */
import type { Command } from 'commander';
import type { AccountEntry } from '../../auth/accounts.js';
import { type AuthFactory, type CommonFlags, commonOptions } from './factory.js';
import { writeJson } from './text.js';

export type AccountHealth = 'ok' | 'expired' | 'revoked' | 'no_refresh_token' | 'unreadable';

export function accountHealth(entry: AccountEntry, now: number): AccountHealth {
  const token = entry.token;
  if (!token) return 'unreadable';
  if (token.revokedAt !== undefined) return 'revoked';
  if (token.expiresAt <= now) return 'expired';
  return token.refreshToken ? 'ok' : 'no_refresh_token';
}

export function registerList(auth: Command, f: AuthFactory): void {
  const list = commonOptions(
    auth
      .command('list')
      .description('List every account: expiry, last refresh and health (* marks the default).'),
  );
  list.action((flags: CommonFlags) => listRun(flags, f));
}

export async function listRun(flags: CommonFlags, f: AuthFactory): Promise<void> {
  const { io } = f;
  const config = f.settings(flags);
  await f.withAccounts(config, async (accounts) => {
    const entries = await accounts.list();
    const defaultId = await accounts.defaultId();
    const now = f.now();
    const rows = entries.map((entry) => ({
      id: entry.id,
      nickname: entry.token?.nickname ?? null,
      siteId: entry.token?.siteId ?? null,
      default: entry.id === defaultId,
      expiresAt: entry.token ? new Date(entry.token.expiresAt).toISOString() : null,
      lastRefresh: entry.token ? new Date(entry.token.obtainedAt).toISOString() : null,
      health: accountHealth(entry, now),
      ...(entry.problem ? { problem: entry.problem } : {}),
    }));
    if (flags.json) {
      writeJson(io, { accounts: rows, default: defaultId ?? null, store: accounts.location });
      return;
    }
    if (rows.length === 0) {
      io.stdout.write(`No accounts in ${accounts.location}. Add one with "meli-proxy auth login".\n`);
      return;
    }
    const table = [
      ['', 'ACCOUNT', 'NICKNAME', 'SITE', 'EXPIRES', 'LAST REFRESH', 'HEALTH'],
      ...rows.map((row) => [
        row.default ? '*' : '',
        row.id,
        row.nickname ?? '-',
        row.siteId ?? '-',
        row.expiresAt ?? '-',
        row.lastRefresh ?? '-',
        row.health,
      ]),
    ];
    const widths = table[0]!.map((_, column) => Math.max(...table.map((line) => line[column]!.length)));
    const text = table.map((line) =>
      line
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    );
    io.stdout.write(`${text.join('\n')}\n`);
    for (const row of rows) if (row.problem) io.stdout.write(`account ${row.id}: ${row.problem}\n`);
  });
}
