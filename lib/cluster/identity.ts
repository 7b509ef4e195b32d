import { sha1 } from '../sha1';
import { Addr, bitsOf, Cidr, contains, formatIP, networkOf, offset, parseCidr } from '../net/addr';
import { BlockAffinity, ClusterResources, IPPool, NodeRecord } from '../../conf/calico';

/** Who a node is on the overlay: its VTEP MAC and its tunnel address, from its record or derived as documented. */

/** Calico's derivation: 0x66 (locally administered, unicast) and the first five bytes of sha1(node name). */
export function vtepMacFor(nodeName: string): string {
  const h = sha1(nodeName);
  return [0x66, ...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The IPv6 VTEP's MAC: the same derivation on the node name with "-v6" appended (Felix's vtepMACForHost). */
export const vtepMacV6For = (nodeName: string): string => vtepMacFor(`${nodeName}-v6`);

export const poolOf = (r: ClusterResources, block: Cidr): IPPool | undefined =>
  r.pools.find((p) => contains(p.cidr, block.ip));

/**
 * Lookups by node built once per ClusterResources, so planning for thousands of nodes stays O(n log n)
 * instead of scanning every affinity for every peer.
 */
export interface ClusterIndex {
  /** Each node's blocks, lowest address first (the nodes that hold at least one block). */
  readonly blocks: ReadonlyMap<string, readonly BlockAffinity[]>;
  /** The first Node record of each name. */
  readonly nodes: ReadonlyMap<string, NodeRecord>;
  /** The names of the nodes that hold blocks, sorted. */
  readonly blockHolders: readonly string[];
  /** The pool a block lies in (the first one, as poolOf finds it). */
  poolOfBlock(b: BlockAffinity): IPPool | undefined;
}

interface CachedIndex {
  pools: IPPool[];
  nodes: NodeRecord[];
  affinities: BlockAffinity[];
  lengths: string;
  index: ClusterIndex;
}

const indexes = new WeakMap<ClusterResources, CachedIndex>();
const lengthsOf = (r: ClusterResources): string => `${r.pools.length}/${r.nodes.length}/${r.affinities.length}`;
const lowestFirst = (a: BlockAffinity, b: BlockAffinity): number => (a.cidr.ip.value < b.cidr.ip.value ? -1 : 1);

/**
 * The index of `r`, cached while its arrays stay the same (a caller that replaces or grows one gets a
 * fresh index; resources are otherwise treated as read-only).
 */
export function clusterIndex(r: ClusterResources): ClusterIndex {
  const c = indexes.get(r);
  if (c && c.pools === r.pools && c.nodes === r.nodes && c.affinities === r.affinities && c.lengths === lengthsOf(r)) {
    return c.index;
  }
  const index = buildIndex(r);
  indexes.set(r, { pools: r.pools, nodes: r.nodes, affinities: r.affinities, lengths: lengthsOf(r), index });
  return index;
}

function buildIndex(r: ClusterResources): ClusterIndex {
  const blocks = new Map<string, BlockAffinity[]>();
  for (const a of r.affinities) {
    const list = blocks.get(a.node);
    if (list) list.push(a);
    else blocks.set(a.node, [a]);
  }
  for (const list of blocks.values()) list.sort(lowestFirst);
  const nodes = new Map<string, NodeRecord>();
  for (const n of r.nodes) if (!nodes.has(n.name)) nodes.set(n.name, n);
  const find = poolFinder(r.pools);
  const pools = new Map<BlockAffinity, IPPool | undefined>();
  const poolOfBlock = (b: BlockAffinity): IPPool | undefined => {
    if (!pools.has(b)) pools.set(b, find(b.cidr.ip));
    return pools.get(b);
  };
  return { blocks, nodes, blockHolders: [...blocks.keys()].sort(), poolOfBlock };
}

/** poolOf with each pool's network and mask computed once, not once per block. */
function poolFinder(pools: IPPool[]): (a: Addr) => IPPool | undefined {
  const nets = pools.map((p) => {
    const mask = ~((1n << BigInt(bitsOf(p.cidr.ip.family) - p.cidr.prefix)) - 1n);
    return { p, family: p.cidr.ip.family, mask, net: p.cidr.ip.value & mask };
  });
  return (a) => nets.find((n) => n.family === a.family && (a.value & n.mask) === n.net)?.p;
}

/** The node's blocks, lowest address first. */
export function blocksOf(r: ClusterResources, node: string): BlockAffinity[] {
  return [...(clusterIndex(r).blocks.get(node) ?? [])];
}

/**
 * The tunnel address tabby derives when the Node record gives none: the first address after the network
 * address of the node's first block (lowest) of that family in a pool of that encapsulation. IPAM treats
 * it as the block's gateway, so it is never handed to a pod. IPv6 has only VXLAN (vxlan-v6.tabby).
 */
export function derivedTunnelAddr(
  r: ClusterResources,
  node: string,
  encap: 'vxlan' | 'ipip',
  family: 4 | 6 = 4,
): Addr | undefined {
  return derivedTunnelAddrIn(clusterIndex(r), node, encap, family);
}

/** derivedTunnelAddr over an index already at hand. */
export function derivedTunnelAddrIn(
  ix: ClusterIndex,
  node: string,
  encap: 'vxlan' | 'ipip',
  family: 4 | 6 = 4,
): Addr | undefined {
  const first = (ix.blocks.get(node) ?? []).find((b) => {
    const p = ix.poolOfBlock(b);
    // Calico takes tunnel addresses only from pools that allow the Tunnel use
    const mode = p && (encap === 'vxlan' ? p.vxlanMode : p.ipipMode);
    return p && p.allowedUses.includes('Tunnel') && b.cidr.ip.family === family && mode !== 'Never';
  });
  return first ? offset(networkOf(first.cidr), 1n) : undefined;
}

export function vxlanTunnelAddr(r: ClusterResources, n: NodeRecord): Addr | undefined {
  return n.ipv4VXLANTunnelAddr ?? derivedTunnelAddr(r, n.name, 'vxlan');
}

export function vxlanV6TunnelAddr(r: ClusterResources, n: NodeRecord): Addr | undefined {
  return n.ipv6VXLANTunnelAddr ?? derivedTunnelAddr(r, n.name, 'vxlan', 6);
}

export function ipipTunnelAddr(r: ClusterResources, n: NodeRecord): Addr | undefined {
  return n.ipv4IPIPTunnelAddr ?? derivedTunnelAddr(r, n.name, 'ipip');
}

// A node's derived MAC, by record: records of unchanged documents are the same objects from one load to the
// next, so a long-running process hashes each name once, not once per peer per plan.
const macs = new WeakMap<NodeRecord, string>();

export function vtepMac(n: NodeRecord): string {
  if (n.vxlanTunnelMACAddr !== undefined) return n.vxlanTunnelMACAddr;
  let mac = macs.get(n);
  if (mac === undefined) macs.set(n, (mac = vtepMacFor(n.name)));
  return mac;
}

const macsV6 = new WeakMap<NodeRecord, string>();

/** The IPv6 VTEP's MAC: from the record (vxlanTunnelMACAddrV6), or derived. */
export function vtepMacV6(n: NodeRecord): string {
  if (n.vxlanTunnelMACAddrV6 !== undefined) return n.vxlanTunnelMACAddrV6;
  let mac = macsV6.get(n);
  if (mac === undefined) macsV6.set(n, (mac = vtepMacV6For(n.name)));
  return mac;
}

const LINK_LOCAL_V6 = parseCidr('fe80::/10')!;

/** An address on one of this host's interfaces, as `ip -j addr` shows it. */
export interface HostAddress {
  ifname: string;
  cidr: Cidr;
}

/**
 * Interfaces first-found never falls back to: Calico's DEFAULT_INTERFACES_TO_EXCLUDE (bridges, veths,
 * tunnels, loopback) and tabby's own VXLAN device, whose tunnel address is not the node's address.
 */
const NOT_FIRST_FOUND =
  /^(docker|cbr|dummy|virbr|lxcbr|veth|lo|cali|tunl|flannel|kube-ipvs|cni|vxlan\.calico|vxlan-v6\.calico|wireguard\.cali|wg-v6\.cali|nodelocaldns|vxlan\.tabby|vxlan-v6\.tabby)/;

/** Interfaces whose addresses are never a node's own (bridges, veths, tunnels, kube-ipvs0, ...). */
export const notANodeInterface = (ifname: string): boolean => NOT_FIRST_FOUND.test(ifname);

/**
 * How the local node's address is found when its Node record has none (Calico's IP_AUTODETECTION_METHOD,
 * and IP6_AUTODETECTION_METHOD with `family` 6): `first-found`/absent: the interface of the default route
 * of that family (without one: the first interface that is not a bridge, veth, tunnel or loopback);
 * `interface=REGEX`; `can-reach=IP` (the interface the route to IP leaves by); `cidrs=CIDR,...`.
 * Link-local IPv6 addresses are never a node's address.
 */
export function autodetectAddress(
  method: string | undefined,
  addrs: HostAddress[],
  defaultRouteDev: string | undefined,
  routeTo: (ip: string) => string | undefined,
  family: 4 | 6 = 4,
): HostAddress | undefined {
  const mine = addrs.filter(
    (a) => a.cidr.ip.family === family && !(family === 6 && contains(LINK_LOCAL_V6, a.cidr.ip)),
  );
  const m = method ?? 'first-found';
  if (m === 'first-found' || m === 'default-route') {
    return (
      mine.find((a) => a.ifname === defaultRouteDev) ??
      (m === 'first-found' ? mine.find((a) => !NOT_FIRST_FOUND.test(a.ifname)) : undefined)
    );
  }
  const [kind, arg = ''] = [m.slice(0, m.indexOf('=')), m.slice(m.indexOf('=') + 1)];
  switch (kind) {
    case 'interface': {
      const re = new RegExp(arg); // matched anywhere in the name, as Calico (Go regexp.MatchString) does
      return mine.find((a) => re.test(a.ifname));
    }
    case 'can-reach': {
      const dev = routeTo(arg);
      return mine.find((a) => a.ifname === dev);
    }
    case 'cidrs': {
      const cidrs = arg.split(',').map((s) => parseCidr(s.trim()));
      return mine.find((a) => cidrs.some((c) => c && contains(c, a.cidr.ip)));
    }
  }
  return undefined;
}

export const describeAddr = (a: Addr | undefined): string => (a ? formatIP(a) : '-');
