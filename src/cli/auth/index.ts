/**
 * `meli-proxy auth login | list | status | refresh | logout | default | rotate-key`: MercadoLibre
 * accounts (a token per seller) for the proxy, and looking after their tokens. One module per subcommand; what they share (settings, the token
 * store and refresh lock, I/O) comes from factory.ts. Progress goes to stderr, results to stdout
 * (`--json` makes them one JSON object).
 */
import type { Command } from 'commander';
import { registerDefault } from './default.js';
import { type AuthIO, authFactory } from './factory.js';
import { registerList } from './list.js';
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
  registerList(auth, f);
  registerStatus(auth, f);
  registerRefresh(auth, f);
  registerLogout(auth, f);
  registerDefault(auth, f);
  registerRotateKey(auth, f);
  for (const command of auth.commands) command.exitOverride();
  auth.exitOverride();
}
