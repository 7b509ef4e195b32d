import {
  Addr,
  addrEq,
  Cidr,
  contains,
  formatCidr,
  formatIP,
  hasHostBits,
  lastOf,
  networkOf,
  offset,
  bitsOf,
} from '../lib/net/addr';

/** One host-local range, canonicalized: every field resolved. */
export interface Range {
  readonly subnet: Cidr; // network address, no host bits
  readonly rangeStart: Addr;
  readonly rangeEnd: Addr;
  readonly gateway?: Addr;
}

/** A rangeset hands out one address per attachment; its ranges share a family. */
export type RangeSet = readonly Range[];

export interface RawRange {
  subnet: Cidr;
  rangeStart?: Addr;
  rangeEnd?: Addr;
  gateway?: Addr;
}

/** Fills in defaults and checks a range as host-local's Range.Canonicalize does. Returns an error text or the range. */
export function canonicalize(r: RawRange): Range | string {
  const { subnet } = r;
  const bits = bitsOf(subnet.ip.family);
  if (hasHostBits(subnet)) {
    return `network has host bits set: for a prefix of length ${subnet.prefix} the network address is ${formatIP(networkOf(subnet))}`;
  }
  if (subnet.prefix > bits - 2) return `network ${formatCidr(subnet)} too small to allocate from`;
  const net = networkOf(subnet);
  const last = lastOf(subnet);
  const inSubnet = (a: Addr | undefined, what: string): string | undefined =>
    a && !contains(subnet, a) ? `${what} ${formatIP(a)} not in network ${formatCidr(subnet)}` : undefined;
  const bad =
    inSubnet(r.gateway, 'gateway') ?? inSubnet(r.rangeStart, 'rangeStart') ?? inSubnet(r.rangeEnd, 'rangeEnd');
  if (bad) return bad;
  const rangeStart = r.rangeStart ?? offset(net, 1n);
  const rangeEnd = r.rangeEnd ?? (subnet.ip.family === 4 ? offset(last, -1n) : last);
  if (rangeStart.value > rangeEnd.value)
    return `rangeStart ${formatIP(rangeStart)} is after rangeEnd ${formatIP(rangeEnd)}`;
  return { subnet, rangeStart, rangeEnd, gateway: r.gateway ?? offset(net, 1n) };
}

export const rangeContains = (r: Range, a: Addr): boolean =>
  a.family === r.subnet.ip.family && a.value >= r.rangeStart.value && a.value <= r.rangeEnd.value;

export const rangeSetContains = (set: RangeSet, a: Addr): Range | undefined => set.find((r) => rangeContains(r, a));

export const isGateway = (set: RangeSet, a: Addr): boolean =>
  set.some((r) => r.gateway !== undefined && addrEq(r.gateway, a));

export function rangesOverlap(a: Range, b: Range): boolean {
  if (a.subnet.ip.family !== b.subnet.ip.family) return false;
  return a.rangeStart.value <= b.rangeEnd.value && b.rangeStart.value <= a.rangeEnd.value;
}

export function rangeSetsOverlap(a: RangeSet, b: RangeSet): boolean {
  // host-local compares the ranges' start and end only: one subnet may be split between rangesets
  return a.some((x) => b.some((y) => rangesOverlap(x, y)));
}

export const describeRangeSet = (set: RangeSet): string =>
  set.map((r) => `${formatIP(r.rangeStart)}-${formatIP(r.rangeEnd)}`).join(',');

/**
 * Walks a rangeset round-robin as host-local does: from the address after `last` (when it lies in the set),
 * else from the first range's start, across the ranges in order, wrapping once. Gateways are skipped.
 */
export function* walkRangeSet(set: RangeSet, last: Addr | undefined): Generator<Addr> {
  let ri = 0;
  let cur: Addr = set[0].rangeStart;
  if (last) {
    const idx = set.findIndex((r) => rangeContains(r, last));
    if (idx >= 0) {
      ri = idx;
      cur = last;
      // step past `last`
      if (cur.value >= set[ri].rangeEnd.value) {
        ri = (ri + 1) % set.length;
        cur = set[ri].rangeStart;
      } else cur = offset(cur, 1n);
    }
  }
  const startRi = ri;
  const start = cur;
  for (;;) {
    if (!isGateway(set, cur)) yield cur;
    if (cur.value >= set[ri].rangeEnd.value) {
      ri = (ri + 1) % set.length;
      cur = set[ri].rangeStart;
    } else cur = offset(cur, 1n);
    if (ri === startRi && cur.value === start.value) return;
  }
}
