import { describe, expect, it } from 'vitest';
import { Addr, formatIP, parseCidr, parseIP } from '../../lib/net/addr';
import {
  canonicalize,
  describeRangeSet,
  isGateway,
  Range,
  rangeSetContains,
  rangeSetsOverlap,
  RawRange,
  walkRangeSet,
} from '../../ipam/range';

const ip = (s: string): Addr => parseIP(s)!;
const raw = (subnet: string, o: { start?: string; end?: string; gw?: string } = {}): RawRange => ({
  subnet: parseCidr(subnet)!,
  rangeStart: o.start ? ip(o.start) : undefined,
  rangeEnd: o.end ? ip(o.end) : undefined,
  gateway: o.gw ? ip(o.gw) : undefined,
});
const range = (subnet: string, o: { start?: string; end?: string; gw?: string } = {}): Range => {
  const r = canonicalize(raw(subnet, o));
  if (typeof r === 'string') throw new Error(r);
  return r;
};
const show = (r: Range) => ({
  start: formatIP(r.rangeStart),
  end: formatIP(r.rangeEnd),
  gw: r.gateway && formatIP(r.gateway),
});
const walk = (set: Range[], last?: string) => [...walkRangeSet(set, last ? ip(last) : undefined)].map(formatIP);

describe('canonicalize', () => {
  it('defaults an IPv4 range as host-local: gateway .1, start .1, end broadcast-1', () => {
    expect(show(range('10.0.0.0/24'))).toEqual({ start: '10.0.0.1', end: '10.0.0.254', gw: '10.0.0.1' });
    expect(show(range('10.0.0.0/30'))).toEqual({ start: '10.0.0.1', end: '10.0.0.2', gw: '10.0.0.1' });
  });

  it('defaults an IPv6 range to end at the last address', () => {
    expect(show(range('fd00::/64'))).toEqual({ start: 'fd00::1', end: 'fd00::ffff:ffff:ffff:ffff', gw: 'fd00::1' });
    expect(show(range('fd00::/126'))).toEqual({ start: 'fd00::1', end: 'fd00::3', gw: 'fd00::1' });
  });

  it('keeps explicit fields', () => {
    expect(show(range('10.0.0.0/24', { start: '10.0.0.10', end: '10.0.0.20', gw: '10.0.0.254' }))).toEqual({
      start: '10.0.0.10',
      end: '10.0.0.20',
      gw: '10.0.0.254',
    });
  });

  it('rejects host bits, naming the network address', () => {
    expect(canonicalize(raw('10.0.0.1/24'))).toMatch(/host bits set.*10\.0\.0\.0/);
    expect(canonicalize(raw('fd00::1/64'))).toMatch(/host bits set.*fd00::/);
  });

  it.each(['10.0.0.0/31', '10.0.0.0/32', 'fd00::/127', 'fd00::/128'])('rejects %s as too small', (s) => {
    expect(canonicalize(raw(s))).toMatch(/too small to allocate from/);
  });

  it('rejects fields outside the subnet and inverted ranges', () => {
    expect(canonicalize(raw('10.0.0.0/24', { gw: '10.0.1.1' }))).toMatch(
      /gateway 10\.0\.1\.1 not in network 10\.0\.0\.0\/24/,
    );
    expect(canonicalize(raw('10.0.0.0/24', { start: '10.0.1.1' }))).toMatch(/rangeStart/);
    expect(canonicalize(raw('10.0.0.0/24', { end: 'fd00::1' }))).toMatch(/rangeEnd/);
    expect(canonicalize(raw('10.0.0.0/24', { start: '10.0.0.9', end: '10.0.0.8' }))).toMatch(/after rangeEnd/);
  });
});

describe('walkRangeSet', () => {
  const small = [range('10.0.0.0/29')]; // .1-.6, gateway .1

  it('starts at rangeStart, skipping the gateway', () => {
    expect(walk(small)).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  it('resumes after the last reserved address and wraps around to it', () => {
    expect(walk(small, '10.0.0.4')).toEqual(['10.0.0.5', '10.0.0.6', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    expect(walk(small, '10.0.0.6')).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  it('ignores a last reserved address outside the set', () => {
    expect(walk(small, '10.0.0.7')).toEqual(walk(small));
    expect(walk(small, '192.168.0.1')).toEqual(walk(small));
    expect(walk(small, 'fd00::1')).toEqual(walk(small));
  });

  it('skips an explicit gateway in the middle of the range', () => {
    expect(walk([range('10.0.0.0/29', { gw: '10.0.0.3' })])).toEqual([
      '10.0.0.1',
      '10.0.0.2',
      '10.0.0.4',
      '10.0.0.5',
      '10.0.0.6',
    ]);
  });

  it('moves across the ranges of a set in order, and wraps', () => {
    const set = [
      range('10.0.0.0/24', { start: '10.0.0.10', end: '10.0.0.12' }),
      range('10.0.1.0/30'), // .1 (gateway) - .2
    ];
    expect(walk(set)).toEqual(['10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.1.2']);
    expect(walk(set, '10.0.0.12')).toEqual(['10.0.1.2', '10.0.0.10', '10.0.0.11', '10.0.0.12']);
    expect(walk(set, '10.0.1.2')).toEqual(['10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.1.2']);
  });

  it('walks IPv6', () => {
    expect(walk([range('fd00::/126')])).toEqual(['fd00::2', 'fd00::3']);
    expect(walk([range('fd00::/126')], 'fd00::2')).toEqual(['fd00::3', 'fd00::2']);
  });

  it('terminates when the only address is the gateway', () => {
    expect(walk([range('10.0.0.0/24', { start: '10.0.0.1', end: '10.0.0.1' })])).toEqual([]);
  });
});

describe('rangeset helpers', () => {
  const set = [range('10.0.0.0/24', { start: '10.0.0.10', end: '10.0.0.20' }), range('10.0.1.0/24')];

  it('rangeSetContains looks at rangeStart..rangeEnd, not the subnet', () => {
    expect(rangeSetContains(set, ip('10.0.0.15'))).toBe(set[0]);
    expect(rangeSetContains(set, ip('10.0.0.5'))).toBeUndefined();
    expect(rangeSetContains(set, ip('10.0.1.254'))).toBe(set[1]);
    expect(rangeSetContains(set, ip('10.0.1.255'))).toBeUndefined();
  });

  it('isGateway', () => {
    expect(isGateway(set, ip('10.0.1.1'))).toBe(true);
    expect(isGateway(set, ip('10.0.1.2'))).toBe(false);
  });

  it('describeRangeSet as host-local prints it', () => {
    expect(describeRangeSet(set)).toBe('10.0.0.10-10.0.0.20,10.0.1.1-10.0.1.254');
  });

  it('rangeSetsOverlap', () => {
    expect(rangeSetsOverlap([range('10.0.0.0/24')], [range('10.0.0.0/16')])).toBe(true);
    expect(rangeSetsOverlap([range('10.0.0.0/24')], [range('10.0.1.0/24')])).toBe(false);
    expect(rangeSetsOverlap([range('10.0.0.0/24')], [range('fd00::/64')])).toBe(false);
  });
});
