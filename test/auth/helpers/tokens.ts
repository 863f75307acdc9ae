/**
 * A token as `meli-proxy auth login` leaves it, issued by the fake MercadoLibre without the browser
 * part, and the token stores the suites put it in: what the suites that start from "the operator
 * logged in" store first.
 */
import { randomBytes } from 'node:crypto';
import { AccountStore } from '../../../src/auth/accounts.js';
import { openTokenBackend, type TokenBackend } from '../../../src/auth/token-backend.js';
import { TOKEN_KEY_ENV } from '../../../src/auth/token-key.js';
import { FileTokenSlot, FileTokenSlots } from '../../../src/auth/token-slot.js';
import { type StoredToken, TokenStore, tokenFromLogin } from '../../../src/auth/token-store.js';
import type { FakeMeli } from '../../peers/oauth-server.js';
import { registerSecret } from '../../support/secrets.js';

/** The key that seals tokens in the suites' shared stores; a secret like any other. */
export const TEST_TOKEN_KEY = randomBytes(32).toString('base64');
registerSecret('token encryption key', TEST_TOKEN_KEY);

/** The environment that gives a process the test key. */
export const KEY_ENV = { [TOKEN_KEY_ENV]: TEST_TOKEN_KEY };

/**
 * Issues a token pair now; `sentAt` is when the login's token request left (default: now); `userId`
 * picks one of the fake server's users (default: its login user).
 */
export function loggedInToken(meli: FakeMeli, sentAt = Date.now(), userId = meli.user.id): StoredToken {
  const issued = meli.issueTokens(meli.client.id, userId);
  const user = meli.users.find((candidate) => candidate.id === userId) ?? meli.user;
  return tokenFromLogin({
    grant: {
      accessToken: issued.access_token,
      refreshToken: issued.refresh_token,
      scope: issued.scope,
      expiresIn: issued.expires_in,
      userId: String(issued.user_id),
    },
    sentAt,
    clientId: meli.client.id,
    user: { id: String(user.id), nickname: user.nickname, siteId: user.site_id },
  });
}

/** The embedded token file in `dir`, as `serve` and the auth commands use it. */
export function fileTokens(dir: string): TokenStore {
  const slot = new FileTokenSlot(dir);
  return new TokenStore(slot, slot.file);
}

/** The accounts of the embedded token file in `dir`. */
export function fileAccounts(dir: string): AccountStore {
  const slots = new FileTokenSlots(dir);
  return new AccountStore(slots, slots.file, { keys: undefined });
}

/** The token store and lock of a shared store (postgres:// or redis://), sealed with the test key. */
export function sharedTokens(url: string, dataDir: string): Promise<TokenBackend> {
  return openTokenBackend({ store: url, dataDir, sources: {}, tokenKeyFile: undefined }, KEY_ENV, {
    role: 'serve',
  });
}
