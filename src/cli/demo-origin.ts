/**
 * `meli-proxy demo-origin`: runs the local stand-in for MercadoLibre's API (src/demo/origin.ts) so
 * the proxy can be tried with no internet and no credentials:
 *
 *   meli-proxy demo-origin --port 9090 &
 *   meli-proxy serve --upstream http://127.0.0.1:9090
 *
 * Runs until SIGINT or SIGTERM. Exit codes: 0 stopped by a signal, 1 cannot listen, 2 bad flags.
 */
import type { Command } from 'commander';
import { startDemoOrigin } from '../demo/origin.js';
import { UsageError } from '../errors.js';
import type { CliIO } from './io.js';

interface DemoOriginFlags {
  host: string;
  port: string;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw new UsageError(`Invalid --port "${text}": expected an integer from 0 to 65535.`);
  }
  return port;
}

export async function runDemoOrigin(
  flags: DemoOriginFlags,
  io: CliIO,
  stop: Promise<unknown>,
): Promise<void> {
  const port = parsePort(flags.port);
  const { server, url } = await startDemoOrigin(flags.host, port);
  io.stdout.write(
    `demo origin listening on ${url} (a stand-in for https://api.mercadolibre.com: /items/:id, /categories/:id, /sites/:site/search, /users/me)\n`,
  );
  await stop;
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function signalled(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

export function registerDemoOrigin(program: Command, io: CliIO): void {
  program
    .command('demo-origin')
    .description("Run a local stand-in for MercadoLibre's API, to try the proxy without the internet.")
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 picks a free one)', '9090')
    .action((flags: DemoOriginFlags) => runDemoOrigin(flags, io, signalled()));
}
