import { Addr, Cidr, contains, formatCidr, formatIP } from '../net/addr';
import { BlockAffinity, ClusterResources, IPPool, NodeRecord } from '../../conf/calico';
import {
  IPIP_DEVICE,
  IPIP_OVERHEAD,
  VXLAN_DEVICE,
  VXLAN_OVERHEAD,
  VXLAN_PORT,
  VXLAN_V6_DEVICE,
  VXLAN_V6_OVERHEAD,
  VXLAN_VNI,
} from '../dataplane/devices';
import type { DesiredOverlay, DesiredRoute, DesiredVxlan } from '../dataplane/desired';
import {
  ClusterIndex,
  clusterIndex,
  derivedTunnelAddrIn,
  ipipTunnelAddr,
  vtepMac,
  vtepMacV6,
  vxlanTunnelAddr,
  vxlanV6TunnelAddr,
} from './identity';

/**
 * Route planning, pure: from the cluster's resources and what this node is, what the kernel should hold.
 * Every route carries the reason it exists, for `tabby plan` and `tabby status`.
 */

export interface LocalNode {
  name: string;
  /** The node's IPv4 underlay address and subnet (none on a node of a pure IPv6 cluster). */
  address?: Cidr;
  /** The interface that carries it: the VXLAN parent and the direct-route device (else the IPv6 one's). */
  parent: string;
  /** The node's IPv6 underlay address and subnet, and its interface (vxlan-v6.tabby's parent). */
  address6?: Cidr;
  parent6?: string;
  hostMtu: number;
}

export interface PlannedRoute extends DesiredRoute {
  peer?: string;
  pool?: string;
  reason: string;
}

export interface Unreachable {
  peer: string;
  block: string;
  reason: string;
}

type Vtep = { mac: string; dst: string; peer: string };
type TunnelNeighbour = { ip: string; mac: string; peer: string };

export interface OverlayPlan extends DesiredOverlay {
  /** This node; `address6`/`parent6` only when it has an IPv6 underlay address, `address` only with an IPv4 one. */
  node: { name: string; address?: string; parent: string; address6?: string; parent6?: string };
  /** Pod (and veth) MTU: host MTU less the largest overhead among encapsulations in use. */
  mtu: number;
  routes: PlannedRoute[];
  fdb: Vtep[];
  neighbours: TunnelNeighbour[];
  fdbV6: Vtep[];
  neighboursV6: TunnelNeighbour[];
  unreachable: Unreachable[];
  warnings: string[];
}

const encapOf = (p: IPPool): 'vxlan' | 'ipip' | undefined =>
  p.vxlanMode !== 'Never' ? 'vxlan' : p.ipipMode !== 'Never' ? 'ipip' : undefined;
const modeOf = (p: IPPool): string => (p.vxlanMode !== 'Never' ? p.vxlanMode : p.ipipMode);

export interface EncapsInUse {
  vxlan: boolean;
  ipip: boolean;
  /** VXLAN of IPv6 pools (vxlan-v6.tabby). */
  vxlanV6?: boolean;
}

/**
 * The encapsulations a node must carry: those of enabled pools, and of disabled ones that still have
 * blocks (their pods are drained, not gone); IPv4 and IPv6 VXLAN apart. The pod MTU and the tunnel MTU
 * both come from this.
 */
export function encapsulationsInUse(r: ClusterResources): EncapsInUse {
  const live = r.pools.filter((p) => !p.disabled || r.affinities.some((a) => contains(p.cidr, a.cidr.ip)));
  const live4 = live.filter((p) => p.cidr.ip.family === 4);
  return {
    vxlan: live4.some((p) => p.vxlanMode !== 'Never'),
    ipip: live4.some((p) => p.ipipMode !== 'Never'),
    vxlanV6: live.some((p) => p.cidr.ip.family === 6 && p.vxlanMode !== 'Never'),
  };
}

/** Host MTU less the largest overhead among the encapsulations in use (calico-behaviour.md §5). */
export function podMtu(hostMtu: number, inUse: EncapsInUse): number {
  return (
    hostMtu -
    Math.max(inUse.vxlan ? VXLAN_OVERHEAD : 0, inUse.ipip ? IPIP_OVERHEAD : 0, inUse.vxlanV6 ? VXLAN_V6_OVERHEAD : 0)
  );
}

