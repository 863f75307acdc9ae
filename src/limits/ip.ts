/**
 * Client addresses and CIDR ranges as 32-bit words. Requests are parsed by hand for dotted IPv4
 * (also behind the `::ffff:` prefix that dual-stack sockets report) because that is nearly every
 * request and must not allocate; anything else with a colon goes through ipaddr.js, which also
 * parses the ranges in rules, so both sides agree on what IPv6 text means.
 */
import ipaddr from 'ipaddr.js';

export type IpFamily = 4 | 6;

export interface IpRange {
  readonly family: IpFamily;
  /** Network address: word 0 for IPv4, words 0..3 (big-endian) for IPv6. */
  readonly words: Uint32Array;
  readonly mask: Uint32Array;
  readonly prefix: number;
  /** Canonical text: mapped IPv6 shown as IPv4, `/prefix` only when narrower than one address. */
  readonly text: string;
}

/**
 * A set of ranges as sorted, disjoint intervals of addresses, so that a lookup is a binary search
 * whose cost grows with log(ranges), not with their number. IPv4 intervals are [start, end] words;
 * IPv6 ones four words each for start and for end. Used by rules (`match.ip`) and `--trust-proxy`.
 */
export interface IpRangeSet {
  readonly v4Start: Uint32Array;
  readonly v4End: Uint32Array;
  readonly v6Start: Uint32Array;
  readonly v6End: Uint32Array;
}

export const IP_EXPECTED =
  'an IPv4/IPv6 address or CIDR range (e.g. 152.152.152.152, 10.0.0.0/8, 2001:db8::/32)';

/**
 * Parses a client address into `out` and returns its family, or 0 when the text is no address.
 * IPv4-mapped IPv6 (::ffff:1.2.3.4) comes back as IPv4 so one rule covers both socket kinds.
 */
export function parseIpInto(text: string, out: Uint32Array): 0 | IpFamily {
  const v4 = parseDottedQuad(text, 0);
  if (v4 >= 0) {
    out[0] = v4;
    return 4;
  }
  if (text.indexOf(':') < 0) return 0;
  if (hasMappedPrefix(text)) {
    const mapped = parseDottedQuad(text, 7);
    if (mapped >= 0) {
      out[0] = mapped;
      return 4;
    }
  }
  return parseIpv6Into(text, out);
}

/**
 * The text used in counter keys, so that `::ffff:1.2.3.4` and `1.2.3.4` share a counter and IPv6
 * spellings collapse to RFC 5952. Plain dotted IPv4 is returned as given (no allocation).
 */
export function canonicalIp(text: string, family: 0 | IpFamily, out: Uint32Array): string {
  if (family === 4) return text.indexOf(':') < 0 ? text : formatIpv4(out[0] as number);
  if (family === 6) return formatIpv6(out);
  return text;
}

export function rangeSetContains(set: IpRangeSet, family: 0 | IpFamily, words: Uint32Array): boolean {
  if (family === 4) {
    const address = words[0] as number;
    const starts = set.v4Start;
    // The last interval starting at or before the address is the only one that can hold it.
    let low = 0;
    let high = starts.length - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if ((starts[mid] as number) <= address) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found >= 0 && address <= (set.v4End[found] as number);
  }
  if (family === 6) {
    const starts = set.v6Start;
    let low = 0;
    let high = starts.length / 4 - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (compareWords(starts, mid * 4, words, 0) <= 0) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found >= 0 && compareWords(words, 0, set.v6End, found * 4) <= 0;
  }
  return false;
}

