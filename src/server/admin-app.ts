/**
 * The admin API on its own port. Every route under it requires the admin bearer token when one is
 * configured; without one it only ever listens on loopback (checked at start-up).
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyPluginAsync,
  LogController,
} from 'fastify';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { adminTokenDigest, bearerMatches, isLoopbackHostHeader } from './admin-auth.js';
import { apiErrorReply } from './api-error.js';
import { createClientErrorHandler, serverOptions } from './client-guards.js';

/** The `error` word of the API's error body for the refusals Fastify makes itself. */
const CLIENT_ERRORS: Readonly<Record<number, string>> = {
  400: 'bad_request',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

export interface AdminAppOptions {
  config: Config;
  logger: Logger;
  /** Route groups contributed by other parts (limits, stats, auth). */
  plugins: FastifyPluginAsync[];
}

export async function buildAdminApp(options: AdminAppOptions): Promise<FastifyInstance> {
  const { config, logger } = options;
  const app = Fastify({
    // Fastify's own info lines ("Server listening at …") repeat what startServer logs: warnings up.
    loggerInstance: logger.child(
      { component: 'admin' },
      { level: logger.levelVal >= 40 ? logger.level : 'warn' },
    ) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    // The same slow-client limits as the proxy port.
    http: serverOptions(config),
    requestTimeout: config.requestTimeout,
    keepAliveTimeout: config.keepAliveTimeout,
    clientErrorHandler: createClientErrorHandler(() => undefined),
  });

  const expected = config.adminToken ? adminTokenDigest(config.adminToken) : undefined;
  app.addHook('onRequest', async (request, reply) => {
    if (!expected) {
      // Without a token the loopback address is the only protection: a page that rebinds its own
      // host name to 127.0.0.1 (DNS rebinding) still sends that name as Host, so only loopback
      // names are answered.
      if (isLoopbackHostHeader(request.headers.host)) return;
      reply.send(
        apiErrorReply(reply, 403, 'forbidden', 'Use a loopback address (127.0.0.1, ::1 or localhost).'),
      );
      return reply;
    }
    // The dashboard's page and assets hold no data; every data request it makes carries the token.
    if (request.routeOptions.config.adminPublic === true) return;
    if (bearerMatches(request.headers.authorization, expected)) return;
    // Same answer for a missing and a wrong token: nothing to learn from a 401.
    reply.header('www-authenticate', 'Bearer realm="meli-proxy admin"');
    reply.send(apiErrorReply(reply, 401, 'unauthorized', 'A valid admin token is required.'));
  });

  // Fastify's own refusals (a body that is not JSON, too large, of another type) answer in the
  // admin API's error shape like every other error; anything unexpected is logged and told apart
  // from the caller's mistakes without detail.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status =
      error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500
        ? error.statusCode
        : 500;
    if (status === 500) request.log.error({ err: error }, 'admin request failed');
    reply.send(
      status === 500
        ? apiErrorReply(reply, 500, 'internal_error', 'The admin API failed to answer; see the proxy log.')
        : apiErrorReply(reply, status, CLIENT_ERRORS[status] ?? 'bad_request', error.message),
    );
  });

  app.setNotFoundHandler((_request, reply) => {
    reply.send(apiErrorReply(reply, 404, 'not_found', 'No such admin endpoint.'));
  });

  for (const plugin of options.plugins) await app.register(plugin);
  return app;
}
