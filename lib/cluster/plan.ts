import { Addr, Cidr, contains, formatCidr, formatIP } from '../net/addr';
import { BlockAffinity, ClusterResources, IPPool, NodeRecord } from '../../conf/calico';
import { IPIP_DEVICE, IPIP_OVERHEAD, VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI } from '../dataplane/devices';
import type { DesiredOverlay, DesiredRoute } from '../dataplane/desired';
import { ClusterIndex, clusterIndex, derivedTunnelAddrIn, ipipTunnelAddr, vtepMac, vxlanTunnelAddr } from './identity';

/**
 * Route planning, pure: from the cluster's resources and what this node is, what the kernel should hold.
 * Every route carries the reason it exists, for `tabby plan` and `tabby status`.
 */

export interface LocalNode {
  name: string;
  /** The node's underlay address and subnet. */
  address: Cidr;
  /** The interface that carries it: the VXLAN parent and the direct-route device. */
  parent: string;
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

export interface OverlayPlan extends DesiredOverlay {
  node: { name: string; address: string; parent: string };
  /** Pod (and veth) MTU: host MTU less the largest overhead among encapsulations in use. */
  mtu: number;
  routes: PlannedRoute[];
  fdb: { mac: string; dst: string; peer: string }[];
  neighbours: { ip: string; mac: string; peer: string }[];
  unreachable: Unreachable[];
  warnings: string[];
}

const encapOf = (p: IPPool): 'vxlan' | 'ipip' | undefined =>
  p.vxlanMode !== 'Never' ? 'vxlan' : p.ipipMode !== 'Never' ? 'ipip' : undefined;
const modeOf = (p: IPPool): string => (p.vxlanMode !== 'Never' ? p.vxlanMode : p.ipipMode);

/**
 * The encapsulations a node must carry: those of enabled IPv4 pools, and of disabled ones that still
 * have blocks (their pods are drained, not gone). The pod MTU and the tunnel MTU both come from this.
 */
export function encapsulationsInUse(r: ClusterResources): { vxlan: boolean; ipip: boolean } {
  const live = r.pools.filter(
    (p) => p.cidr.ip.family === 4 && (!p.disabled || r.affinities.some((a) => contains(p.cidr, a.cidr.ip))),
  );
  return { vxlan: live.some((p) => p.vxlanMode !== 'Never'), ipip: live.some((p) => p.ipipMode !== 'Never') };
}

/** Host MTU less the largest overhead among the encapsulations in use (calico-behaviour.md §5). */
export function podMtu(hostMtu: number, inUse: { vxlan: boolean; ipip: boolean }): number {
  return hostMtu - Math.max(inUse.vxlan ? VXLAN_OVERHEAD : 0, inUse.ipip ? IPIP_OVERHEAD : 0);
}

/** What planning one node accumulates while it walks its peers. */
interface PlanState {
  ix: ClusterIndex;
  local: LocalNode;
  /** The local address as text, formatted once (it is in the reason of most routes). */
  localCidr: string;
  routes: PlannedRoute[];
  unreachable: Unreachable[];
  /** Peers reached through the VXLAN device, in the order of their first route. */
  vteps: Map<string, { ip: string; tunnel: string; mac: string }>;
}

/** A peer being planned; its address and VXLAN tunnel address are formatted once, when first needed. */
interface Peer {
  record: NodeRecord;
  ip?: string;
  tunnel?: { addr: string | undefined };
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
    const key = `${s.local.name}|${s.localCidr}|${s.local.parent}`;
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
  vtep?: { ip: string; tunnel: string; mac: string };
}

export function planOverlay(r: ClusterResources, local: LocalNode, cache?: PeerPlans): OverlayPlan {
  const ix = clusterIndex(r);
  const localCidr = cidrText(local.address);
  const s: PlanState = { ix, local, localCidr, routes: [], unreachable: [], vteps: new Map() };
  for (const b of ix.blocks.get(local.name) ?? []) {
    const reason = `block of this node (${local.name}): addresses not given to a pod are dropped here`;
    s.routes.push({ dst: cidrText(b.cidr), kind: 'blackhole', pool: ix.poolOfBlock(b)?.name, reason });
  }
  for (const name of ix.blockHolders) {
    if (name === local.name) continue;
    const computed = (): PeerPlan => {
      const one: PlanState = { ...s, routes: [], unreachable: [], vteps: new Map() };
      const peer: Peer = { record: ix.nodes.get(name) ?? { name } };
      for (const b of ix.blocks.get(name)!) planBlock(one, peer, b);
      return { routes: one.routes, unreachable: one.unreachable, vtep: one.vteps.get(name) };
    };
    const plan = cache ? cache.get(s, name, computed) : computed();
    for (const x of plan.routes) s.routes.push(x);
    for (const x of plan.unreachable) s.unreachable.push(x);
    if (plan.vtep) s.vteps.set(name, plan.vtep);
  }
  cache?.keepOnly(new Set(ix.blockHolders));
  const dev = tunnelDevices(r, local, ix.nodes.get(local.name) ?? { name: local.name });
  const vteps = [...s.vteps];
  return {
    node: { name: local.name, address: s.localCidr, parent: local.parent },
    mtu: dev.mtu,
    vxlan: dev.vxlan,
    ipip: dev.ipip,
    routes: s.routes,
    fdb: vteps.map(([name, v]) => ({ mac: v.mac, dst: v.ip, peer: name })),
    neighbours: vteps.map(([name, v]) => ({ ip: v.tunnel, mac: v.mac, peer: name })),
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

/** The route to one block of a peer, or why there is none. */
function planBlock(s: PlanState, peer: Peer, b: BlockAffinity): void {
  const pool = s.ix.poolOfBlock(b);
  if (!pool) return;
  const { local } = s;
  const name = peer.record.name;
  const dst = cidrText(b.cidr);
  const cannot = (reason: string): void => void s.unreachable.push({ peer: name, block: dst, reason });
  if (b.cidr.ip.family !== 4) {
    return cannot('IPv6 blocks are routed only by an underlay that knows pod addresses (tabby tunnels IPv4)');
  }
  const address = peer.record.ipv4Address;
  if (!address)
    return cannot(`node ${name} has no IPv4 address in the datastore (no Node, or no spec.bgp.ipv4Address)`);
  const peerIP = (peer.ip ??= ipText(address.ip));
  const same = contains(local.address, address.ip);
  const subnet = same ? "this node's subnet" : 'another subnet than';
  const where = `${name} (${peerIP}) is in ${subnet} ${s.localCidr}`;
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
    s.routes.push({ dst, kind: 'direct', via: peerIP, dev: local.parent, peer: name, pool: pool.name, reason });
    return;
  }
  const reason =
    mode === 'Always'
      ? `pool ${pool.name} is ${encap} Always`
      : `${where}, so it goes through the tunnel (pool ${pool.name} is ${encap} CrossSubnet)`;
  if (encap === 'ipip') {
    s.routes.push({ dst, kind: 'ipip', via: peerIP, dev: IPIP_DEVICE, peer: name, pool: pool.name, reason });
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
 * disabled pool's blocks still do.
 */
function tunnelDevices(r: ClusterResources, local: LocalNode, self: NodeRecord) {
  const inUse = encapsulationsInUse(r);
  const mtu = podMtu(local.hostMtu, inUse);
  const warnings: string[] = [];
  const names: string[] = [];
  let vxlan: OverlayPlan['vxlan'];
  let ipip: OverlayPlan['ipip'];
  if (inUse.vxlan) {
    const addr = vxlanTunnelAddr(r, self);
    if (!addr) {
      warnings.push(
        `${local.name} has no block in a VXLAN pool and no ipv4VXLANTunnelAddr: ` + `${VXLAN_DEVICE} gets no address`,
      );
    }
    const local4 = ipText(local.address.ip);
    vxlan = {
      device: VXLAN_DEVICE,
      vni: VXLAN_VNI,
      port: VXLAN_PORT,
      parent: local.parent,
      local: local4,
      mac: vtepMac(self),
      address: optIP(addr),
      mtu,
    };
    names.push(VXLAN_DEVICE);
  }
  if (inUse.ipip) {
    const addr = ipipTunnelAddr(r, self);
    ipip = { device: IPIP_DEVICE, address: optIP(addr), mtu };
    names.push(IPIP_DEVICE);
  }
  return { mtu, vxlan, ipip, names, warnings };
}
