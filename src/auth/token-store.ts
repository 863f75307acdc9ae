/**
 * The stored MercadoLibre token: one document, `auth/token`, in a DocumentStore (keyv). With a
 * PostgreSQL store every replica reads and writes the same row; with the embedded store it is the
 * private file of token-file.ts.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { DocumentStore } from '../store/types.js';
import type { MeliUser, TokenGrant } from './oauth-client.js';

export const TOKEN_KEY = 'auth/token';

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

export class TokenStore {
  constructor(
    readonly documents: DocumentStore,
    /** Where the token lives, safe to print (a file path or a masked store URL). */
    readonly location: string,
    private readonly onClose: () => Promise<void> = async () => undefined,
  ) {}

  /** The stored token, or undefined when there is none. Throws InvalidTokenDocument if unreadable. */
  async load(): Promise<StoredToken | undefined> {
    const raw = await this.documents.get<unknown>(TOKEN_KEY);
    if (raw === undefined) return undefined;
    const parsed = StoredTokenSchema.safeParse(raw);
    if (!parsed.success) {
      throw new InvalidTokenDocument(
        `The token stored in ${this.location} is not in a format this version understands. Run "meli-proxy auth login" to replace it.`,
      );
    }
    return parsed.data;
  }

  async save(token: StoredToken): Promise<void> {
    await this.documents.set(TOKEN_KEY, token);
  }

  /** Removes the token; false when there was none. */
  async remove(): Promise<boolean> {
    return this.documents.delete(TOKEN_KEY);
  }

  close(): Promise<void> {
    return this.onClose();
  }
}
