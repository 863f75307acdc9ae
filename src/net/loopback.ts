import { parseIpInto } from '../limits/ip.js';

/**
 * Whether a host name or address stays on this machine: `localhost`, any 127.0.0.0/8 address
 * (also IPv4-mapped, `::ffff:127.0.0.1`) or `::1` in any spelling, with or without URL brackets.
 * The one answer for the admin API's exposure check, its Host header check and plain-http endpoints.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare.toLowerCase() === 'localhost') return true;
  const words = new Uint32Array(4);
  const family = parseIpInto(bare, words);
  if (family === 4) return words[0]! >>> 24 === 127;
  return family === 6 && words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 1;
}
