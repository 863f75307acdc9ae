/**
 * A start-up look at the upstream: does its name resolve, does it accept a connection? A proxy
 * that cannot reach it still starts and stays ready (the upstream may come back, and requests get a
 * 502 meanwhile); the operator just hears about it at once instead of from the first 502.
 */
import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import type { Logger } from '../logger.js';

const CHECK_TIMEOUT_MS = 5000;

function defaultPort(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

/** Why the upstream looks unreachable, or undefined when a TCP connection to it succeeded. */
export async function upstreamProblem(url: URL, timeoutMs = CHECK_TIMEOUT_MS): Promise<string | undefined> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  let address: string;
  try {
    address = (await lookup(host)).address;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    return `its name ${host} does not resolve (${code})`;
  }
  return new Promise((resolve) => {
    const socket = connect({ host: address, port: defaultPort(url) });
    const finish = (problem: string | undefined) => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () =>
      finish(`no answer from ${address}:${defaultPort(url)} within ${timeoutMs} ms`),
    );
    socket.once('connect', () => finish(undefined));
    socket.once('error', (error: NodeJS.ErrnoException) =>
      finish(`${address}:${defaultPort(url)} refused the connection (${error.code ?? error.message})`),
    );
  });
}

/** Checks in the background and logs one warning when the upstream looks unreachable. */
export function warnIfUpstreamUnreachable(url: URL, logger: Logger): void {
  void upstreamProblem(url).then((problem) => {
    if (problem)
      logger.warn(
        { upstream: url.origin, problem },
        'the upstream looks unreachable: requests get 502 until it answers (the proxy stays ready)',
      );
  });
}
