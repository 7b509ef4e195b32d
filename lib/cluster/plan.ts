import { Cidr, contains, formatCidr, formatIP } from '../../ipam/addr';
import { ClusterResources, IPPool, NodeRecord } from '../../conf/calico';
import { IPIP_DEVICE, IPIP_OVERHEAD, VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI } from '../dataplane/devices';
import { blocksOf, ipipTunnelAddr, poolOf, vtepMac, vxlanTunnelAddr } from './identity';

/**
 * Route planning, pure: from the cluster's resources and what this node is, what the kernel should hold.
 * Every route carries the reason it exists, for `tabby plan` and `tabby status`.
 */

export { VXLAN_DEVICE, IPIP_DEVICE, VXLAN_VNI, VXLAN_PORT, VXLAN_OVERHEAD, IPIP_OVERHEAD };

export interface LocalNode {
  name: string;
  /** The node's underlay address and subnet. */
  address: Cidr;
  /** The interface that carries it: the VXLAN parent and the direct-route device. */
  parent: string;
  hostMtu: number;
}

export type PathKind = 'vxlan' | 'ipip' | 'direct' | 'blackhole';

export interface PlannedRoute {
  dst: string;
  kind: PathKind;
  via?: string;
  dev?: string;
  peer?: string;
  pool?: string;
  reason: string;
}

export interface Unreachable {
  peer: string;
  block: string;
  reason: string;
}

export interface OverlayPlan {
  node: { name: string; address: string; parent: string };
  /** Pod (and veth) MTU: host MTU less the largest overhead among encapsulations in use. */
  mtu: number;
  vxlan?: { device: string; vni: number; port: number; parent: string; local: string; mac: string; address?: string; mtu: number };
  ipip?: { device: string; address?: string; mtu: number };
  routes: PlannedRoute[];
  fdb: { mac: string; dst: string; peer: string }[];
  neighbours: { ip: string; mac: string; peer: string }[];
  nat: { allPools: string[]; natPools: string[]; tunnelDevices: string[] };
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
  const live = r.pools.filter((p) => p.cidr.ip.family === 4 && (!p.disabled || r.affinities.some((a) => contains(p.cidr, a.cidr.ip))));
  return { vxlan: live.some((p) => p.vxlanMode !== 'Never'), ipip: live.some((p) => p.ipipMode !== 'Never') };
}

/** Host MTU less the largest overhead among the encapsulations in use (calico-behaviour.md §5). */
export function podMtu(hostMtu: number, inUse: { vxlan: boolean; ipip: boolean }): number {
  return hostMtu - Math.max(inUse.vxlan ? VXLAN_OVERHEAD : 0, inUse.ipip ? IPIP_OVERHEAD : 0);
}

