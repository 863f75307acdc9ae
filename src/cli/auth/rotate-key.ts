/**
 * `meli-proxy auth rotate-key`: reseals every account's token with the first key of the ring. The
 * order of a rotation: give every replica the new key first and the old one after it (both open,
 * the new one seals), run this, then drop the old key. Also encrypts tokens stored before keys existed.
 */
import type { Command } from 'commander';
import type { AccountStore } from '../../auth/accounts.js';
import type { Lock } from '../../auth/lock.js';
import { MAKE_A_KEY } from '../../auth/token-key.js';
import { RuntimeFailure, UsageError } from '../../errors.js';
import { type AuthFactory, type CommonFlags, commonOptions, underAccountLock } from './factory.js';
import { writeJson } from './text.js';

/** A refresh may land between our read and our write; that many tries before giving up. */
const ATTEMPTS = 5;

interface Resealed {
  account: string;
  from: string | null;
  to: string | undefined;
}

export function registerRotateKey(auth: Command, f: AuthFactory): void {
  const rotate = commonOptions(
    auth
      .command('rotate-key')
      .description(
        "Re-encrypt every account's token with the first token key (MELI_PROXY_TOKEN_KEY or --token-key-file); older keys listed after it still decrypt.",
      ),
  );
  rotate.action((flags: CommonFlags) => rotateKeyRun(flags, f));
}

export async function rotateKeyRun(flags: CommonFlags, f: AuthFactory): Promise<void> {
  const { io } = f;
  const config = f.settings(flags);
  await f.withAccounts(config, async (accounts, lock) => {
    if (!accounts.sealing) {
      throw new UsageError(`auth rotate-key needs the token key to seal with. Make one with: ${MAKE_A_KEY}`);
    }
    const ids = await accounts.ids();
    if (ids.length === 0) {
      throw new RuntimeFailure(`Not logged in: no account in ${accounts.location}; nothing to re-encrypt.`);
    }
    const done: Resealed[] = [];
    for (const id of ids) done.push(await reseal(accounts, lock, id));
    if (flags.json) {
      writeJson(io, { result: 'resealed', accounts: done, store: accounts.location });
      return;
    }
    const lines = done.map(
      ({ account, from, to }) =>
        `Re-encrypted account ${account} in ${accounts.location}: key ${from ?? '(none: it was stored in clear)'} → ${to}.`,
    );
    lines.push(`Once every replica has key ${done[0]?.to}, older keys can be removed.`);
    io.stdout.write(`${lines.join('\n')}\n`);
  });
}

async function reseal(accounts: AccountStore, lock: Lock, id: string): Promise<Resealed> {
  const tokens = accounts.account(id);
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const before = await tokens.sealedWith();
    const token = await tokens.load();
    if (!token)
      throw new RuntimeFailure(`Account ${id} was removed while re-encrypting; run auth rotate-key again.`);
    const written = await underAccountLock(lock, id, () => tokens.reseal(token));
    if (written) return { account: id, from: before ?? null, to: await tokens.sealedWith() };
  }
  throw new RuntimeFailure(
    `The token of account ${id} kept changing (refreshes under way); run auth rotate-key again.`,
  );
}
