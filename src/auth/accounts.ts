/**
 * The MercadoLibre accounts the proxy holds tokens for, keyed by the user id MercadoLibre returns
 * at login. Each account's token is its own document `auth/accounts/<user id>` (a TokenStore with
 * its own compare-and-set), refreshed under its own lock name, so one account's refresh, login or
 * revocation never touches another's. `auth/default-account` names the account used when a request
 * names none. A store written before accounts existed holds one document, `auth/token`: `migrate()`
 * turns it into an account (the default) and removes it.
 */
import { UsageError } from '../errors.js';
import { REFRESH_LOCK } from './token-manager.js';
import { TOKEN_KEY, type TokenSlots } from './token-slot.js';
import { InvalidTokenDocument, type StoredToken, TokenStore, type TokenStoreOptions } from './token-store.js';

export const ACCOUNT_PREFIX = 'auth/accounts/';
const DEFAULT_ACCOUNT_KEY = 'auth/default-account';
/** The account id of a migrated token that never recorded its user id. */
export const UNKNOWN_USER_ACCOUNT = 'unknown-user';

const ACCOUNT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The refresh lock of one account: refreshes of different accounts never wait for each other. */
export function accountLockName(id: string): string {
  return `${REFRESH_LOCK}:${id}`;
}

/** Every account's stored document and the default, as one read of the store found them. */
export interface AccountsSnapshot {
  /** Account id → its raw document (decode it with `decode`). */
  documents: Map<string, unknown>;
  defaultId: string | undefined;
}

/** Both the account documents and the default-account document live under this prefix. */
const AUTH_PREFIX = 'auth/';

export interface AccountEntry {
  id: string;
  /** Undefined when the document cannot be read (`problem` says why). */
  token?: StoredToken | undefined;
  problem?: string | undefined;
  /** The error behind `problem`, for a command to rethrow with its exit code. */
  error?: Error | undefined;
}

export class AccountStore {
  private readonly stores = new Map<string, TokenStore>();

  constructor(
    private readonly slots: TokenSlots,
    /** Where the tokens live, safe to print. */
    readonly location: string,
    private readonly options: TokenStoreOptions,
  ) {}

  /** Whether tokens written now are sealed. */
  get sealing(): boolean {
    return this.options.keys !== undefined;
  }

  /** The token store of account `id` (it may hold no token yet). */
  account(id: string): TokenStore {
    if (!ACCOUNT_ID.test(id))
      throw new UsageError(`Invalid account id "${id}": expected a MercadoLibre user id.`);
    let store = this.stores.get(id);
    if (!store) {
      store = new TokenStore(this.slots.slot(`${ACCOUNT_PREFIX}${id}`), `${this.location} (account ${id})`, {
        keys: this.options.keys,
        shared: this.options.shared ?? false,
      });
      this.stores.set(id, store);
    }
    return store;
  }

  /** The ids of every stored account, sorted. */
  async ids(): Promise<string[]> {
    const keys = await this.slots.keys(ACCOUNT_PREFIX);
    return keys.map((key) => key.slice(ACCOUNT_PREFIX.length)).filter((id) => ACCOUNT_ID.test(id));
  }

  /** Every account with its token, or why it cannot be read. */
  async list(): Promise<AccountEntry[]> {
    const ids = await this.ids();
    return Promise.all(ids.map((id) => this.entry(id)));
  }

  async entry(id: string): Promise<AccountEntry> {
    try {
      return { id, token: await this.account(id).load() };
    } catch (error) {
      if (error instanceof InvalidTokenDocument || error instanceof UsageError)
        return { id, problem: error.message, error };
      throw error;
    }
  }

  /**
   * The account `ref` names: a user id, else a nickname (case-insensitive). Undefined when none
   * matches; a UsageError when a nickname matches more than one.
   */
  async find(ref: string): Promise<AccountEntry | undefined> {
    const entries = await this.list();
    const byId = entries.find((entry) => entry.id === ref);
    if (byId) return byId;
    const wanted = ref.toLowerCase();
    const byName = entries.filter((entry) => entry.token?.nickname?.toLowerCase() === wanted);
    if (byName.length > 1) {
      throw new UsageError(
        `The nickname "${ref}" matches accounts ${byName.map((entry) => entry.id).join(', ')}: name the account by its user id.`,
      );
    }
    return byName[0];
  }

