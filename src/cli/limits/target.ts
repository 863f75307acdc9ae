/**
 * Where `meli-proxy limits` reads and writes rules: a running proxy's admin API (the default), or
 * the shared store itself (`--store URL`), for when no proxy runs yet or its admin port is out of
 * reach. Both speak the same small interface, so each subcommand is written once.
 *
 * Through the API a change is in force on that proxy at once and on the other replicas within
 * about a second (they re-read the store every second), and `list` includes live counts. Through
 * the store, PostgreSQL and Redis changes reach running proxies the same way; the embedded store
 * is a file owned by one process, so only a proxy started afterwards sees the change.
 */
import path from 'node:path';
import { SETTINGS } from '../../config.js';
import { RuntimeFailure, UsageError } from '../../errors.js';
import { type Rule, serializeRule } from '../../limits/index.js';
import { deleteRule, listStoredRules, saveRule } from '../../limits/rule-store.js';
import { openStore, parseStoreUrl, type Store } from '../../store/index.js';
import { AdminClient, adminClientOptions, type FetchLike } from '../admin-client.js';
import type { CliIO } from '../io.js';

/** A rule as `GET /admin/limits` lists it: the rule's input form plus where it comes from. */
export interface ListedRule extends Record<string, unknown> {
  id: string;
  limit: string;
  source: 'store' | 'config' | 'env';
  matched?: number;
  rejected?: number;
  shadowExceeded?: number;
}

export interface RuleList {
  rules: ListedRule[];
  /** Store documents that are not valid rules (store target only). */
  invalid?: string[];
}

/** `GET /admin/limits/test` answer. */
export interface TestAnswer {
  matches: Array<{
    id: string;
    mode: 'enforce' | 'shadow';
    limit: number;
    burst?: number;
    windowSeconds: number;
    key: string;
    used: number;
    remaining: number;
    resetSeconds: number;
  }>;
}

export interface TestQuery {
  ip: string;
  path: string;
  method: string;
  headers: string[];
  tokenHash?: string;
}

export interface LimitsTarget {
  /** Where rules go, e.g. "the proxy at http://127.0.0.1:8081" or "the store postgres://…". */
  readonly description: string;
  /** The sentence after a change: where it went and when it applies. */
  readonly takesEffect: string;
  /** Something the user must know about writing there, printed once on stderr. */
  readonly caveat?: string;
  /** True when the target is a running proxy (live counts, immediate effect). */
  readonly live: boolean;
  list(): Promise<RuleList>;
  save(rule: Rule): Promise<void>;
  /** Resolves false when there is no such rule in the store. */
  remove(id: string): Promise<boolean>;
  test(query: TestQuery): Promise<TestAnswer>;
  close(): Promise<void>;
}

export interface TargetFlags {
  adminUrl?: string;
  store?: string;
  dataDir?: string;
}

export interface TargetDeps {
  fetch?: FetchLike;
}

interface ApiError {
  message?: string;
  error?: string;
}

class AdminTarget implements LimitsTarget {
  readonly live = true;
  readonly description: string;
  readonly takesEffect: string;

  constructor(private readonly client: AdminClient) {
    this.description = `the proxy at ${client.baseUrl}`;
    this.takesEffect = `In force now on ${this.description}; its other replicas pick it up within about a second.`;
  }

  list(): Promise<RuleList> {
    return this.client.getJson<RuleList>('/admin/limits');
  }

  async save(rule: Rule): Promise<void> {
    await this.client.request(`/admin/limits/${encodeURIComponent(rule.id)}`, {
      method: 'PUT',
      body: serializeRule(rule),
    });
  }

  async remove(id: string): Promise<boolean> {
    const answer = await this.client.request<ApiError | undefined>(
      `/admin/limits/${encodeURIComponent(id)}`,
      {
        method: 'DELETE',
        accept: [404, 409],
      },
    );
    if (answer.status === 409) {
      throw new RuntimeFailure(
        `${answer.body?.message ?? `rule "${id}" is not kept in the store`} (${this.description} cannot remove it).`,
      );
    }
    // The admin app answers unknown routes with a 404 of its own: an older proxy, or not a proxy.
    if (answer.status === 404 && !answer.body?.message?.startsWith('No rule')) {
      throw new RuntimeFailure(
        `${this.client.baseUrl} has no limits API: is it the admin port of a meli-proxy?`,
      );
    }
    return answer.status !== 404;
  }

  test(query: TestQuery): Promise<TestAnswer> {
    return this.client.getJson<TestAnswer>('/admin/limits/test', {
      ip: query.ip,
      path: query.path,
      method: query.method,
      header: query.headers,
      tokenHash: query.tokenHash,
    });
  }

  async close(): Promise<void> {}
}

class StoreTarget implements LimitsTarget {
  readonly live = false;

  constructor(
    private readonly store: Store,
    readonly description: string,
    readonly takesEffect: string,
    readonly caveat?: string,
  ) {}

  async list(): Promise<RuleList> {
    const { rules, invalid } = await this.guard('read the rules from', () =>
      listStoredRules(this.store.documents),
    );
    const listed = rules.map((rule) => ({ ...serializeRule(rule), source: 'store' }) as ListedRule);
    return invalid.length > 0 ? { rules: listed, invalid } : { rules: listed };
  }

  save(rule: Rule): Promise<void> {
    return this.guard('save the rule in', () => saveRule(this.store.documents, rule));
  }

  remove(id: string): Promise<boolean> {
    return this.guard('remove the rule from', () => deleteRule(this.store.documents, id));
  }

  async test(): Promise<TestAnswer> {
    throw new UsageError('`limits test` needs a running proxy: drop --store.');
  }

  close(): Promise<void> {
    return this.store.close();
  }

  private async guard<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw new RuntimeFailure(
        `could not ${what} the store ${this.store.displayUrl}: ${(error as Error).message}`,
      );
    }
  }
}

/** The admin API, or the store when `--store` is given. */
export async function openTarget(
  flags: TargetFlags,
  io: CliIO,
  deps: TargetDeps = {},
): Promise<LimitsTarget> {
  if (flags.store === undefined) {
    const client = new AdminClient({
      ...adminClientOptions(io.env, flags),
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
    });
    return new AdminTarget(client);
  }
  if (flags.adminUrl !== undefined) {
    throw new UsageError(
      'Give either --store (write the store directly) or --admin-url (a running proxy), not both.',
    );
  }
  const target = parseStoreUrl(flags.store);
  if (target.kind === 'embedded' && !target.persistent) {
    throw new UsageError(
      '--store memory keeps nothing once this command ends: give the store the proxy uses (embedded with its --data-dir, postgres://… or redis://…).',
    );
  }
  const dataDir = resolveDataDir(flags.dataDir, io);
  const store = await openStore(flags.store, { dataDir });
  if (target.kind === 'embedded') {
    return new StoreTarget(
      store,
      `the embedded store in ${dataDir}`,
      `Saved in the embedded store in ${dataDir}: a proxy started with this data dir loads it.`,
      'a proxy already running on this data dir does not see changes made here (and may overwrite them): restart it, or use its admin API instead (drop --store).',
    );
  }
  return new StoreTarget(
    store,
    `the store ${store.displayUrl}`,
    `Saved in the store ${store.displayUrl}: running proxies pick it up within about a second.`,
  );
}

function resolveDataDir(flag: string | undefined, io: CliIO): string {
  const raw = flag ?? io.env[SETTINGS.dataDir.env];
  if (raw === undefined || raw.trim() === '') return SETTINGS.dataDir.defaultValue(io.env);
  return path.resolve(io.cwd, raw.trim());
}
