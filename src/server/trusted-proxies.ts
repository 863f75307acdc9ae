import { compileRanges, type IpRange, parseIpInto, parseIpRange, rangeSetContains } from '../limits/ip.js';

/** Decides whether a socket peer is a configured trusted proxy (`--trust-proxy`). */
export type TrustFunction = (address: string) => boolean;

/**
 * Compiles `--trust-proxy` with the parser and range set that rules use, so what the settings
 * accept is exactly what is matched here (an IPv4-mapped peer `::ffff:10.0.0.1` counts as IPv4).
 */
export function compileTrust(entries: readonly string[]): TrustFunction {
  if (entries.length === 0) return () => false;
  const ranges = entries.map((entry): IpRange => {
    const range = parseIpRange(entry);
    // The settings validate every entry with parseIpRange: a failure here is a programming error.
    if (typeof range === 'string') throw new Error(`--trust-proxy entry ${JSON.stringify(entry)}: ${range}`);
    return range;
  });
  const set = compileRanges(ranges);
  const words = new Uint32Array(4);
  return (address) => rangeSetContains(set, parseIpInto(address, words), words);
}
