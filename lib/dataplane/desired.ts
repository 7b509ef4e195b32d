// What the overlay layer can apply: the desired state of tunnel devices, routes, FDB entries,
// neighbours and NAT on one node. The cluster planner produces it (with a reason for each route);
// the dataplane only needs the facts.
import type { NatPlan } from './nat';

export type PathKind = 'vxlan' | 'ipip' | 'direct' | 'blackhole';

/** A route tabby owns (routing protocol ROUTE_PROTO): a blackhole, or `dst via … dev … onlink`. */
export interface DesiredRoute {
  dst: string;
  kind: PathKind;
  via?: string;
  dev?: string;
}

export interface DesiredVxlan {
  device: string;
  vni: number;
  port: number;
  parent: string;
  local: string;
  mac: string;
  address?: string;
  mtu: number;
}

export interface DesiredIpip {
  device: string;
  address?: string;
  mtu: number;
}

export interface DesiredOverlay {
  vxlan?: DesiredVxlan;
  /** The IPv6 VXLAN device (vxlan-v6.tabby): IPv6 blocks over the IPv6 underlay. */
  vxlanV6?: DesiredVxlan;
  ipip?: DesiredIpip;
  /** Routes of both families. */
  routes: DesiredRoute[];
  /** Permanent FDB entries on the VXLAN device: a remote VTEP's MAC at its node address. */
  fdb: { mac: string; dst: string }[];
  /** Permanent neighbours on the VXLAN device: a remote tunnel address at its VTEP MAC. */
  neighbours: { ip: string; mac: string }[];
  /** The same on vxlan-v6.tabby: IPv6 node addresses and IPv6 tunnel addresses. */
  fdbV6?: { mac: string; dst: string }[];
  neighboursV6?: { ip: string; mac: string }[];
  nat: NatPlan;
}