/** Compares the numbers written big-endian in a[i..i+n-1] and b[j..j+n-1] (n: 4, or 1 for IPv4). */
function compareWords(a: Uint32Array, i: number, b: Uint32Array, j: number, n = 4): number {
  for (let k = 0; k < n; k++) {
    const x = a[i + k] as number;
    const y = b[j + k] as number;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export function compileRanges(ranges: readonly IpRange[]): IpRangeSet {
  const v4 = mergeIntervals(ranges.filter((r) => r.family === 4).map((r) => interval(r, 1)));
  const v6 = mergeIntervals(ranges.filter((r) => r.family === 6).map((r) => interval(r, 4)));
  const set = {
    v4Start: new Uint32Array(v4.length),
    v4End: new Uint32Array(v4.length),
    v6Start: new Uint32Array(v6.length * 4),
    v6End: new Uint32Array(v6.length * 4),
  };
  v4.forEach(([start, end], i) => {
    set.v4Start[i] = start[0] as number;
    set.v4End[i] = end[0] as number;
  });
  v6.forEach(([start, end], i) => {
    set.v6Start.set(start, i * 4);
    set.v6End.set(end, i * 4);
  });
  return set;
}

type Interval = [start: Uint32Array, end: Uint32Array];

/** First and last address of a range (its network, and the network with every host bit set). */
function interval(range: IpRange, words: number): Interval {
  const start = range.words.slice(0, words);
  const end = new Uint32Array(words);
  for (let i = 0; i < words; i++) end[i] = ((range.words[i] as number) | ~(range.mask[i] as number)) >>> 0;
  return [start, end];
}

/** Sorted by start, overlapping or nested intervals joined, so that they are disjoint. */
function mergeIntervals(intervals: Interval[]): Interval[] {
  const compare = (a: Uint32Array, b: Uint32Array) => compareWords(a, 0, b, 0, a.length);
  intervals.sort((a, b) => compare(a[0], b[0]));
  const merged: Interval[] = [];
  for (const next of intervals) {
    const last = merged[merged.length - 1];
    if (last !== undefined && compare(next[0], last[1]) <= 0) {
      if (compare(next[1], last[1]) > 0) last[1] = next[1];
    } else {
      merged.push(next);
    }
  }
  return merged;
}

/**
 * Parses `addr` or `addr/prefix` from a rule. Returns the reason as a string when it is not valid,
 * so the rule parser can put it in a RuleError. Host bits must be zero: `10.1.2.3/8` is more often
 * a typo than a wish, and the message offers the network that was probably meant.
 */
export function parseIpRange(input: string): IpRange | string {
  const text = input.trim();
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1);

  let family: IpFamily;
  const words = new Uint32Array(4);
  let bits: number;
  if (ipaddr.IPv4.isValidFourPartDecimal(addressText)) {
    family = 4;
    words[0] = octetsToWord(ipaddr.IPv4.parse(addressText).octets);
    bits = 32;
  } else if (addressText.includes(':') && ipaddr.IPv6.isValid(addressText)) {
    const address = ipaddr.IPv6.parse(addressText);
    if (address.zoneId !== undefined) return 'a zone id (%...) is not allowed';
    if (address.isIPv4MappedAddress()) {
      family = 4;
      words[0] = octetsToWord(address.toIPv4Address().octets);
      bits = 128;
    } else {
      family = 6;
      partsToWords(address.parts, words);
      bits = 128;
    }
  } else {
    return 'not an IP address';
  }

  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
      return `the prefix length must be 0 to ${bits}`;
    }
    prefix = Number(prefixText);
  }
  if (family === 4 && bits === 128) {
    if (prefix < 96) return 'an IPv4-mapped range needs a prefix of at least 96';
    prefix -= 96;
  }

  const mask = maskWords(family, prefix);
  const network = new Uint32Array(4);
  for (let i = 0; i < 4; i++) network[i] = (words[i]! & mask[i]!) >>> 0;
  const networkText = family === 4 ? formatIpv4(network[0] as number) : formatIpv6(network);
  const full = family === 4 ? 32 : 128;
  const canonical = prefix === full ? networkText : `${networkText}/${prefix}`;
  if (network.some((word, i) => word !== words[i])) {
    return `host bits are set (did you mean ${networkText}/${prefix}?)`;
  }
  return { family, words: network, mask, prefix, text: canonical };
}

/**
 * The IPv4 address written from `start` to the end of `text` as a 32-bit number, or -1 unless it is
 * a dotted quad in canonical form (no leading zeros), so that number and text map one to one.
 */
export function parseDottedQuad(text: string, start: number): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      // A leading zero reads as octal to some parsers and decimal to others: refuse it.
      if (digits > 0 && part === 0) return -1;
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + part;
}

function hasMappedPrefix(text: string): boolean {
  if (text.length < 14) return false;
  return (
    text.charCodeAt(0) === 58 &&
    text.charCodeAt(1) === 58 &&
    (text.charCodeAt(2) | 0x20) === 102 &&
    (text.charCodeAt(3) | 0x20) === 102 &&
    (text.charCodeAt(4) | 0x20) === 102 &&
    (text.charCodeAt(5) | 0x20) === 102 &&
    text.charCodeAt(6) === 58
  );
}

function parseIpv6Into(text: string, out: Uint32Array): 0 | IpFamily {
  if (!ipaddr.IPv6.isValid(text)) return 0;
  const address = ipaddr.IPv6.parse(text);
  if (address.isIPv4MappedAddress()) {
    out[0] = octetsToWord(address.toIPv4Address().octets);
    return 4;
  }
  partsToWords(address.parts, out);
  return 6;
}

function octetsToWord(octets: readonly number[]): number {
  return ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
}

function partsToWords(parts: readonly number[], out: Uint32Array): void {
  for (let i = 0; i < 4; i++) out[i] = ((parts[i * 2]! << 16) | parts[i * 2 + 1]!) >>> 0;
}

function maskWords(family: IpFamily, prefix: number): Uint32Array {
  const mask = new Uint32Array(4);
  const words = family === 4 ? 1 : 4;
  let left = prefix;
  for (let i = 0; i < words; i++) {
    const take = Math.min(32, Math.max(0, left));
    mask[i] = take === 0 ? 0 : (0xffffffff << (32 - take)) >>> 0;
    left -= take;
  }
  return mask;
}

/** Dotted-quad text of an IPv4 address held as a 32-bit number. */
export function formatIpv4(word: number): string {
  return `${word >>> 24}.${(word >>> 16) & 255}.${(word >>> 8) & 255}.${word & 255}`;
}

function formatIpv6(words: Uint32Array): string {
  const parts: number[] = [];
  for (let i = 0; i < 4; i++) parts.push(words[i]! >>> 16, words[i]! & 0xffff);
  return new ipaddr.IPv6(parts).toRFC5952String();
}
