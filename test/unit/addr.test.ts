import { describe, expect, it } from 'vitest';
import {
  Addr,
  contains,
  formatCidr,
  formatIP,
  hasHostBits,
  lastOf,
  networkOf,
  offset,
  overlaps,
  parseCidr,
  parseIP,
  sizeOf,
} from '../../lib/net/addr';

const cidr = (s: string) => {
  const c = parseCidr(s);
  if (!c) throw new Error(`bad test CIDR ${s}`);
  return c;
};
const ip = (s: string): Addr => {
  const a = parseIP(s);
  if (!a) throw new Error(`bad test IP ${s}`);
  return a;
};

/** Go's net.IP.String for a 16-byte non-mapped IPv6 address: the first longest run (>= 2) of zero groups becomes "::". */
function goIPv6String(groups: number[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) [bestStart, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

describe('parseIP', () => {
  it.each(['0.0.0.0', '10.0.0.1', '255.255.255.255'])('parses IPv4 %s', (s) => {
    expect(ip(s).family).toBe(4);
    expect(formatIP(ip(s))).toBe(s);
  });

  it('gives IPv4 a 32-bit value', () => {
    expect(ip('10.0.0.1').value).toBe(0x0a000001n);
    expect(ip('255.255.255.255').value).toBe(0xffffffffn);
  });

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.0.0.1',
    '01.2.3.4',
    '1.2.3.04',
    '0x1.2.3.4',
    '1.2.3.4 ',
    ' 1.2.3.4',
    '1.2.3.-1',
    '10.0.0.0/8',
    'localhost',
    '1::2::3',
    'fe80::1%eth0',
    '[::1]',
    '1:2:3:4:5:6:7:8:9',
    '12345::',
    'g::1',
    ':1::',
  ])('rejects %j', (s) => {
    expect(parseIP(s)).toBeUndefined();
  });

  it('rejects non-strings', () => {
    expect(parseIP(42 as unknown as string)).toBeUndefined();
    expect(parseIP(undefined as unknown as string)).toBeUndefined();
  });

  it('parses IPv6 into a 128-bit value', () => {
    expect(ip('::1')).toEqual({ family: 6, value: 1n });
    expect(ip('fd00::2').value).toBe((0xfd00n << 112n) | 2n);
    expect(ip('FD00:0000::0002')).toEqual(ip('fd00::2'));
  });

  it('treats IPv4-mapped IPv6 as IPv4, as Go does', () => {
    expect(ip('::ffff:10.1.2.3')).toEqual(ip('10.1.2.3'));
    expect(ip('::ffff:a01:203')).toEqual({ family: 4, value: 0x0a010203n });
    expect(formatIP(ip('::ffff:10.1.2.3'))).toBe('10.1.2.3');
  });

  it('reads ::a.b.c.d as IPv4-compatible IPv6, not as mapped (Go does)', () => {
    expect(ip('::1.2.3.4')).toEqual({ family: 6, value: 0x01020304n });
    expect(formatIP(ip('64:ff9b::1.2.3.4'))).toBe('64:ff9b::102:304');
  });

  it.each([
    '::ffff:01.2.3.4',
    '::ffff:1.2.3.04',
    '::ffff:1.2.3',
    '::ffff:0x1.2.3.4',
    '1:2:3:4:5:6:7:1.2.3.4',
    '::1.2.3.4:1',
  ])('rejects the embedded IPv4 in %j', (s) => {
    expect(parseIP(s)).toBeUndefined();
  });
});

describe('formatIP matches Go net.IP.String', () => {
  it.each([
    ['fd00:0:0:0:0:0:0:2', 'fd00::2'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['0:0:1:0:0:1:1:1', '::1:0:0:1:1:1'],
    ['1:1:1:0:0:1:0:0', '1:1:1::1:0:0'],
    ['fe80::ecee:eeff:feee:eeee', 'fe80::ecee:eeff:feee:eeee'],
    ['::1.2.3.4', '::102:304'],
    ['fd00::ffff:ffff:ffff:ffff', 'fd00::ffff:ffff:ffff:ffff'],
  ])('%s -> %s', (input, go) => {
    expect(formatIP(ip(input))).toBe(go);
  });

  it("agrees with Go's algorithm on every pattern of zero groups", () => {
    for (let mask = 0; mask < 256; mask++) {
      const groups = Array.from({ length: 8 }, (_, i) => ((mask >> i) & 1 ? 0 : 0xa0 + i));
      if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xa5) continue; // ::ffff:… mapped form: not reachable
      let value = 0n;
      for (const g of groups) value = (value << 16n) | BigInt(g);
      expect(formatIP({ family: 6, value }), groups.join(':')).toBe(goIPv6String(groups));
    }
  });
});

