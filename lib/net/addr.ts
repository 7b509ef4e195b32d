import ipaddr from 'ipaddr.js';

/** An IP address as a family and a number, so ranges can be walked with plain arithmetic. */
export interface Addr {
  readonly family: 4 | 6;
  readonly value: bigint;
}

/** A prefix: `ip` as written (host bits may be set) and its length. */
export interface Cidr {
  readonly ip: Addr;
  readonly prefix: number;
}

export const bitsOf = (family: 4 | 6): number => (family === 4 ? 32 : 128);

/** Parses a bare IP address, strictly (four decimal parts for IPv4, no zone for IPv6). */
export function parseIP(s: string): Addr | undefined {
  if (typeof s !== 'string') return undefined;
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) {
    const bytes = ipaddr.IPv4.parse(s).toByteArray();
    return { family: 4, value: bytesToBigint(bytes) };
  }
  if (s.includes(':') && !s.includes('%')) {
    // An embedded IPv4 tail must be strict dotted decimal (as in Go), and is rewritten as two hex groups:
    // ipaddr.js reads "::a.b.c.d" as IPv4-mapped, where Go reads it as IPv4-compatible ("::102:304").
    const colon = s.lastIndexOf(':');
    const tail = s.slice(colon + 1);
    if (tail.includes('.')) {
      if (!ipaddr.IPv4.isValidFourPartDecimal(tail)) return undefined;
      const b = ipaddr.IPv4.parse(tail).toByteArray();
      s = `${s.slice(0, colon + 1)}${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
    }
    if (!ipaddr.IPv6.isValid(s)) return undefined;
    const v6 = ipaddr.IPv6.parse(s);
    if (v6.isIPv4MappedAddress()) return { family: 4, value: bytesToBigint(v6.toIPv4Address().toByteArray()) };
    return { family: 6, value: bytesToBigint(v6.toByteArray()) };
  }
  return undefined;
}

/** Parses `ip/prefix`. */
export function parseCidr(s: string): Cidr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIP(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > bitsOf(ip.family)) return undefined;
  return { ip, prefix };
}

function bytesToBigint(bytes: number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/** Formats as Go's net.IP.String() does (dotted quad; RFC 5952 for IPv6), which host-local uses as file names. */
export function formatIP(a: Addr): string {
  const n = a.family === 4 ? 4 : 16;
  const bytes: number[] = [];
  let v = a.value;
  for (let i = 0; i < n; i++) {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  if (a.family === 4) return bytes.join('.');
  return new ipaddr.IPv6(bytes).toRFC5952String();
}

export const formatCidr = (c: Cidr): string => `${formatIP(c.ip)}/${c.prefix}`;

const hostMask = (c: Cidr): bigint => (1n << BigInt(bitsOf(c.ip.family) - c.prefix)) - 1n;

export const networkOf = (c: Cidr): Addr => ({ family: c.ip.family, value: c.ip.value & ~hostMask(c) });
export const lastOf = (c: Cidr): Addr => ({ family: c.ip.family, value: networkOf(c).value | hostMask(c) });
export const hasHostBits = (c: Cidr): boolean => (c.ip.value & hostMask(c)) !== 0n;
export const sizeOf = (c: Cidr): bigint => hostMask(c) + 1n;

export function contains(c: Cidr, a: Addr): boolean {
  return a.family === c.ip.family && (a.value & ~hostMask(c)) === networkOf(c).value;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.ip.family !== b.ip.family) return false;
  return contains(a, networkOf(b)) || contains(b, networkOf(a));
}

export const addrEq = (a: Addr, b: Addr): boolean => a.family === b.family && a.value === b.value;
export const offset = (a: Addr, n: bigint): Addr => ({ family: a.family, value: a.value + n });
