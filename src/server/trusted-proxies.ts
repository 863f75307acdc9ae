import ipaddr from 'ipaddr.js';

/** Decides whether a socket peer is a configured trusted proxy (`--trust-proxy`). */
export type TrustFunction = (address: string) => boolean;

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

function toRange(entry: string): Range {
  if (entry.includes('/')) return ipaddr.parseCIDR(entry);
  const address = ipaddr.parse(entry);
  return [address, address.kind() === 'ipv4' ? 32 : 128];
}

/** Normalises IPv4-mapped IPv6 (`::ffff:10.0.0.1`) so one CIDR list covers both socket families. */
function parseAddress(address: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    return ipaddr.process(address);
  } catch {
    return undefined;
  }
}

export function compileTrust(entries: readonly string[]): TrustFunction {
  if (entries.length === 0) return () => false;
  const ranges = entries.map(toRange);
  const cache = new Map<string, boolean>();
  return (address) => {
    const known = cache.get(address);
    if (known !== undefined) return known;
    const parsed = parseAddress(address);
    let trusted = false;
    if (parsed) {
      for (const [network, bits] of ranges) {
        if (network.kind() === parsed.kind() && parsed.match(network, bits)) {
          trusted = true;
          break;
        }
      }
    }
    // Peers are few (load balancers, ingress pods); the cache stays small for trusted ones, and the
    // bound keeps a spray of untrusted addresses from growing it.
    if (cache.size < 1024) cache.set(address, trusted);
    return trusted;
  };
}
