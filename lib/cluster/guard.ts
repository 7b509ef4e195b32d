// What a node refuses to apply. An empty, broken or mistaken cluster description must never tear down a
// working node: a read that holds no pool, or no record of this node, or that names this host's own
// address as a peer's, is refused before anything is planned against the kernel. The dataplane then
// stays as last applied, and every command says why.
import type { ClusterResources } from '../../conf/calico';
import { CniError, Code } from '../cni/errors';
import { Cidr, formatCidr, formatIP } from '../net/addr';
import { clusterIndex, HostAddress } from './identity';

/**
 * A datastore read this node will not apply. `code` is TryAgainLater for a datastore that may be fixed
 * (empty, broken), InvalidNetworkConfig for this node's own config (a wrong nodeName).
 */
export class RefusedRead extends CniError {
  constructor(code: number, message: string) {
    super(code, message);
    this.name = 'RefusedRead';
  }
}

export interface GuardInput {
  nodeName: string;
  /** The datastore, for messages ("file /etc/tabby/cluster.yaml"). */
  datastore: string;
  /**
   * Whether this node must already be in the datastore. A node on etcd with no agent registers itself
   * on its first pod start, so a missing record is how it begins.
   */
  requireRecord: boolean;
  /** This host's addresses: a refusal for a missing node then names the node that owns one of them. */
  host?: HostAddress[];
}

const LAST_GOOD = 'the dataplane stays as last applied';

/** Refuses a read with no pool, or without this node; undefined when it may be applied. */
export function refuseRead(r: ClusterResources, g: GuardInput): RefusedRead | undefined {
  if (r.pools.length === 0) {
    return new RefusedRead(
      Code.TryAgainLater,
      `${g.datastore} holds no IPPool: refused (${LAST_GOOD}). An empty or truncated cluster description ` +
        `never means "remove every pool"; to take the overlay down on purpose, run \`tabby teardown\``,
    );
  }
  if (g.requireRecord && !hasRecord(r, g.nodeName)) {
    const names = knownNodes(r);
    const owner = g.host && ownerOfHost(r, g.host);
    return new RefusedRead(
      Code.InvalidNetworkConfig,
      `node "${g.nodeName}" is not in ${g.datastore} (no Node and no BlockAffinity names it): refused ` +
        `(${LAST_GOOD}). Nodes there: ${names.length ? names.join(', ') : '(none)'}. Set "nodeName" in ` +
        `the conflist to this node's name in the datastore, or add this node there` +
        (owner ? `. Node ${owner} owns this host's address: is this host ${owner}?` : ''),
    );
  }
  return undefined;
}

/**
 * Refuses a plan whose peers include this host: a Node whose address is one of this host's own means
 * this node runs under another name (a typo'd or defaulted nodeName), and routing to it would send the
 * overlay through this host itself.
 */
export function refuseSelfAsPeer(r: ClusterResources, nodeName: string, host: HostAddress[]): RefusedRead | undefined {
  // keyed by family and value: thousands of nodes are compared without formatting an address each
  const own = new Map(host.map((h) => [`${h.cidr.ip.family}/${h.cidr.ip.value}`, h.ifname]));
  const ownOn = (c: Cidr | undefined) => (c ? own.get(`${c.ip.family}/${c.ip.value}`) : undefined);
  for (const n of r.nodes) {
    if (n.name === nodeName) continue;
    const addr = ownOn(n.ipv4Address) ? n.ipv4Address : ownOn(n.ipv6Address) ? n.ipv6Address : undefined;
    if (!addr) continue;
    return new RefusedRead(
      Code.InvalidNetworkConfig,
      `Node ${n.name} has address ${formatCidr(addr)}, which is this host's own (on ${ownOn(addr)}): ` +
        `refused as a peer (${LAST_GOOD}). Is this host ${n.name}? nodeName is "${nodeName}"`,
    );
  }
  return undefined;
}

/** The node that owns one of `host`'s addresses, by its Node record (for "who am I" messages). */
export function ownerOfHost(r: ClusterResources, host: HostAddress[]): string | undefined {
  const own = new Set(host.map((h) => formatIP(h.cidr.ip)));
  return r.nodes.find(
    (n) =>
      (n.ipv4Address && own.has(formatIP(n.ipv4Address.ip))) || (n.ipv6Address && own.has(formatIP(n.ipv6Address.ip))),
  )?.name;
}

export function hasRecord(r: ClusterResources, name: string): boolean {
  const index = clusterIndex(r); // the planner's, built once per read
  return index.nodes.has(name) || index.blocks.has(name);
}

function knownNodes(r: ClusterResources): string[] {
  const names = [...new Set([...r.nodes.map((n) => n.name), ...r.affinities.map((a) => a.node)])].sort();
  return names.length > 20 ? [...names.slice(0, 20), `… ${names.length - 20} more`] : names;
}