describe('parseCidr', () => {
  it('keeps host bits as written', () => {
    expect(formatCidr(cidr('10.0.0.5/24'))).toBe('10.0.0.5/24');
    expect(cidr('fd00::/64').prefix).toBe(64);
  });

  it.each([
    '10.0.0.0',
    '10.0.0.0/',
    '10.0.0.0/33',
    'fd00::/129',
    '10.0.0.0/-1',
    '10.0.0.0/2a',
    '10.0.0/8',
    '10.0.0.0/1234',
    '/8',
  ])('rejects %j', (s) => {
    expect(parseCidr(s)).toBeUndefined();
  });

  it('accepts /0 and full-length prefixes', () => {
    expect(cidr('0.0.0.0/0').prefix).toBe(0);
    expect(cidr('10.0.0.1/32').prefix).toBe(32);
    expect(cidr('::1/128').prefix).toBe(128);
  });
});

describe('prefix arithmetic', () => {
  it('networkOf and lastOf', () => {
    expect(formatIP(networkOf(cidr('10.1.2.3/16')))).toBe('10.1.0.0');
    expect(formatIP(lastOf(cidr('10.1.2.3/16')))).toBe('10.1.255.255');
    expect(formatIP(networkOf(cidr('fd00::1:2/112')))).toBe('fd00::1:0');
    expect(formatIP(lastOf(cidr('fd00::/64')))).toBe('fd00::ffff:ffff:ffff:ffff');
    expect(formatIP(lastOf(cidr('0.0.0.0/0')))).toBe('255.255.255.255');
    expect(formatIP(lastOf(cidr('10.0.0.7/32')))).toBe('10.0.0.7');
  });

  it('hasHostBits and sizeOf', () => {
    expect(hasHostBits(cidr('10.0.0.1/24'))).toBe(true);
    expect(hasHostBits(cidr('10.0.0.0/24'))).toBe(false);
    expect(hasHostBits(cidr('fd00::1/64'))).toBe(true);
    expect(sizeOf(cidr('10.0.0.0/24'))).toBe(256n);
    expect(sizeOf(cidr('fd00::/64'))).toBe(1n << 64n);
  });

  it('contains', () => {
    const n = cidr('10.0.0.0/24');
    expect(contains(n, ip('10.0.0.0'))).toBe(true);
    expect(contains(n, ip('10.0.0.255'))).toBe(true);
    expect(contains(n, ip('10.0.1.0'))).toBe(false);
    expect(contains(n, ip('9.255.255.255'))).toBe(false);
    expect(contains(cidr('::/0'), ip('10.0.0.1'))).toBe(false); // families never mix
    expect(contains(cidr('0.0.0.0/0'), ip('::1'))).toBe(false);
    expect(contains(cidr('fd00::/64'), ip('fd00::ffff:ffff:ffff:ffff'))).toBe(true);
    expect(contains(cidr('fd00::/64'), ip('fd00:0:0:1::'))).toBe(false);
  });

  it('overlaps', () => {
    expect(overlaps(cidr('10.0.0.0/16'), cidr('10.0.5.0/24'))).toBe(true);
    expect(overlaps(cidr('10.0.5.0/24'), cidr('10.0.0.0/16'))).toBe(true);
    expect(overlaps(cidr('10.0.0.0/24'), cidr('10.0.1.0/24'))).toBe(false);
    expect(overlaps(cidr('10.0.0.0/24'), cidr('10.0.0.128/25'))).toBe(true);
    expect(overlaps(cidr('0.0.0.0/0'), cidr('::/0'))).toBe(false);
  });

  it('offset', () => {
    expect(formatIP(offset(ip('10.0.0.255'), 1n))).toBe('10.0.1.0');
    expect(formatIP(offset(ip('fd00::ffff'), 1n))).toBe('fd00::1:0');
  });
});