/** What planning one node accumulates while it walks its peers. */
interface PlanState {
  ix: ClusterIndex;
  local: LocalNode;
  /** The local addresses as text, formatted once (they are in the reason of most routes); '' when none. */
  localCidr: string;
  localCidr6: string;
  routes: PlannedRoute[];
  unreachable: Unreachable[];
  /** Peers reached through the VXLAN device, in the order of their first route. */
  vteps: Map<string, VtepOf>;
  /** The same through vxlan-v6.tabby. */
  vteps6: Map<string, VtepOf>;
}

type VtepOf = { ip: string; tunnel: string; mac: string };

/** A peer being planned; its addresses and VXLAN tunnel addresses are formatted once, when first needed. */
interface Peer {
  record: NodeRecord;
  ip?: string;
  tunnel?: { addr: string | undefined };
  ip6?: string;
  tunnel6?: { addr: string | undefined };
}

/**
 * What was planned for each peer, and from what: a long-running process (the agent) keeps one, so that
 * after a change only the peers whose records, blocks or pools are new objects are planned again
 * (resources of unchanged documents are the same frozen objects from one load to the next).
 */
export class PeerPlans {
  private readonly byPeer = new Map<string, { inputs: readonly unknown[]; out: PeerPlan }>();
  private localKey = '';

  /** The plan of one peer, from the cache when its inputs are the same objects as last time. */
  get(s: PlanState, name: string, compute: () => PeerPlan): PeerPlan {
    const key = `${s.local.name}|${s.localCidr}|${s.local.parent}|${s.localCidr6}|${s.local.parent6 ?? ''}`;
    if (key !== this.localKey) {
      this.byPeer.clear();
      this.localKey = key;
    }
    const blocks = s.ix.blocks.get(name)!;
    const inputs = [s.ix.nodes.get(name), ...blocks, ...blocks.map((b) => s.ix.poolOfBlock(b))];
    const known = this.byPeer.get(name);
    if (known && known.inputs.length === inputs.length && known.inputs.every((x, i) => x === inputs[i]))
      return known.out;
    const out = compute();
    this.byPeer.set(name, { inputs, out });
    return out;
  }

  /** Forgets peers that are gone. */
  keepOnly(names: ReadonlySet<string>): void {
    for (const name of this.byPeer.keys()) if (!names.has(name)) this.byPeer.delete(name);
  }
}

interface PeerPlan {
  routes: PlannedRoute[];
  unreachable: Unreachable[];
  vtep?: VtepOf;
  vtep6?: VtepOf;
}

export function planOverlay(r: ClusterResources, local: LocalNode, cache?: PeerPlans): OverlayPlan {
  const ix = clusterIndex(r);
  const localCidr = local.address ? cidrText(local.address) : '';
  const localCidr6 = local.address6 ? cidrText(local.address6) : '';
  const s: PlanState = {
    ix,
    local,
    localCidr,
    localCidr6,
    routes: [],
    unreachable: [],
    vteps: new Map(),
    vteps6: new Map(),
  };
  for (const b of ix.blocks.get(local.name) ?? []) {
    const reason = `block of this node (${local.name}): addresses not given to a pod are dropped here`;
    s.routes.push({ dst: cidrText(b.cidr), kind: 'blackhole', pool: ix.poolOfBlock(b)?.name, reason });
  }
  for (const name of ix.blockHolders) {
    if (name === local.name) continue;
    const computed = (): PeerPlan => {
      const one: PlanState = { ...s, routes: [], unreachable: [], vteps: new Map(), vteps6: new Map() };
      const peer: Peer = { record: ix.nodes.get(name) ?? { name } };
      for (const b of ix.blocks.get(name)!) planBlock(one, peer, b);
      return {
        routes: one.routes,
        unreachable: one.unreachable,
        vtep: one.vteps.get(name),
        vtep6: one.vteps6.get(name),
      };
    };
    const plan = cache ? cache.get(s, name, computed) : computed();
    for (const x of plan.routes) s.routes.push(x);
    for (const x of plan.unreachable) s.unreachable.push(x);
    if (plan.vtep) s.vteps.set(name, plan.vtep);
    if (plan.vtep6) s.vteps6.set(name, plan.vtep6);
  }
  cache?.keepOnly(new Set(ix.blockHolders));
  const dev = tunnelDevices(r, local, ix.nodes.get(local.name) ?? { name: local.name });
  const vteps = [...s.vteps];
  const vteps6 = [...s.vteps6];
  return {
    node: {
      name: local.name,
      ...(local.address ? { address: s.localCidr } : {}),
      parent: local.parent,
      ...(local.address6 ? { address6: s.localCidr6, parent6: local.parent6 } : {}),
    },
    mtu: dev.mtu,
    vxlan: dev.vxlan,
    ...(dev.vxlanV6 ? { vxlanV6: dev.vxlanV6 } : {}),
    ipip: dev.ipip,
    routes: s.routes,
    fdb: vteps.map(([name, v]) => ({ mac: v.mac, dst: v.ip, peer: name })),
    neighbours: vteps.map(([name, v]) => ({ ip: v.tunnel, mac: v.mac, peer: name })),
    fdbV6: vteps6.map(([name, v]) => ({ mac: v.mac, dst: v.ip, peer: name })),
    neighboursV6: vteps6.map(([name, v]) => ({ ip: v.tunnel, mac: v.mac, peer: name })),
    nat: {
      allPools: r.pools.map((p) => formatCidr(p.cidr)),
      natPools: r.pools.filter((p) => p.natOutgoing).map((p) => formatCidr(p.cidr)),
      tunnelDevices: dev.names,
    },
    unreachable: s.unreachable,
    warnings: dev.warnings,
  };
}

