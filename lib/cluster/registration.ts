// A node joining a cluster in etcd, as calico-node does at start: it writes its Node (its addresses of
// each family with the prefix CrossSubnet reads, its labels, its VTEP MACs), claims a first block in each
// pool that selects it, then records the tunnel addresses those blocks give it (IPv6 VXLAN's too). Nobody writes a Node or a block
// by hand. An address applied by hand (`tabby apply` of a Node) is kept.
import { CniError, Code } from '../cni/errors';
import { contains, formatCidr, formatIP, parseCidr } from '../net/addr';
import { log } from '../log';
import type { EtcdDatastore } from '../datastore/etcd-datastore';
import { claimInPool, usablePools } from '../datastore/etcd-blocks';
import { ownerOf } from '../datastore/etcd-keys';
import type { ClusterContext } from './context';
import { derivedTunnelAddr, vtepMacFor, vtepMacV6For } from './identity';

/** Set on a Node tabby wrote (`agent`, or `plugin` for a node without one); without it, a person applied it. */
export const REGISTERED_BY = 'tabby.dev/registered-by';

type Doc = { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any };

/** Parses `--node-labels k=v,k2=v2`. */
export function parseNodeLabels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (text ?? '').split(',').filter((p) => p.trim())) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    if (eq <= 0 || !/^[A-Za-z0-9_./-]{1,512}$/.test(key)) {
      throw new CniError(Code.InvalidNetworkConfig, `--node-labels: "${part}" is not key=value`);
    }
    out[key] = part.slice(eq + 1).trim();
  }
  return out;
}

export async function registerNode(
  ctx: ClusterContext,
  ds: EtcdDatastore,
  labels: Record<string, string>,
): Promise<void> {
  const name = ctx.conf.nodeName;
  const existing = await ds.getResource('Node', name);
  const old: Doc = existing ? JSON.parse(existing.value) : {};
  const byHand = existing && !old.metadata?.annotations?.[REGISTERED_BY];
  const addrs = await addressesOf(ctx, byHand ? old.spec?.bgp : undefined);
  const address = [addrs.ipv4Address, addrs.ipv6Address].filter(Boolean).join(', ');
  const node = {
    apiVersion: 'projectcalico.org/v3',
    kind: 'Node',
    metadata: {
      name,
      labels: { ...(old.metadata?.labels ?? {}), ...labels },
      annotations: { ...(old.metadata?.annotations ?? {}), [REGISTERED_BY]: 'agent' },
    },
    spec: {
      ...(old.spec ?? {}),
      // an address autodetected before and gone now is dropped
      bgp: { ...withoutAddresses(old.spec?.bgp ?? {}), ...addrs },
      vxlanTunnelMACAddr: vtepMacFor(name),
      ...(addrs.ipv6Address ? { vxlanTunnelMACAddrV6: vtepMacV6For(name) } : {}),
    },
  };
  await ds.putResource('Node', name, node);
  log.info(`registered node ${name}: ${address}${byHand ? ' (given by hand, else autodetected)' : ' (autodetected)'}`);

  // A first block in each pool that selects this node, then the tunnel addresses they give it.
  let r = await ds.loadFresh();
  const records = await ds.blockRecords();
  const taken = new Set(records.map((b) => b.record.cidr));
  const mine = records.filter((b) => ownerOf(b.record) === name).map((b) => b.record.cidr);
  for (const pool of usablePools(r.pools, { name, labels: node.metadata.labels })) {
    if (mine.some((c) => contains(pool.cidr, parseCidr(c)?.ip ?? pool.cidr.ip) && parseCidr(c))) continue;
    const got = await claimInPool(ds, name, pool, taken);
    if (got) log.info(`claimed block ${formatCidr(got)} of pool ${pool.name}`);
    else log.warn(`pool ${pool.name} has no free block for node ${name}`);
  }
  r = await ds.loadFresh();
  const vxlan = derivedTunnelAddr(r, name, 'vxlan');
  const vxlan6 = derivedTunnelAddr(r, name, 'vxlan', 6);
  const ipip = derivedTunnelAddr(r, name, 'ipip');
  const spec = { ...node.spec } as any;
  if (vxlan) spec.ipv4VXLANTunnelAddr = formatIP(vxlan);
  else delete spec.ipv4VXLANTunnelAddr;
  if (vxlan6) spec.ipv6VXLANTunnelAddr = formatIP(vxlan6);
  else delete spec.ipv6VXLANTunnelAddr;
  spec.bgp = { ...spec.bgp };
  if (ipip) spec.bgp.ipv4IPIPTunnelAddr = formatIP(ipip);
  else delete spec.bgp.ipv4IPIPTunnelAddr;
  if (JSON.stringify(spec) !== JSON.stringify(node.spec)) await ds.putResource('Node', name, { ...node, spec });
}

/**
 * A pod start on a node with no agent claims blocks; without a Node its peers could not route them. So it
 * creates one, if there is none, with the autodetected address and the VTEP MAC (one transaction, only
 * when it claims). The agent, when it starts, registers the node in full.
 */
export async function ensureNodeRecord(ctx: ClusterContext, ds: EtcdDatastore): Promise<void> {
  const name = ctx.conf.nodeName;
  const bgp = await addressesOf(ctx);
  const node = {
    apiVersion: 'projectcalico.org/v3',
    kind: 'Node',
    metadata: { name, annotations: { [REGISTERED_BY]: 'plugin' } },
    spec: {
      bgp,
      vxlanTunnelMACAddr: vtepMacFor(name),
      ...(bgp.ipv6Address ? { vxlanTunnelMACAddrV6: vtepMacV6For(name) } : {}),
    },
  };
  const r = await ds.etcd().createIfAbsent(ds.keys.resource('Node', name), JSON.stringify(node));
  if (r.succeeded) log.info(`registered node ${name} (no agent): ${Object.values(bgp).join(', ')}`);
}

/**
 * The node's addresses for its record: those given by hand (`given`, a Node's spec.bgp applied by a
 * person), else autodetected (ipAutodetectionMethod, ipAutodetectionMethodV6). A node of a pure IPv6
 * underlay has no IPv4 address, one of an IPv4 underlay no IPv6 one; it needs one of the two.
 */
async function addressesOf(
  ctx: ClusterContext,
  given?: { ipv4Address?: unknown; ipv6Address?: unknown },
): Promise<{ ipv4Address?: string; ipv6Address?: string }> {
  let v4Error: unknown;
  const v4 = given?.ipv4Address
    ? String(given.ipv4Address)
    : await ctx.detectAddress().then(
        (a) => formatCidr(a.cidr),
        (e) => void (v4Error = e),
      );
  const v6 = given?.ipv6Address
    ? String(given.ipv6Address)
    : await ctx.detectAddress6().then((a) => (a ? formatCidr(a.cidr) : undefined));
  if (!v4 && !v6) throw v4Error;
  return { ...(v4 ? { ipv4Address: v4 } : {}), ...(v6 ? { ipv6Address: v6 } : {}) };
}

const withoutAddresses = (bgp: Record<string, unknown>): Record<string, unknown> => {
  const { ipv4Address: _v4, ipv6Address: _v6, ...rest } = bgp;
  return rest;
};