  /**
   * Every account document and the default in one store read: what a running proxy polls, so
   * hundreds of accounts cost one read per interval, not one each.
   */
  async snapshot(): Promise<AccountsSnapshot> {
    const all = await this.slots.readAll(AUTH_PREFIX);
    const documents = new Map<string, unknown>();
    for (const [key, document] of all) {
      if (!key.startsWith(ACCOUNT_PREFIX)) continue;
      const id = key.slice(ACCOUNT_PREFIX.length);
      if (ACCOUNT_ID.test(id)) documents.set(id, document);
    }
    const stored = all.get(DEFAULT_ACCOUNT_KEY) as { accountId?: unknown } | undefined;
    const id = stored && typeof stored.accountId === 'string' ? stored.accountId : undefined;
    return { documents, defaultId: id !== undefined && documents.has(id) ? id : undefined };
  }

  /** Account `id`'s token from a document a snapshot read; throws as TokenStore.load does. */
  decode(id: string, document: unknown): StoredToken | undefined {
    return this.account(id).decode(document);
  }

  /** The default account's id; undefined when none is set or it was removed. */
  async defaultId(): Promise<string | undefined> {
    const stored = (await this.slots.slot(DEFAULT_ACCOUNT_KEY).read()) as { accountId?: unknown } | undefined;
    const id = stored && typeof stored.accountId === 'string' ? stored.accountId : undefined;
    if (id === undefined || !ACCOUNT_ID.test(id)) return undefined;
    return (await this.ids()).includes(id) ? id : undefined;
  }

  async setDefault(id: string): Promise<void> {
    await this.slots.slot(DEFAULT_ACCOUNT_KEY).put({
      lineage: 'default-account',
      generation: 1,
      accountId: id,
    } as {
      lineage: string;
      generation: number;
    });
  }

  /**
   * Stores a login as the account of its user id (a re-authorization replaces that account's token
   * only). The first account becomes the default. Returns the account id and whether it is the default.
   */
  async saveLogin(token: StoredToken): Promise<{ id: string; isDefault: boolean }> {
    const id = token.userId ?? UNKNOWN_USER_ACCOUNT;
    await this.account(id).saveLogin(token);
    let current = await this.defaultId();
    if (current === undefined) {
      await this.setDefault(id);
      current = id;
    }
    return { id, isDefault: current === id };
  }

  /**
   * Removes account `id`. When it was the default, the first remaining account (by id) becomes the
   * default; returns that new default, if any.
   */
  async remove(id: string): Promise<{ removed: boolean; newDefault: string | undefined }> {
    const wasDefault = (await this.defaultId()) === id;
    const removed = await this.account(id).remove();
    let newDefault: string | undefined;
    if (wasDefault) {
      newDefault = (await this.ids())[0];
      if (newDefault === undefined) await this.slots.slot(DEFAULT_ACCOUNT_KEY).remove();
      else await this.setDefault(newDefault);
    }
    return { removed, newDefault };
  }

  /**
   * Turns the single token of a store written before accounts into an account (the default when
   * none is set), then removes the old document. Callers hold the legacy refresh lock, so no
   * refresh of the old document runs meanwhile. Returns the migrated account id, if any.
   */
  async migrate(): Promise<string | undefined> {
    const legacy = new TokenStore(this.slots.slot(TOKEN_KEY), this.location, this.options);
    const token = await legacy.load();
    if (!token) return undefined;
    const id = token.userId ?? UNKNOWN_USER_ACCOUNT;
    const target = this.account(id);
    const existing = await target.load().catch(() => undefined);
    // A login stored as an account since is newer than the old single token: keep it.
    if (!existing) await target.saveLogin(token);
    if ((await this.defaultId()) === undefined) await this.setDefault(id);
    await legacy.remove();
    return id;
  }
}

/**
 * What tells two reads of an account's document apart without opening it: a sealed document's
 * random IV changes with every write (a refresh, a login, a revocation mark); a clear one is
 * compared whole. Opening every sealed document at every poll costs about 0.1 ms each.
 */
export function documentFingerprint(document: unknown): string {
  const iv = document && typeof document === 'object' ? (document as { iv?: unknown }).iv : undefined;
  return typeof iv === 'string' ? `iv:${iv}` : JSON.stringify(document ?? null);
}