/**
 * formatIP, with IPv4 done in plain numbers: a plan formats a few addresses per peer, and BigInt shifts
 * made that a fifth of planning 5,000 nodes.
 */
function ipText(a: Addr): string {
  if (a.family !== 4) return formatIP(a);
  const v = Number(a.value);
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

const cidrText = (c: Cidr): string => (c.ip.family === 4 ? `${ipText(c.ip)}/${c.prefix}` : formatCidr(c));
const optIP = (a: Addr | undefined): string | undefined => a && ipText(a);

/**
 * The route to one block of a peer, or why there is none. Each family has its own underlay: an IPv4 block
 * goes to the peer's IPv4 address (or through vxlan.tabby), an IPv6 block to its IPv6 address (or through
 * vxlan-v6.tabby), and CrossSubnet compares the node addresses of the block's family (Calico #9403).
 */
function planBlock(s: PlanState, peer: Peer, b: BlockAffinity): void {
  const pool = s.ix.poolOfBlock(b);
  if (!pool) return;
  const { local } = s;
  const name = peer.record.name;
  const dst = cidrText(b.cidr);
  const cannot = (reason: string): void => void s.unreachable.push({ peer: name, block: dst, reason });
  const v6 = b.cidr.ip.family === 6;
  const fam = v6 ? 'IPv6' : 'IPv4';
  const field = v6 ? 'ipv6Address' : 'ipv4Address';
  const localAddress = v6 ? local.address6 : local.address;
  if (!localAddress) {
    return cannot(`this node (${local.name}) has no ${fam} address (no spec.bgp.${field}, none autodetected)`);
  }
  const localCidr = v6 ? s.localCidr6 : s.localCidr;
  const address = v6 ? peer.record.ipv6Address : peer.record.ipv4Address;
  if (!address) return cannot(`node ${name} has no ${fam} address in the datastore (no Node, or no spec.bgp.${field})`);
  const peerIP = v6 ? (peer.ip6 ??= ipText(address.ip)) : (peer.ip ??= ipText(address.ip));
  const same = contains(localAddress, address.ip);
  const subnet = same ? "this node's subnet" : 'another subnet than';
  const where = `${name} (${peerIP}) is in ${subnet} ${localCidr}`;
  const encap = encapOf(pool);
  const mode = modeOf(pool);
  if (!encap || (mode === 'CrossSubnet' && same)) {
    if (!same) {
      return cannot(
        `${where} and pool ${pool.name} has no encapsulation (Never): ` +
          'only an underlay that routes pod addresses can reach it',
      );
    }
    const how = encap ? `${encap} ${mode}` : 'not encapsulated';
    const reason = `${where}, and pool ${pool.name} is ${how}: routed directly`;
    const dev = v6 ? local.parent6 : local.parent;
    s.routes.push({ dst, kind: 'direct', via: peerIP, dev, peer: name, pool: pool.name, reason });
    return;
  }
  const reason =
    mode === 'Always'
      ? `pool ${pool.name} is ${encap} Always`
      : `${where}, so it goes through the tunnel (pool ${pool.name} is ${encap} CrossSubnet)`;
  if (encap === 'ipip') {
    if (v6) return cannot(`pool ${pool.name} is IPIP, which carries no IPv6`); // refused when parsed
    s.routes.push({ dst, kind: 'ipip', via: peerIP, dev: IPIP_DEVICE, peer: name, pool: pool.name, reason });
    return;
  }
  if (v6) {
    peer.tunnel6 ??= { addr: optIP(peer.record.ipv6VXLANTunnelAddr ?? derivedTunnelAddrIn(s.ix, name, 'vxlan', 6)) };
    const tunnel = peer.tunnel6.addr;
    if (!tunnel) {
      return cannot(
        `node ${name} has no IPv6 VXLAN tunnel address (no block in an IPv6 VXLAN pool, no ipv6VXLANTunnelAddr)`,
      );
    }
    s.routes.push({ dst, kind: 'vxlan', via: tunnel, dev: VXLAN_V6_DEVICE, peer: name, pool: pool.name, reason });
    if (!s.vteps6.has(name)) s.vteps6.set(name, { ip: peerIP, tunnel, mac: vtepMacV6(peer.record) });
    return;
  }
  peer.tunnel ??= { addr: optIP(peer.record.ipv4VXLANTunnelAddr ?? derivedTunnelAddrIn(s.ix, name, 'vxlan')) };
  const tunnel = peer.tunnel.addr;
  if (!tunnel) {
    return cannot(`node ${name} has no VXLAN tunnel address (no block in a VXLAN pool, no ipv4VXLANTunnelAddr)`);
  }
  s.routes.push({ dst, kind: 'vxlan', via: tunnel, dev: VXLAN_DEVICE, peer: name, pool: pool.name, reason });
  if (!s.vteps.has(name)) s.vteps.set(name, { ip: peerIP, tunnel, mac: vtepMac(peer.record) });
}

/**
 * The tunnel devices this node carries and the MTU: a device exists while an enabled pool uses it, or a
 * disabled pool's blocks still do, and this node has an underlay address of the device's family. Every
 * tunnel gets the pod MTU (the host MTU less the largest overhead in use: 70 when IPv6 VXLAN is in use).
 */
function tunnelDevices(r: ClusterResources, local: LocalNode, self: NodeRecord) {
  const inUse = encapsulationsInUse(r);
  const mtu = podMtu(local.hostMtu, inUse);
  const warnings: string[] = [];
  const names: string[] = [];
  let vxlan: DesiredVxlan | undefined;
  let vxlanV6: DesiredVxlan | undefined;
  let ipip: OverlayPlan['ipip'];
  const vxlanOn = (device: string, parent: string, localIP: string, mac: string, addr: Addr | undefined) => {
    names.push(device);
    return { device, vni: VXLAN_VNI, port: VXLAN_PORT, parent, local: localIP, mac, address: optIP(addr), mtu };
  };
  if (inUse.vxlan && !local.address) {
    warnings.push(`${local.name} has no IPv4 address: ${VXLAN_DEVICE} is not created`);
  } else if (inUse.vxlan && local.address) {
    const addr = vxlanTunnelAddr(r, self);
    if (!addr) {
      warnings.push(
        `${local.name} has no block in a VXLAN pool and no ipv4VXLANTunnelAddr: ` + `${VXLAN_DEVICE} gets no address`,
      );
    }
    vxlan = vxlanOn(VXLAN_DEVICE, local.parent, ipText(local.address.ip), vtepMac(self), addr);
  }
  if (inUse.vxlanV6 && !(local.address6 && local.parent6)) {
    warnings.push(
      `${local.name} has no IPv6 address (no spec.bgp.ipv6Address, none autodetected): ${VXLAN_V6_DEVICE} is not created`,
    );
  } else if (inUse.vxlanV6 && local.address6 && local.parent6) {
    const addr = vxlanV6TunnelAddr(r, self);
    if (!addr) {
      warnings.push(
        `${local.name} has no block in an IPv6 VXLAN pool and no ipv6VXLANTunnelAddr: ${VXLAN_V6_DEVICE} gets no address`,
      );
    }
    vxlanV6 = vxlanOn(VXLAN_V6_DEVICE, local.parent6, ipText(local.address6.ip), vtepMacV6(self), addr);
  }
  if (inUse.ipip) {
    const addr = ipipTunnelAddr(r, self);
    ipip = { device: IPIP_DEVICE, address: optIP(addr), mtu };
    names.push(IPIP_DEVICE);
  }
  return { mtu, vxlan, vxlanV6, ipip, names, warnings };
}
