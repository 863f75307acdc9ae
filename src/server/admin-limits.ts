/**
 * `GET /admin/limits`, `PUT /admin/limits/:id`, `DELETE /admin/limits/:id` and
 * `GET /admin/limits/test`: rules in the shared store, picked up by every replica within seconds
 * (this one at once). The test endpoint takes the bearer token as `tokenHash` (its SHA-256 hex,
 * what `meli-proxy limits test --token` sends) or, for hand-made calls, as `token`.
 */
import type { FastifyPluginAsync } from 'fastify';
import { parseRule, RuleError, serializeRule } from '../limits/index.js';
import { deleteRule, saveRule } from '../limits/rule-store.js';
import type { Store } from '../store/types.js';
import { apiErrorReply } from './api-error.js';
import type { RateLimiter } from './rate-limit.js';

interface LimitsDeps {
  store: Store;
  rateLimit: RateLimiter;
  /** The /metrics text: under `serve --workers N`, every worker's counts added up. */
  metrics: { render(): Promise<string> };
}

interface RuleCounts {
  matched: number;
  rejected: number;
  shadowExceeded: number;
}

const COUNT_FIELDS: Record<string, keyof RuleCounts> = {
  meli_proxy_rule_matched_total: 'matched',
  meli_proxy_rate_limited_total: 'rejected',
  meli_proxy_shadow_exceeded_total: 'shadowExceeded',
};
const COUNT_LINE =
  /^(meli_proxy_rule_matched_total|meli_proxy_rate_limited_total|meli_proxy_shadow_exceeded_total)\{rule="((?:[^"\\]|\\.)*)"\} (\S+)$/gm;

/**
 * Per-rule counts read from the metrics exposition, so they are the same the whole host over
 * (the cluster gathers them from every worker) and only grow, whatever other rules change.
 */
export function ruleCountsFrom(exposition: string): Map<string, RuleCounts> {
  const counts = new Map<string, RuleCounts>();
  for (const [, family, escaped, value] of exposition.matchAll(COUNT_LINE)) {
    const rule = escaped!.replace(/\\(.)/g, (_, char: string) => (char === 'n' ? '\n' : char));
    const entry = counts.get(rule) ?? { matched: 0, rejected: 0, shadowExceeded: 0 };
    entry[COUNT_FIELDS[family!]!] = Number(value);
    counts.set(rule, entry);
  }
  return counts;
}

/** A repeated query parameter arrives as a list; only `header` may repeat. */
interface TestQuery {
  ip?: string | string[];
  path?: string | string[];
  method?: string | string[];
  header?: string | string[];
  token?: string | string[];
  /** SHA-256 hex of the bearer token, so a client need not send the token itself. */
  tokenHash?: string | string[];
}

const SINGLE_TEST_PARAMS = ['ip', 'path', 'method', 'token', 'tokenHash'] as const;

export function limitsRoutes({ store, rateLimit, metrics }: LimitsDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/admin/limits', async () => {
      const stats = ruleCountsFrom(await metrics.render());
      return {
        rules: rateLimit.rules.map((rule) => {
          const entry = stats.get(rule.id);
          return {
            ...serializeRule(rule),
            source: rateLimit.sourceOf(rule.id),
            matched: entry?.matched ?? 0,
            rejected: entry?.rejected ?? 0,
            shadowExceeded: entry?.shadowExceeded ?? 0,
          };
        }),
      };
    });

    app.put<{ Params: { id: string }; Body: unknown }>('/admin/limits/:id', async (request, reply) => {
      const body = request.body;
      if (!body || typeof body !== 'object' || Array.isArray(body)) {
        return apiErrorReply(
          reply,
          400,
          'bad_request',
          'The body must be a JSON rule such as {"match":{"ip":"152.152.152.152"},"limit":"1000/m"}.',
        );
      }
      const given = (body as { id?: unknown }).id;
      if (given !== undefined && given !== request.params.id) {
        return apiErrorReply(
          reply,
          400,
          'bad_request',
          `The rule id in the body ("${String(given)}") differs from the one in the URL ("${request.params.id}").`,
        );
      }
      let rule: ReturnType<typeof parseRule>;
      try {
        rule = parseRule({ ...body, id: request.params.id }, 'PUT /admin/limits');
      } catch (error) {
        if (error instanceof RuleError) return apiErrorReply(reply, 400, 'invalid_rule', error.message);
        throw error;
      }
      try {
        await saveRule(store.documents, rule);
      } catch (error) {
        return apiErrorReply(
          reply,
          503,
          'store_unavailable',
          `The rule could not be stored: ${(error as Error).message}`,
        );
      }
      await rateLimit.reloadEverywhere();
      return { rule: serializeRule(rule) };
    });

    app.delete<{ Params: { id: string } }>('/admin/limits/:id', async (request, reply) => {
      const { id } = request.params;
      let deleted: boolean;
      try {
        deleted = await deleteRule(store.documents, id);
      } catch (error) {
        return apiErrorReply(
          reply,
          503,
          'store_unavailable',
          `The rule could not be removed: ${(error as Error).message}`,
        );
      }
      if (!deleted) {
        const inForce = rateLimit.rules.some((rule) => rule.id === id);
        return inForce
          ? apiErrorReply(
              reply,
              409,
              'conflict',
              `Rule "${id}" comes from the ${rateLimit.sourceOf(id) === 'env' ? 'environment' : 'config file'}; change it there.`,
            )
          : apiErrorReply(reply, 404, 'not_found', `No rule "${id}" in the store.`);
      }
      await rateLimit.reloadEverywhere();
      return { deleted: id };
    });

    app.get<{ Querystring: TestQuery }>('/admin/limits/test', async (request, reply) => {
      const repeated = SINGLE_TEST_PARAMS.find((name) => {
        const value = request.query[name];
        return value !== undefined && typeof value !== 'string';
      });
      if (repeated)
        return apiErrorReply(
          reply,
          400,
          'bad_request',
          `Give ${repeated} at most once (only header may repeat).`,
        );
      const { ip, path, method, token, tokenHash } = request.query as Record<
        (typeof SINGLE_TEST_PARAMS)[number],
        string | undefined
      >;
      if (!ip || !path)
        return apiErrorReply(
          reply,
          400,
          'bad_request',
          'Give at least ip and path, e.g. ?ip=152.152.152.152&path=/items/MLA1.',
        );
      if (tokenHash !== undefined && !/^[0-9a-f]{64}$/i.test(tokenHash))
        return apiErrorReply(
          reply,
          400,
          'bad_request',
          'tokenHash must be a SHA-256 digest as 64 hexadecimal characters.',
        );
      const headers: Record<string, string> = {};
      const given = request.query.header;
      for (const entry of given === undefined ? [] : Array.isArray(given) ? given : [given]) {
        const at = entry.indexOf('=');
        if (at <= 0) return apiErrorReply(reply, 400, 'bad_request', `header "${entry}" must be name=value.`);
        headers[entry.slice(0, at).trim().toLowerCase()] = entry.slice(at + 1);
      }
      const usage = rateLimit.inspect(
        ip,
        (method ?? 'GET').toUpperCase(),
        path,
        headers,
        token ? `Bearer ${token}` : undefined,
        tokenHash?.toLowerCase(),
      );
      return {
        matches: usage.map((entry) => ({
          id: entry.rule.id,
          mode: entry.rule.mode,
          limit: entry.rule.limit,
          burst: entry.rule.burst,
          windowSeconds: entry.rule.windowSeconds,
          key: entry.key,
          used: entry.used,
          remaining: entry.remaining,
          resetSeconds: entry.resetSeconds,
        })),
      };
    });
  };
}
