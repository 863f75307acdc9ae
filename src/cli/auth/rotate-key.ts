/**
 * `meli-proxy auth rotate-key`: reseals the stored token with the first key of the ring. The order
 * of a rotation: give every replica the new key first and the old one after it (both open, the new
 * one seals), run this, then drop the old key. Also encrypts a token stored before keys existed.
 */
import type { Command } from 'commander';
import { MAKE_A_KEY } from '../../auth/token-key.js';
import { RuntimeFailure, UsageError } from '../../errors.js';
import { type AuthFactory, type CommonFlags, commonOptions, underLock } from './factory.js';
import { writeJson } from './text.js';

/** A refresh may land between our read and our write; that many tries before giving up. */
const ATTEMPTS = 5;

export function registerRotateKey(auth: Command, f: AuthFactory): void {
  const rotate = commonOptions(
    auth
      .command('rotate-key')
      .description(
        'Re-encrypt the stored token with the first token key (MELI_PROXY_TOKEN_KEY or --token-key-file); older keys listed after it still decrypt.',
      ),
  );
  rotate.action((flags: CommonFlags) => rotateKeyRun(flags, f));
}

export async function rotateKeyRun(flags: CommonFlags, f: AuthFactory): Promise<void> {
  const { io } = f;
  const config = f.settings(flags);
  await f.withTokens(config, async (tokens, lock) => {
    if (!tokens.sealing) {
      throw new UsageError(`auth rotate-key needs the token key to seal with. Make one with: ${MAKE_A_KEY}`);
    }
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const before = await tokens.sealedWith();
      const token = await tokens.load();
      if (!token) {
        throw new RuntimeFailure(`Not logged in: no token in ${tokens.location}; nothing to re-encrypt.`);
      }
      const written = await underLock(lock, () => tokens.reseal(token));
      if (!written) continue;
      const after = await tokens.sealedWith();
      if (flags.json) {
        writeJson(io, { result: 'resealed', from: before ?? null, to: after, store: tokens.location });
      } else {
        io.stdout.write(
          `Re-encrypted the token in ${tokens.location}: key ${before ?? '(none: it was stored in clear)'} → ${after}. Once every replica has key ${after}, older keys can be removed.\n`,
        );
      }
      return;
    }
    throw new RuntimeFailure(
      'The stored token kept changing (refreshes under way); run auth rotate-key again.',
    );
  });
}
