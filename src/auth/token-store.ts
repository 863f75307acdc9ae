/**
 * The stored MercadoLibre token: one document, `auth/token`, in a TokenSlot (token-slot.ts): the
 * private file of token-file.ts with the embedded store, a row or key every replica shares with
 * PostgreSQL or Redis. With a key ring (token-key.ts) the document is sealed with AES-256-GCM; its
 * lineage and generation stay in clear, authenticated with the ciphertext, for the compare-and-set.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { UsageError } from '../errors.js';
import type { MeliUser, TokenGrant } from './oauth-client.js';
import { MAKE_A_KEY, type SealedPayload, TOKEN_KEY_ENV, type TokenKeyRing } from './token-key.js';
import type { TokenSlot, TokenVersion } from './token-slot.js';

export { TOKEN_KEY } from './token-slot.js';

const StoredTokenSchema = z.object({
  version: z.literal(1),
  accessToken: z.string().min(1),
  refreshToken: z.string().min(1).optional(),
  scope: z.string().optional(),
  /** When the token request was sent (epoch ms): the lifetime is counted from there, to be safe. */
  obtainedAt: z.number(),
  expiresAt: z.number(),
  clientId: z.string(),
  userId: z.string().optional(),
  nickname: z.string().optional(),
  siteId: z.string().optional(),
  /** Random per login; refreshes keep it. Tells a new login apart from a refresh of the old one. */
  lineage: z.string(),
  /** 1 after login, +1 per refresh: within a lineage, higher is newer. */
  generation: z.number().int().positive(),
  /** Who wrote it (host and pid), for `auth status`. */
  writtenBy: z.string().optional(),
  /** When MercadoLibre refused this token's refresh token (revoked): the account needs a new login. */
  revokedAt: z.number().optional(),
});

export type StoredToken = z.infer<typeof StoredTokenSchema>;

/** Access tokens without an expires_in are assumed to last MercadoLibre's usual 6 hours. */
export const DEFAULT_LIFETIME_SECONDS = 6 * 3600;

export interface NewTokenInput {
  grant: TokenGrant;
  /** When the token request was sent, epoch ms. */
  sentAt: number;
  clientId: string;
  user?: MeliUser | undefined;
  writtenBy?: string | undefined;
}

/** The document for a fresh login. */
export function tokenFromLogin(input: NewTokenInput): StoredToken {
  const { grant, sentAt } = input;
  return clean({
    version: 1,
    accessToken: grant.accessToken,
    refreshToken: grant.refreshToken,
    scope: grant.scope,
    obtainedAt: sentAt,
    expiresAt: sentAt + (grant.expiresIn ?? DEFAULT_LIFETIME_SECONDS) * 1000,
    clientId: input.clientId,
    userId: input.user?.id ?? grant.userId,
    nickname: input.user?.nickname,
    siteId: input.user?.siteId,
    lineage: randomUUID(),
    generation: 1,
    writtenBy: input.writtenBy,
  });
}

/** The document after refreshing `previous`; who the token belongs to carries over. */
export function tokenFromRefresh(
  previous: StoredToken,
  grant: TokenGrant,
  sentAt: number,
  writtenBy?: string,
): StoredToken {
  return clean({
    ...previous,
    accessToken: grant.accessToken,
    // A server that does not rotate refresh tokens answers without one: the old one stays valid.
    refreshToken: grant.refreshToken ?? previous.refreshToken,
    scope: grant.scope ?? previous.scope,
    obtainedAt: sentAt,
    expiresAt: sentAt + (grant.expiresIn ?? DEFAULT_LIFETIME_SECONDS) * 1000,
    userId: previous.userId ?? grant.userId,
    generation: previous.generation + 1,
    writtenBy,
  });
}

/** Drops undefined fields: keyv serializes with JSON anyway, and equality checks stay simple. */
function clean(token: StoredToken): StoredToken {
  return Object.fromEntries(Object.entries(token).filter(([, value]) => value !== undefined)) as StoredToken;
}

/** True when `candidate` should replace `current`: another login, or a later refresh of this one. */
export function isNewer(candidate: StoredToken, current: StoredToken | undefined): boolean {
  if (!current) return true;
  if (candidate.lineage !== current.lineage) return true;
  return candidate.generation > current.generation;
}

export class InvalidTokenDocument extends Error {
  override name = 'InvalidTokenDocument';
}

const SealedSchema = z.object({
  format: z.literal('sealed'),
  lineage: z.string(),
  generation: z.number().int().positive(),
  keyId: z.string(),
  iv: z.string(),
  tag: z.string(),
  data: z.string(),
});

