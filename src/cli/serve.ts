import cluster from 'node:cluster';
import { setFlagsFromString } from 'node:v8';
import closeWithGrace from 'close-with-grace';
import type { Command } from 'commander';
import type { ProxyTokenAuth } from '../auth/proxy-auth.js';
import { loadConfig, SETTING_KEYS, SETTINGS, type SettingKey } from '../config.js';
import { createLogger, flushLogger, isPrettyLog, logDestination } from '../logger.js';
import { assertAdminExposureAllowed } from '../server/admin-auth.js';
import { clusterWorkerIndex } from '../server/cluster-worker.js';
import type { startServer } from '../server/index.js';
import { openStore } from '../store/index.js';
import { VERSION } from '../version.js';
import type { CliIO } from './io.js';

interface ServeFlags extends Partial<Record<SettingKey, string>> {
  config?: string;
  migrate?: boolean;
}

/** Signals a cluster worker handles itself instead of closeWithGrace (see below). */
const WORKER_SIGNALS: ('SIGINT' | 'SIGHUP' | 'SIGTERM')[] = ['SIGINT', 'SIGHUP', 'SIGTERM'];

export function registerServe(program: Command, io: CliIO): void {
  const command = program
    .command('serve')
    .description('Run the proxy: forwards every request to the upstream, with rate limits and metrics.')
    .option('-c, --config <file>', 'YAML or JSON config file (env MELI_PROXY_CONFIG)')
    .option('--migrate', 'apply pending database migrations before serving');
  for (const key of SETTING_KEYS) {
    const spec = SETTINGS[key];
    command.option(`${spec.flag} ${spec.arg}`, `${spec.description} (env ${spec.env})`);
  }
  command.addHelpText(
    'after',
    '\nPrecedence: defaults < config file < environment < flags. Every setting is listed in docs/configuration.md.',
  );
  command.action(async (flags: ServeFlags) => {
    const settings: Partial<Record<SettingKey, unknown>> = {};
    for (const key of SETTING_KEYS) if (flags[key] !== undefined) settings[key] = flags[key];
    const config = loadConfig({ file: flags.config, env: io.env, flags: settings, cwd: io.cwd });
    // `--workers N`: this process is either the cluster's primary (it forks the workers, which run
    // this same command) or one of the workers; see server/cluster.ts.
    const worker = clusterWorkerIndex(io.env);
    const root = createLogger(config.logLevel, logDestination(config.logFormat));
    const logger = worker === undefined ? root : root.child({ worker });
    // Refused before any store is opened or worker forked: exit 2 with the reason, not a failure later.
    if (config.injectToken) (await import('../auth/proxy-auth.js')).checkTokenInjection(config, io.env);
    // Each role loads only what it runs: a cluster primary serves no request, so the server, its
    // framework and the OAuth client stay out of its memory.
    if (config.workers > 1 && cluster.isPrimary) {
      // What every worker would refuse is refused once, here, before anything is forked.
      assertAdminExposureAllowed(config.adminHost, config.adminToken);
      (await import('../limits/env.js')).startupRules(
        config.limits,
        config.configFile ?? 'config file',
        io.env,
      );
      const { runClusterPrimary } = await import('../server/cluster.js');
      process.exit(await runClusterPrimary({ config, logger }));
    }
    const [{ startServer }, { primaryOwnsStore }, { joinCluster, primaryRefreshLock, primaryStore }] =
      await Promise.all([
        import('../server/index.js'),
        import('../server/cluster.js'),
        import('../server/cluster-worker.js'),
      ]);
    // V8 lets the old generation grow to several times what survives a full GC before collecting
    // again; with a million rate-limit keys that garbage dominates RSS. Collecting at 1.5× keeps a
    // serving process within its memory budget (measured in bench/README.md) for a little more GC.
    setFlagsFromString('--heap-growing-percent=50');
    const store =
      worker !== undefined && primaryOwnsStore(config)
        ? await primaryStore()
        : await openStore(config.store, {
            dataDir: config.dataDir,
            logger,
            migrate: flags.migrate === true,
            operationTimeoutMs: config.storeTimeout,
          });
    let server: Awaited<ReturnType<typeof startServer>>;
    let tokenAuth: ProxyTokenAuth | undefined;
    try {
      if (config.injectToken) {
        const { startProxyTokenAuth } = await import('../auth/proxy-auth.js');
        // The workers of one host refresh through the primary's lock; elsewhere the store's is used.
        const hostLock = worker !== undefined && primaryOwnsStore(config) ? primaryRefreshLock() : undefined;
        tokenAuth = await startProxyTokenAuth({ config, logger, env: io.env, hostLock });
      }
      server = await startServer(config, {
        logger,
        store,
        version: VERSION,
        env: io.env,
        upstreamAuth: tokenAuth?.manager,
        // Stops refreshing (and frees the refresh lock) before the store closes.
        flushers: tokenAuth ? [tokenAuth.stop] : [],
        warnAboutSetup: worker === undefined || worker === 1,
      });
    } catch (error) {
      await tokenAuth?.stop().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw error;
    }
    tokenAuth?.manager.registerMetrics(server.metrics.registry);
    // Once per host: a person hears at once that the upstream cannot be reached (it opens one
    // connection to it, so it is left out of servers embedded elsewhere, such as the tests').
    if (worker === undefined || worker === 1) {
      (await import('../server/upstream-check.js')).warnIfUpstreamUnreachable(config.upstream, logger);
    }
    if (isPrettyLog(config.logFormat) && (worker === undefined || worker === 1)) {
      const { startupSummary } = await import('../server/startup-summary.js');
      io.stdout.write(
        startupSummary(config, {
          proxyUrl: server.proxyUrl,
          adminUrl: server.adminUrl,
          store: store.displayUrl,
          rules: server.rateLimit.rules.length,
          version: VERSION,
        }),
      );
    }
    if (worker !== undefined) await joinCluster(server);
    // Exits the process when done: 0 after a signal, 1 after an uncaught error.
    const grace = closeWithGrace(
      {
        delay: config.shutdownGrace + 5000,
        logger: { error: (message: unknown) => logger.error({ detail: String(message) }, 'forced exit') },
        ...(worker === undefined ? {} : { skip: WORKER_SIGNALS }),
      },
      async ({ signal, err }) => {
        if (err) logger.error({ err }, 'uncaught error: shutting down');
        await server.shutdown(signal ?? (err ? 'error' : 'SIGTERM'));
        await flushLogger(logger);
      },
    );
    if (worker !== undefined) {
      // The primary decides when workers stop. A terminal's Ctrl-C (or a kill of the whole process
      // group) reaches every worker as well as the primary, which then sends each a SIGTERM: the
      // worker's own copy must neither start a second drain nor count as the "second signal" that
      // forces an exit. The first SIGTERM drains; the primary escalates to SIGKILL if need be.
      let draining = false;
      process.on('SIGINT', () => undefined);
      process.on('SIGHUP', () => undefined);
      process.on('SIGTERM', () => {
        if (draining) return;
        draining = true;
        void grace.close();
      });
    }
    await new Promise<never>(() => undefined);
  });
}
