/**
 * A token as `meli-proxy auth login` leaves it, issued by the fake MercadoLibre without the browser
 * part: what the suites that start from "the operator logged in" store first.
 */
import { type StoredToken, tokenFromLogin } from '../../../src/auth/token-store.js';
import type { FakeMeli } from '../../peers/oauth-server.js';

/** Issues a token pair now; `sentAt` is when the login's token request left (default: now). */
export function loggedInToken(meli: FakeMeli, sentAt = Date.now()): StoredToken {
  const issued = meli.issueTokens();
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
    user: { id: String(meli.user.id), nickname: meli.user.nickname, siteId: 'MLA' },
  });
}
