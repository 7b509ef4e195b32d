import { sha1 } from '../sha1';
import { Addr, Cidr, contains, formatIP, networkOf, offset, parseCidr, parseIP } from '../../ipam/addr';
import { BlockAffinity, ClusterResources, IPPool, NodeRecord } from '../../conf/calico';

/** Who a node is on the overlay: its VTEP MAC and its tunnel address, from its record or derived as documented. */

/** Calico's derivation: 0x66 (locally administered, unicast) and the first five bytes of sha1(node name). */
export function vtepMacFor(nodeName: string): string {
  const h = sha1(nodeName);
  return [0x66, ...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export const poolOf = (r: ClusterResources, block: Cidr): IPPool | undefined =>
  r.pools.find((p) => contains(p.cidr, block.ip));

/** The node's blocks, lowest address first. */
export function blocksOf(r: ClusterResources, node: string): BlockAffinity[] {
  return r.affinities.filter((a) => a.node === node).sort((a, b) => (a.cidr.ip.value < b.cidr.ip.value ? -1 : 1));
}

/**
 * The tunnel address tabby derives when the Node record gives none: the first address after the network
 * address of the node's first block (lowest) in a pool of that encapsulation. IPAM treats it as the block's
 * gateway, so it is never handed to a pod.
 */
export function derivedTunnelAddr(r: ClusterResources, node: string, encap: 'vxlan' | 'ipip'): Addr | undefined {
  const first = blocksOf(r, node).find((b) => {
    const p = poolOf(r, b.cidr);
    // Calico takes tunnel addresses only from pools that allow the Tunnel use
    return p && p.allowedUses.includes('Tunnel') && b.cidr.ip.family === 4 && (encap === 'vxlan' ? p.vxlanMode !== 'Never' : p.ipipMode !== 'Never');
  });
  return first ? offset(networkOf(first.cidr), 1n) : undefined;
}

export function vxlanTunnelAddr(r: ClusterResources, n: NodeRecord): Addr | undefined {
  return n.ipv4VXLANTunnelAddr ?? derivedTunnelAddr(r, n.name, 'vxlan');
}

export function ipipTunnelAddr(r: ClusterResources, n: NodeRecord): Addr | undefined {
  return n.ipv4IPIPTunnelAddr ?? derivedTunnelAddr(r, n.name, 'ipip');
}

export const vtepMac = (n: NodeRecord): string => n.vxlanTunnelMACAddr ?? vtepMacFor(n.name);

/** An address on one of this host's interfaces, as `ip -j addr` shows it. */
export interface HostAddress {
  ifname: string;
  cidr: Cidr;
}

/**
 * Interfaces first-found never falls back to: Calico's DEFAULT_INTERFACES_TO_EXCLUDE (bridges, veths,
 * tunnels, loopback) and tabby's own VXLAN device, whose tunnel address is not the node's address.
 */
const NOT_FIRST_FOUND = /^(docker|cbr|dummy|virbr|lxcbr|veth|lo|cali|tunl|flannel|kube-ipvs|cni|vxlan\.calico|vxlan-v6\.calico|wireguard\.cali|wg-v6\.cali|nodelocaldns|vxlan\.tabby)/;

/**
 * How the local node's address is found when its Node record has none (Calico's IP_AUTODETECTION_METHOD):
 * `first-found`/absent: the interface of the default route (without one: the first interface that is not a
 * bridge, veth, tunnel or loopback); `interface=REGEX`; `can-reach=IP`
 * (the interface the route to IP leaves by); `cidrs=CIDR,...`.
 */
export function autodetectAddress(
  method: string | undefined,
  addrs: HostAddress[],
  defaultRouteDev: string | undefined,
  routeTo: (ip: string) => string | undefined,
): HostAddress | undefined {
  const v4 = addrs.filter((a) => a.cidr.ip.family === 4);
  const m = method ?? 'first-found';
  if (m === 'first-found' || m === 'default-route') {
    return v4.find((a) => a.ifname === defaultRouteDev) ?? (m === 'first-found' ? v4.find((a) => !NOT_FIRST_FOUND.test(a.ifname)) : undefined);
  }
  const [kind, arg = ''] = [m.slice(0, m.indexOf('=')), m.slice(m.indexOf('=') + 1)];
  switch (kind) {
    case 'interface': {
      const re = new RegExp(arg); // matched anywhere in the name, as Calico (Go regexp.MatchString) does
      return v4.find((a) => re.test(a.ifname));
    }
    case 'can-reach': {
      const dev = routeTo(arg);
      return v4.find((a) => a.ifname === dev);
    }
    case 'cidrs': {
      const cidrs = arg.split(',').map((s) => parseCidr(s.trim()));
      return v4.find((a) => cidrs.some((c) => c && contains(c, a.cidr.ip)));
    }
  }
  return undefined;
}

export function validAutodetectMethod(m: string): string | undefined {
  if (m === 'first-found' || m === 'default-route') return undefined;
  const eq = m.indexOf('=');
  const kind = eq > 0 ? m.slice(0, eq) : m;
  const arg = eq > 0 ? m.slice(eq + 1) : '';
  switch (kind) {
    case 'interface':
      try { new RegExp(arg); } catch { return `interface=${arg}: not a regular expression`; }
      return arg ? undefined : 'interface= needs a regular expression';
    case 'can-reach': return parseIP(arg) ? undefined : `can-reach=${arg}: not an IP address`;
    case 'cidrs': return arg.split(',').every((s) => parseCidr(s.trim())) ? undefined : `cidrs=${arg}: not a list of CIDRs`;
  }
  return `unknown method "${m}" (use first-found, interface=REGEX, can-reach=IP or cidrs=CIDR,...)`;
}

export const describeAddr = (a: Addr | undefined): string => (a ? formatIP(a) : '-');
