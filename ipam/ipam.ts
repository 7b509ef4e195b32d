import { CniError, Code } from '../lib/cni/errors';
import { Result } from '../lib/cni/result';
import { Addr, formatIP, parseIP } from './addr';
import { describeRangeSet, isGateway, rangeSetContains, RangeSet, walkRangeSet } from './range';
import { Attachment, IpamStore, Reservation } from './store';
import { DiskStore } from './disk-store';
import { IpamConf } from '../conf/ipam';
import { log } from '../lib/log';

export const storeFor = (conf: IpamConf): IpamStore => new DiskStore(conf.dataDir, conf.network);

interface Allocation {
  ip: Addr;
  rangeSetIndex: number;
}

/** Picks one address in each rangeset: a requested one where it falls in the set, else the next free one. */
function allocate(conf: IpamConf, store: IpamStore, who: Attachment, existing: Reservation[]): Allocation[] {
  const used = new Set([...existing.map((r) => r.ip), ...conf.reserved.map(formatIP)]);
  const requested = [...conf.requested];
  const out: Allocation[] = [];
  const take = (ip: Addr, i: number): boolean => {
    const s = formatIP(ip);
    if (used.has(s) || !store.reserve(s, who, i)) return false;
    used.add(s);
    out.push({ ip, rangeSetIndex: i });
    return true;
  };
  try {
    conf.rangeSets.forEach((set, i) => {
      const want = requested.findIndex((a) => rangeSetContains(set, a));
      if (want >= 0) {
        const ip = requested.splice(want, 1)[0];
        if (isGateway(set, ip)) {
          throw new CniError(Code.AddressUnavailable, `requested IP ${formatIP(ip)} is the gateway of range set ${describeRangeSet(set)}`);
        }
        if (!take(ip, i)) {
          throw new CniError(Code.AddressUnavailable, `requested IP address ${formatIP(ip)} is not available in range set ${describeRangeSet(set)}`);
        }
        return;
      }
      const last = store.lastReserved(i);
      for (const ip of walkRangeSet(set, last ? parseIP(last) : undefined)) if (take(ip, i)) return;
      throw new CniError(Code.NoFreeAddress, `no IP addresses available in range set: ${describeRangeSet(set)}`);
    });
    if (requested.length > 0) {
      throw new CniError(Code.AddressUnavailable, `requested IP address ${formatIP(requested[0])} is outside every configured range`);
    }
  } catch (e) {
    for (const a of out) store.release(formatIP(a.ip)); // all or nothing
    throw e;
  }
  return out;
}

const prefixOf = (set: RangeSet, ip: Addr): number => rangeSetContains(set, ip)!.subnet.prefix;

/** IPAM ADD: reserves one address per rangeset and returns an IPAM result (no interfaces). */
export async function ipamAdd(conf: IpamConf, who: Attachment): Promise<Result> {
  if (conf.rangeSets.length === 0) throw new CniError(Code.InvalidNetworkConfig, 'invalid config: ipam.ranges: no IP ranges specified');
  const store = storeFor(conf);
  const allocs = await store.withLock(() => {
    const existing = store.list();
    const dup = existing.find((r) => r.containerId === who.containerId && r.ifname === who.ifname);
    if (dup) {
      throw new CniError(Code.AddressUnavailable, `${who.containerId}/${who.ifname} already holds ${dup.ip} (duplicate allocation)`);
    }
    return allocate(conf, store, who, existing);
  });
  log.info(`reserved ${allocs.map((a) => formatIP(a.ip)).join(', ')} in ${conf.network}`);
  return {
    ips: allocs.map(({ ip, rangeSetIndex }) => {
      const range = rangeSetContains(conf.rangeSets[rangeSetIndex], ip)!;
      return {
        address: `${formatIP(ip)}/${prefixOf(conf.rangeSets[rangeSetIndex], ip)}`,
        ...(range.gateway ? { gateway: formatIP(range.gateway) } : {}),
      };
    }),
    routes: conf.routes,
    ...(conf.dns ? { dns: conf.dns } : {}),
  };
}

/** IPAM DEL: releases what the attachment holds; holding nothing is success. */
export async function ipamDel(conf: IpamConf, who: Attachment): Promise<string[]> {
  const store = storeFor(conf);
  const released = await store.withLock(() => store.releaseAttachment(who));
  if (released.length) log.info(`released ${released.join(', ')} from ${conf.network}`);
  return released;
}

/** IPAM CHECK: the attachment still holds an address. */
export async function ipamCheck(conf: IpamConf, who: Attachment): Promise<string[]> {
  const store = storeFor(conf);
  const held = await store.withLock(() => store.list().filter((r) => r.containerId === who.containerId && (r.ifname === who.ifname || r.ifname === '')));
  if (held.length === 0) {
    throw new CniError(Code.CheckFailed, `IPAM: no reservation for ${who.containerId}/${who.ifname} in network ${conf.network}`);
  }
  return held.map((r) => r.ip);
}

export interface GcOutcome {
  /** Every reservation whose attachment is not in the list: released, or listed in `errors`. */
  garbage: Reservation[];
  released: Reservation[];
  /** What went wrong, one line each; GC goes on past errors. */
  errors: string[];
}

/** IPAM GC: releases every reservation whose attachment is not in `valid`. */
export async function ipamGc(conf: IpamConf, valid: Attachment[]): Promise<GcOutcome> {
  const store = storeFor(conf);
  const keep = new Set(valid.map((a) => `${a.containerId}\u0000${a.ifname}`));
  const keepIds = new Set(valid.map((a) => a.containerId));
  return store.withLock(() => {
    const out: GcOutcome = { garbage: [], released: [], errors: [] };
    for (const r of store.list()) {
      // a legacy reservation (no ifname) is live while its container has any valid attachment
      const live = r.ifname === '' ? keepIds.has(r.containerId) : keep.has(`${r.containerId}\u0000${r.ifname}`);
      if (live) continue;
      out.garbage.push(r);
      try {
        if (store.release(r.ip)) out.released.push(r);
      } catch (e) {
        out.errors.push(`releasing ${r.ip} (${r.containerId}/${r.ifname}): ${(e as Error).message}`);
      }
    }
    if (out.released.length) log.info(`GC released ${out.released.map((r) => `${r.ip} (${r.containerId}/${r.ifname})`).join(', ')}`);
    return out;
  });
}

/** Turns GC errors into one CNI error that lists them all. */
export function gcError(errors: string[]): CniError {
  return new CniError(Code.IOFailure, `GC met ${errors.length} error(s): ${errors.join('; ')}`);
}

/** IPAM STATUS: the store is usable and every rangeset has a free address. */
export async function ipamStatus(conf: IpamConf): Promise<void> {
  const store = storeFor(conf);
  try {
    await store.withLock(() => {
      store.probeWritable();
      const used = new Set([...store.list().map((r) => r.ip), ...conf.reserved.map(formatIP)]);
      conf.rangeSets.forEach((set) => {
        for (const ip of walkRangeSet(set, undefined)) if (!used.has(formatIP(ip))) return;
        throw new CniError(Code.NotAvailable, `no free address in range set ${describeRangeSet(set)}`);
      });
    });
  } catch (e) {
    if (e instanceof CniError && e.code === Code.NotAvailable) throw e;
    throw new CniError(Code.NotAvailable, `IPAM store for network ${conf.network} is unusable: ${(e as Error).message}`);
  }
}