export function planOverlay(r: ClusterResources, local: LocalNode): OverlayPlan {
  const self = r.nodes.find((n) => n.name === local.name) ?? { name: local.name };
  const localIP = formatIP(local.address.ip);
  const routes: PlannedRoute[] = [];
  const unreachable: Unreachable[] = [];
  const vxlanPeers = new Map<string, NodeRecord>();

  for (const b of blocksOf(r, local.name)) {
    const pool = poolOf(r, b.cidr);
    routes.push({ dst: formatCidr(b.cidr), kind: 'blackhole', pool: pool?.name, reason: `block of this node (${local.name}): addresses not given to a pod are dropped here` });
  }
  const peerNames = [...new Set(r.affinities.map((a) => a.node))].filter((n) => n !== local.name).sort();
  for (const name of peerNames) {
    const peer = r.nodes.find((n) => n.name === name) ?? { name };
    for (const b of blocksOf(r, name)) {
      const pool = poolOf(r, b.cidr);
      const dst = formatCidr(b.cidr);
      const cannot = (reason: string) => unreachable.push({ peer: name, block: dst, reason });
      if (!pool) continue;
      if (b.cidr.ip.family !== 4) { cannot('IPv6 blocks are routed only by an underlay that knows pod addresses (tabby tunnels IPv4)'); continue; }
      if (!peer.ipv4Address) { cannot(`node ${name} has no IPv4 address in the cluster file`); continue; }
      const peerIP = formatIP(peer.ipv4Address.ip);
      const same = contains(local.address, peer.ipv4Address.ip);
      const where = same
        ? `${name} (${peerIP}) is in this node's subnet ${formatCidr(local.address)}`
        : `${name} (${peerIP}) is in another subnet than ${formatCidr(local.address)}`;
      const encap = encapOf(pool);
      const mode = modeOf(pool);
      if (!encap || (mode === 'CrossSubnet' && same)) {
        if (same) {
          routes.push({ dst, kind: 'direct', via: peerIP, dev: local.parent, peer: name, pool: pool.name, reason: `${where}, and pool ${pool.name} is ${encap ? `${encap} ${mode}` : 'not encapsulated'}: routed directly` });
        } else {
          cannot(`${where} and pool ${pool.name} has no encapsulation (Never): only an underlay that routes pod addresses can reach it`);
        }
        continue;
      }
      const why = mode === 'Always' ? `pool ${pool.name} is ${encap} Always` : `${where}, so it goes through the tunnel (pool ${pool.name} is ${encap} CrossSubnet)`;
      if (encap === 'ipip') {
        routes.push({ dst, kind: 'ipip', via: peerIP, dev: IPIP_DEVICE, peer: name, pool: pool.name, reason: why });
        continue;
      }
      const tunnel = vxlanTunnelAddr(r, peer);
      if (!tunnel) { cannot(`node ${name} has no VXLAN tunnel address (no block in a VXLAN pool, no ipv4VXLANTunnelAddr)`); continue; }
      routes.push({ dst, kind: 'vxlan', via: formatIP(tunnel), dev: VXLAN_DEVICE, peer: name, pool: pool.name, reason: why });
      vxlanPeers.set(name, peer);
    }
  }

  // A tunnel device exists while an enabled pool uses it, or a disabled pool's blocks still do.
  const inUse = encapsulationsInUse(r);
  const useVxlan = inUse.vxlan;
  const useIpip = inUse.ipip;
  const mtu = podMtu(local.hostMtu, inUse);
  const warnings: string[] = [];
  const tunnelDevices: string[] = [];
  let vxlan: OverlayPlan['vxlan'];
  let ipip: OverlayPlan['ipip'];
  if (useVxlan) {
    const addr = vxlanTunnelAddr(r, self);
    if (!addr) warnings.push(`${local.name} has no block in a VXLAN pool and no ipv4VXLANTunnelAddr: ${VXLAN_DEVICE} gets no address`);
    vxlan = { device: VXLAN_DEVICE, vni: VXLAN_VNI, port: VXLAN_PORT, parent: local.parent, local: localIP, mac: vtepMac(self), address: addr && formatIP(addr), mtu };
    tunnelDevices.push(VXLAN_DEVICE);
  }
  if (useIpip) {
    const addr = ipipTunnelAddr(r, self);
    ipip = { device: IPIP_DEVICE, address: addr && formatIP(addr), mtu };
    tunnelDevices.push(IPIP_DEVICE);
  }
  return {
    node: { name: local.name, address: formatCidr(local.address), parent: local.parent },
    mtu,
    vxlan,
    ipip,
    routes,
    fdb: [...vxlanPeers].map(([name, p]) => ({ mac: vtepMac(p), dst: formatIP(p.ipv4Address!.ip), peer: name })),
    neighbours: [...vxlanPeers].map(([name, p]) => ({ ip: formatIP(vxlanTunnelAddr(r, p)!), mac: vtepMac(p), peer: name })),
    nat: {
      allPools: r.pools.map((p) => formatCidr(p.cidr)),
      natPools: r.pools.filter((p) => p.natOutgoing).map((p) => formatCidr(p.cidr)),
      tunnelDevices,
    },
    unreachable,
    warnings,
  };
}
