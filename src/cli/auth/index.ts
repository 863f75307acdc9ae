/**
 * `meli-proxy auth login | status | refresh | logout | rotate-key`: get a MercadoLibre token for
 * the proxy and look after it. One module per subcommand; what they share (settings, the token
 * store and refresh lock, I/O) comes from factory.ts. Progress goes to stderr, results to stdout
 * (`--json` makes them one JSON object).
 */
import type { Command } from 'commander';
import { type AuthIO, authFactory } from './factory.js';
import { registerLogin } from './login.js';
import { registerLogout } from './logout.js';
import { registerRefresh } from './refresh.js';
import { registerRotateKey } from './rotate-key.js';
import { registerStatus } from './status.js';

export type { AuthIO } from './factory.js';
export { DEFAULT_CALLBACK_PORT } from './login.js';

export function registerAuth(program: Command, io: AuthIO): void {
  const f = authFactory(io);
  const auth = program
    .command('auth')
    .description('Log in to MercadoLibre and manage the token the proxy injects (serve --inject-token).');
  registerLogin(auth, f);
  registerStatus(auth, f);
  registerRefresh(auth, f);
  registerLogout(auth, f);
  registerRotateKey(auth, f);
  for (const command of auth.commands) command.exitOverride();
  auth.exitOverride();
}
