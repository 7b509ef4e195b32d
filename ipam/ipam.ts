import { CniError, Code } from '../lib/cni/errors';
import { Result } from '../lib/cni/result';
import { Addr, formatIP, parseIP } from '../lib/net/addr';
import { describeRangeSet, isGateway, rangeSetContains, RangeSet, walkRangeSet } from './range';
import { Attachment } from '../lib/cni/attachment';
import { IpamStore, Reservation } from './store';
import { DiskStore } from './disk-store';
import { IpamConf } from './config';
import { log } from '../lib/log';

export const storeFor = (conf: IpamConf): IpamStore => new DiskStore(conf.dataDir, conf.network);

interface Allocation {
  ip: Addr;
  rangeSetIndex: number;
}

/** No free address in a rangeset: the family says which (a cluster node may claim a block of that family). */
export class NoFreeAddressError extends CniError {
  constructor(
    readonly family: 4 | 6,
    message: string,
  ) {
    super(Code.NoFreeAddress, message);
  }
}

/**
 * Picks one address in each rangeset: a requested one where it falls in the set, else the next free one
 * (with `conf.exact`, only the sets holding a requested address give one).
 */
function allocate(conf: IpamConf, store: IpamStore, who: Attachment, reserved: string[]): Allocation[] {
  const used = new Set([...reserved, ...conf.reserved.map(formatIP)]);
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
          throw new CniError(
            Code.AddressUnavailable,
            `requested IP ${formatIP(ip)} is the gateway of range set ${describeRangeSet(set)}`,
          );
        }
        if (!take(ip, i)) throw new CniError(Code.AddressUnavailable, inUse(conf, store, ip));
        return;
      }
      if (conf.exact) return;
      const last = store.lastReserved(i);
      for (const ip of walkRangeSet(set, last ? parseIP(last) : undefined)) if (take(ip, i)) return;
      throw new NoFreeAddressError(
        set[0].subnet.ip.family,
        `no IP addresses available in range set: ${describeRangeSet(set)}`,
      );
    });
    if (requested.length > 0) {
      throw new CniError(
        Code.AddressUnavailable,
        `requested IP address ${formatIP(requested[0])} is outside every configured range`,
      );
    }
  } catch (e) {
    for (const a of out) store.release(formatIP(a.ip)); // all or nothing
    throw e;
  }
  return out;
}

/** Why a requested address cannot be had, naming who holds it. */
export function inUse(conf: IpamConf, store: IpamStore, ip: Addr): string {
  const s = formatIP(ip);
  if (conf.reserved.some((r) => formatIP(r) === s)) return `requested IP address ${s} is this node's tunnel address`;
  const h = store.holder(s);
  const by = h ? ` by container ${h.containerId}${h.ifname ? ` (${h.ifname})` : ''}` : '';
  return `requested IP address ${s} is already in use${by} in network ${conf.network}`;
}

const prefixOf = (set: RangeSet, ip: Addr): number => rangeSetContains(set, ip)!.subnet.prefix;

/** IPAM ADD: reserves one address per rangeset and returns an IPAM result (no interfaces). */
export async function ipamAdd(conf: IpamConf, who: Attachment): Promise<Result> {
  if (conf.rangeSets.length === 0)
    throw new CniError(Code.InvalidNetworkConfig, 'invalid config: ipam.ranges: no IP ranges specified');
  const store = storeFor(conf);
  // Only this attachment's own ADD writes reservations that name it, and a runtime never runs two
  // operations on one attachment at once: the duplicate check reads outside the lock. Under the lock
  // there is only a directory listing and the new files, so the lock is held for very little.
  const dup = store.list().find((r) => held(r, who, false));
  if (dup) {
    throw new CniError(
      Code.AddressUnavailable,
      `${who.containerId}/${who.ifname} already holds ${dup.ip} (duplicate allocation)`,
    );
  }
  const allocs = await store.withLock(() => allocate(conf, store, who, store.reservedIps()));
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

/** Whether reservation `r` is held by `who`; a legacy reservation (no ifname) matches on the container. */
const held = (r: Attachment, who: Attachment, legacy = true): boolean =>
  r.containerId === who.containerId && (r.ifname === who.ifname || (legacy && r.ifname === ''));

/** IPAM DEL: releases what the attachment holds; holding nothing is success. */
export async function ipamDel(conf: IpamConf, who: Attachment): Promise<string[]> {
  const store = storeFor(conf);
  // Found without the lock (as in ADD), then each released under it only if it is still the attachment's:
  // someone may have released it meanwhile (`tabby ipam release`) and another ADD taken it.
  const mine = store.list().filter((r) => held(r, who));
  if (mine.length === 0) return [];
  const released = await store.withLock(() =>
    mine
      .filter((r) => {
        const h = store.holder(r.ip);
        return h !== undefined && held(h, who) && store.release(r.ip);
      })
      .map((r) => r.ip),
  );
  if (released.length) log.info(`released ${released.join(', ')} from ${conf.network}`);
  return released;
}

/** IPAM CHECK: the attachment still holds an address (a read: no lock needed). */
export async function ipamCheck(conf: IpamConf, who: Attachment): Promise<string[]> {
  const mine = storeFor(conf)
    .list()
    .filter((r) => held(r, who));
  if (mine.length === 0) {
    throw new CniError(
      Code.CheckFailed,
      `IPAM: no reservation for ${who.containerId}/${who.ifname} in network ${conf.network}`,
    );
  }
  return mine.map((r) => r.ip);
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
      if (conf.ownRangesOnly && !conf.rangeSets.some((set) => inRangeSet(set, r.ip))) continue;
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
    if (out.released.length)
      log.info(`GC released ${out.released.map((r) => `${r.ip} (${r.containerId}/${r.ifname})`).join(', ')}`);
    return out;
  });
}

const inRangeSet = (set: RangeSet, ip: string): boolean => {
  const a = parseIP(ip);
  return a !== undefined && rangeSetContains(set, a) !== undefined;
};

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
      const used = new Set([...store.reservedIps(), ...conf.reserved.map(formatIP)]);
      conf.rangeSets.forEach((set) => {
        for (const ip of walkRangeSet(set, undefined)) if (!used.has(formatIP(ip))) return;
        throw new CniError(
          Code.NotAvailable,
          `no free address in range set ${describeRangeSet(set)} of network ${conf.network}`,
        );
      });
    });
  } catch (e) {
    if (e instanceof CniError && e.code === Code.NotAvailable) throw e;
    throw new CniError(
      Code.NotAvailable,
      `IPAM store for network ${conf.network} is unusable: ${(e as Error).message}`,
    );
  }
}