type SealedDocument = z.infer<typeof SealedSchema>;

function sealContext(version: TokenVersion): string {
  return `${version.lineage}|${version.generation}`;
}

export interface TokenStoreOptions {
  /** Seals what is written and opens what is read; without it documents are written in clear. */
  keys?: TokenKeyRing | undefined;
  /** A shared store: writing a token in clear there is refused. */
  shared?: boolean;
  onClose?: () => Promise<void>;
}

export class TokenStore {
  constructor(
    readonly slot: TokenSlot,
    /** Where the token lives, safe to print (a file path or a masked store URL). */
    readonly location: string,
    private readonly options: TokenStoreOptions = {},
  ) {}

  /** The stored token, or undefined when there is none. Throws InvalidTokenDocument if unreadable. */
  async load(): Promise<StoredToken | undefined> {
    return this.decode(await this.slot.read());
  }

  /** A document read from this store's slot (by a batched read), as load() returns it. */
  decode(raw: unknown): StoredToken | undefined {
    if (raw === undefined || raw === null) return undefined;
    const sealed = SealedSchema.safeParse(raw);
    const plain = sealed.success ? this.open(sealed.data) : raw;
    const parsed = StoredTokenSchema.safeParse(plain);
    if (!parsed.success) {
      throw new InvalidTokenDocument(
        `The token stored in ${this.location} is not in a format this version understands. Run "meli-proxy auth login" to replace it.`,
      );
    }
    return parsed.data;
  }

  /** The id of the key the stored token is sealed with; undefined when it is stored in clear or absent. */
  async sealedWith(): Promise<string | undefined> {
    const sealed = SealedSchema.safeParse(await this.slot.read());
    return sealed.success ? sealed.data.keyId : undefined;
  }

  /** Whether documents written now are sealed. */
  get sealing(): boolean {
    return this.options.keys !== undefined;
  }

  /** Stores a new login, replacing whatever is stored (a refresh in flight then keeps its hands off). */
  saveLogin(token: StoredToken): Promise<void> {
    return this.slot.put(this.encode(token));
  }

  /**
   * Stores a refreshed token only while the stored one is an older generation of the same login;
   * false when a newer login, a newer refresh or a logout came first.
   */
  saveRefreshed(token: StoredToken): Promise<boolean> {
    return this.slot.replaceIf(token.lineage, token.generation - 1, this.encode(token));
  }

  /** Writes the stored token again as it is (sealed with the current key); false if it changed meanwhile. */
  reseal(token: StoredToken): Promise<boolean> {
    return this.slot.replaceIf(token.lineage, token.generation, this.encode(token));
  }

  /**
   * Marks the stored token revoked (its refresh token refused), unless it changed meanwhile: a new
   * login or another refresh is then what counts, and nothing is written.
   */
  markRevoked(token: StoredToken, at: number): Promise<boolean> {
    return this.slot.replaceIf(token.lineage, token.generation, this.encode({ ...token, revokedAt: at }));
  }

  /** Removes the token; false when there was none. */
  remove(): Promise<boolean> {
    return this.slot.remove();
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.slot.close(), this.options.onClose?.()]);
  }

  private encode(token: StoredToken): StoredToken | SealedDocument {
    const keys = this.options.keys;
    if (!keys) {
      if (this.options.shared) throw missingKey(this.location);
      return token;
    }
    const version = { lineage: token.lineage, generation: token.generation };
    const payload: SealedPayload = keys.seal(JSON.stringify(token), sealContext(version));
    return { format: 'sealed', ...version, ...payload };
  }

  private open(sealed: SealedDocument): unknown {
    const keys = this.options.keys;
    let text: string | undefined;
    try {
      text = keys?.open(sealed, sealContext(sealed));
    } catch {
      throw new InvalidTokenDocument(
        `The token stored in ${this.location} does not decrypt with key ${sealed.keyId}: it was altered, or the key is not the one it was sealed with. Run "meli-proxy auth login" to replace it.`,
      );
    }
    if (text === undefined) {
      throw new UsageError(
        `The token stored in ${this.location} is sealed with key ${sealed.keyId}, which is not among the keys given (${TOKEN_KEY_ENV} or --token-key-file). Give that key, or run "meli-proxy auth login" again.`,
      );
    }
    return JSON.parse(text) as unknown;
  }
}

/** Why a shared store will not hold a token without a key, and how to make one. */
export function missingKey(location: string): UsageError {
  return new UsageError(
    `The token in the shared store ${location} must be encrypted, and no token key is set. Make one and give it to every replica and to the auth commands: ${MAKE_A_KEY} (or put it in a file named by --token-key-file).`,
  );
}
