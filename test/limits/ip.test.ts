import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import {
  canonicalIp,
  compileRanges,
  type IpRange,
  parseIpInto,
  parseIpRange,
  rangeSetContains,
} from '../../src/limits/ip.js';

function range(text: string): IpRange {
  const parsed = parseIpRange(text);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

function contains(rangeText: string, address: string): boolean {
  const words = new Uint32Array(4);
  const family = parseIpInto(address, words);
  return rangeSetContains(compileRanges([range(rangeText)]), family, words);
}

describe('parseIpInto', () => {
  it('parses dotted IPv4 without help', () => {
    const words = new Uint32Array(4);
    expect(parseIpInto('152.152.152.152', words)).toBe(4);
    expect(words[0]).toBe(0x98989898);
    expect(parseIpInto('255.255.255.255', words)).toBe(4);
    expect(words[0]).toBe(0xffffffff);
    expect(parseIpInto('0.0.0.0', words)).toBe(4);
    expect(words[0]).toBe(0);
  });

  it.each(['256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1..3.4', '1.2.3.4 ', 'a.b.c.d', '', '1.2.3.'])(
    'refuses %j',
    (text) => {
      expect(parseIpInto(text, new Uint32Array(4))).toBe(0);
    },
  );

  it('treats IPv4-mapped IPv6 as IPv4, in every spelling', () => {
    for (const text of [
      '::ffff:152.152.152.152',
      '::FFFF:152.152.152.152',
      '0:0:0:0:0:ffff:9898:9898',
      '::ffff:9898:9898',
    ]) {
      const words = new Uint32Array(4);
      expect(parseIpInto(text, words)).toBe(4);
      expect(words[0]).toBe(0x98989898);
    }
  });

  it('parses IPv6 into four words', () => {
    const words = new Uint32Array(4);
    expect(parseIpInto('2001:db8::1', words)).toBe(6);
    expect([...words]).toEqual([0x20010db8, 0, 0, 1]);
    expect(parseIpInto('::1', words)).toBe(6);
    expect([...words]).toEqual([0, 0, 0, 1]);
    expect(parseIpInto('2001:db8:::1', words)).toBe(0);
  });

  it('agrees with ipaddr.js on random IPv4 addresses', () => {
    const words = new Uint32Array(4);
    for (let i = 0; i < 2000; i++) {
      const octets = [0, 0, 0, 0].map(() => Math.floor(Math.random() * 256));
      const text = octets.join('.');
      expect(parseIpInto(text, words)).toBe(4);
      expect(words[0]).toBe(
        Number.parseInt(
          ipaddr.IPv4.parse(text)
            .toByteArray()
            .map((b) => b.toString(16).padStart(2, '0'))
            .join(''),
          16,
        ),
      );
    }
  });
});

describe('canonicalIp', () => {
  it('gives one key per client address', () => {
    const words = new Uint32Array(4);
    const key = (text: string) => canonicalIp(text, parseIpInto(text, words), words);
    expect(key('1.2.3.4')).toBe('1.2.3.4');
    expect(key('::ffff:1.2.3.4')).toBe('1.2.3.4');
    expect(key('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(key('not-an-ip')).toBe('not-an-ip');
  });
});

describe('parseIpRange and matching', () => {
  it('matches IPv4 addresses and ranges', () => {
    expect(contains('152.152.152.152', '152.152.152.152')).toBe(true);
    expect(contains('152.152.152.152', '152.152.152.153')).toBe(false);
    expect(contains('10.0.0.0/8', '10.255.1.2')).toBe(true);
    expect(contains('10.0.0.0/8', '11.0.0.1')).toBe(false);
    expect(contains('0.0.0.0/0', '203.0.113.9')).toBe(true);
    expect(contains('0.0.0.0/0', '2001:db8::1')).toBe(false);
    expect(contains('192.168.1.128/25', '192.168.1.200')).toBe(true);
    expect(contains('192.168.1.128/25', '192.168.1.127')).toBe(false);
  });

  it('matches IPv4-mapped clients against IPv4 rules and the other way round', () => {
    expect(contains('152.152.152.152', '::ffff:152.152.152.152')).toBe(true);
    expect(contains('10.0.0.0/8', '::ffff:10.1.2.3')).toBe(true);
    expect(contains('::ffff:10.0.0.0/104', '10.1.2.3')).toBe(true);
    expect(range('::ffff:10.0.0.0/104').text).toBe('10.0.0.0/8');
    expect(range('::ffff:1.2.3.4').text).toBe('1.2.3.4');
  });

  it('matches IPv6 ranges', () => {
    expect(contains('2001:db8::/32', '2001:db8:ffff::1')).toBe(true);
    expect(contains('2001:db8::/32', '2001:db9::1')).toBe(false);
    expect(contains('2001:db8::1', '2001:0db8:0000::0001')).toBe(true);
    expect(contains('2001:db8:0:0:8000::/65', '2001:db8::8000:0:0:1')).toBe(true);
    expect(contains('2001:db8:0:0:8000::/65', '2001:db8::7fff:0:0:1')).toBe(false);
    expect(contains('::/0', '1.2.3.4')).toBe(false);
    expect(contains('::/0', '::1')).toBe(true);
    expect(range('2001:DB8::/32').text).toBe('2001:db8::/32');
  });

  it('explains what is wrong', () => {
    expect(parseIpRange('10.1.2.3/8')).toBe('host bits are set (did you mean 10.0.0.0/8?)');
    expect(parseIpRange('2001:db8::1/32')).toBe('host bits are set (did you mean 2001:db8::/32?)');
    expect(parseIpRange('10.0.0.0/x')).toBe('the prefix length must be 0 to 32');
    expect(parseIpRange('::/129')).toBe('the prefix length must be 0 to 128');
    expect(parseIpRange('::ffff:1.2.3.4/64')).toBe('an IPv4-mapped range needs a prefix of at least 96');
    expect(parseIpRange('10.1')).toBe('not an IP address');
    expect(parseIpRange('fe80::1%eth0')).toBe('a zone id (%...) is not allowed');
  });
});
