import { describe, expect, it } from 'vitest';
import { BlockAffinity, ClusterResources, IPPool, NodeRecord, resourcesFromDocuments } from '../../conf/calico';
import { DocumentCache } from '../../conf/cluster-documents';
import { Addr, Cidr, contains, formatCidr, formatIP, networkOf, offset, parseIP } from '../../lib/net/addr';
import { blocksOf, clusterIndex, derivedTunnelAddr, vtepMacFor } from '../../lib/cluster/identity';
import { LocalNode, OverlayPlan, planOverlay, PlannedRoute, Unreachable } from '../../lib/cluster/plan';
import { bigClusterYaml, bigNodeAddress, bigNodeBlock } from '../helpers/big-cluster';
import { cidr, pool } from '../helpers/fixtures';

type Encap = 'vxlan' | 'ipip';

/**
 * The planning rules of the README, written the plain way: every lookup scans the whole cluster (O(n²)).
 * What planOverlay returns must be exactly this, key order included.
 */
function referencePlan(r: ClusterResources, local: LocalNode): OverlayPlan {
  const poolFor = (b: BlockAffinity) => r.pools.find((p) => contains(p.cidr, b.cidr.ip));
  const blocks = (node: string) =>
    r.affinities.filter((a) => a.node === node).sort((a, b) => (a.cidr.ip.value < b.cidr.ip.value ? -1 : 1));
  const record = (name: string): NodeRecord => r.nodes.find((n) => n.name === name) ?? { name };
  const modeIn = (p: IPPool, encap: Encap) => (encap === 'vxlan' ? p.vxlanMode : p.ipipMode);
  const tunnel = (n: NodeRecord, encap: Encap, family: 4 | 6 = 4): Addr | undefined => {
    const given =
      family === 6 ? n.ipv6VXLANTunnelAddr : encap === 'vxlan' ? n.ipv4VXLANTunnelAddr : n.ipv4IPIPTunnelAddr;
    const first = blocks(n.name).find((b) => {
      const p = poolFor(b);
      return p && p.allowedUses.includes('Tunnel') && b.cidr.ip.family === family && modeIn(p, encap) !== 'Never';
    });
    return given ?? (first && offset(networkOf(first.cidr), 1n));
  };
  const mac = (n: NodeRecord) => n.vxlanTunnelMACAddr ?? vtepMacFor(n.name);
  const mac6 = (n: NodeRecord) => n.vxlanTunnelMACAddrV6 ?? vtepMacFor(`${n.name}-v6`);
  const routes: PlannedRoute[] = [];
  const unreachable: Unreachable[] = [];
  const vteps: NodeRecord[] = [];
  const vteps6: NodeRecord[] = [];
  for (const b of blocks(local.name)) {
    const reason = `block of this node (${local.name}): addresses not given to a pod are dropped here`;
    routes.push({ dst: formatCidr(b.cidr), kind: 'blackhole', pool: poolFor(b)?.name, reason });
  }
  const peers = [...new Set(r.affinities.map((a) => a.node))].filter((n) => n !== local.name).sort();
  for (const name of peers) {
    const peer = record(name);
    for (const b of blocks(name)) {
      const p = poolFor(b);
      const dst = formatCidr(b.cidr);
      if (!p) continue;
      const cannot = (reason: string) => unreachable.push({ peer: name, block: dst, reason });
      const v6 = b.cidr.ip.family === 6;
      const fam = v6 ? 'IPv6' : 'IPv4';
      const field = v6 ? 'ipv6Address' : 'ipv4Address';
      const mine = v6 ? local.address6 : local.address;
      if (!mine) {
        cannot(`this node (${local.name}) has no ${fam} address (no spec.bgp.${field}, none autodetected)`);
        continue;
      }
      const theirs = v6 ? peer.ipv6Address : peer.ipv4Address;
      if (!theirs) {
        cannot(`node ${name} has no ${fam} address in the datastore (no Node, or no spec.bgp.${field})`);
        continue;
      }
      const ip = formatIP(theirs.ip);
      const same = contains(mine, theirs.ip);
      const where = same
        ? `${name} (${ip}) is in this node's subnet ${formatCidr(mine)}`
        : `${name} (${ip}) is in another subnet than ${formatCidr(mine)}`;
      const encap: Encap | undefined = p.vxlanMode !== 'Never' ? 'vxlan' : p.ipipMode !== 'Never' ? 'ipip' : undefined;
      const mode = encap ? modeIn(p, encap) : 'Never';
      if (!encap || (mode === 'CrossSubnet' && same)) {
        const how = encap ? `${encap} ${mode}` : 'not encapsulated';
        if (same) {
          const reason = `${where}, and pool ${p.name} is ${how}: routed directly`;
          const dev = v6 ? local.parent6 : local.parent;
          routes.push({ dst, kind: 'direct', via: ip, dev, peer: name, pool: p.name, reason });
        } else {
          cannot(
            `${where} and pool ${p.name} has no encapsulation (Never): ` +
              'only an underlay that routes pod addresses can reach it',
          );
        }
        continue;
      }
      const reason =
        mode === 'Always'
          ? `pool ${p.name} is ${encap} Always`
          : `${where}, so it goes through the tunnel (pool ${p.name} is ${encap} CrossSubnet)`;
      if (encap === 'ipip') {
        routes.push({ dst, kind: 'ipip', via: ip, dev: 'tunl0', peer: name, pool: p.name, reason });
        continue;
      }
      const t = tunnel(peer, 'vxlan', v6 ? 6 : 4);
      if (!t) {
        cannot(
          v6
            ? `node ${name} has no IPv6 VXLAN tunnel address (no block in an IPv6 VXLAN pool, no ipv6VXLANTunnelAddr)`
            : `node ${name} has no VXLAN tunnel address (no block in a VXLAN pool, no ipv4VXLANTunnelAddr)`,
        );
        continue;
      }
      const dev = v6 ? 'vxlan-v6.tabby' : 'vxlan.tabby';
      routes.push({ dst, kind: 'vxlan', via: formatIP(t), dev, peer: name, pool: p.name, reason });
      const list = v6 ? vteps6 : vteps;
      if (!list.includes(peer)) list.push(peer);
    }
  }
  const hasBlocks = (p: IPPool) => r.affinities.some((a) => contains(p.cidr, a.cidr.ip));
  const live = r.pools.filter((p) => !p.disabled || hasBlocks(p));
  const live4 = live.filter((p) => p.cidr.ip.family === 4);
  const useVxlan = live4.some((p) => p.vxlanMode !== 'Never');
  const useIpip = live4.some((p) => p.ipipMode !== 'Never');
  const useVxlan6 = live.some((p) => p.cidr.ip.family === 6 && p.vxlanMode !== 'Never');
  const mtu = local.hostMtu - Math.max(useVxlan ? 50 : 0, useIpip ? 20 : 0, useVxlan6 ? 70 : 0);
  const self = record(local.name);
  const own = (encap: Encap, family: 4 | 6 = 4) => ((a) => a && formatIP(a))(tunnel(self, encap, family));
  const warnings: string[] = [];
  const vx4 = useVxlan && local.address;
  const vx6 = useVxlan6 && local.address6 && local.parent6;
  if (useVxlan && !local.address) warnings.push(`${local.name} has no IPv4 address: vxlan.tabby is not created`);
  if (vx4 && !own('vxlan'))
    warnings.push(`${local.name} has no block in a VXLAN pool and no ipv4VXLANTunnelAddr: vxlan.tabby gets no address`);
  if (useVxlan6 && !vx6)
    warnings.push(
      `${local.name} has no IPv6 address (no spec.bgp.ipv6Address, none autodetected): vxlan-v6.tabby is not created`,
    );
  if (vx6 && !own('vxlan', 6))
    warnings.push(
      `${local.name} has no block in an IPv6 VXLAN pool and no ipv6VXLANTunnelAddr: vxlan-v6.tabby gets no address`,
    );
  const device = (name: string, parent: string, address: Cidr, m: string, tunnelAddr: string | undefined) => ({
    device: name,
    vni: 4096,
    port: 4789,
    parent,
    local: formatIP(address.ip),
    mac: m,
    address: tunnelAddr,
    mtu,
  });
  return {
    node: {
      name: local.name,
      ...(local.address ? { address: formatCidr(local.address) } : {}),
      parent: local.parent,
      ...(local.address6 ? { address6: formatCidr(local.address6), parent6: local.parent6 } : {}),
    },
    mtu,
    vxlan: vx4 ? device('vxlan.tabby', local.parent, local.address!, mac(self), own('vxlan')) : undefined,
    ...(vx6 ? { vxlanV6: device('vxlan-v6.tabby', local.parent6!, local.address6!, mac6(self), own('vxlan', 6)) } : {}),
    ipip: useIpip ? { device: 'tunl0', address: own('ipip'), mtu } : undefined,
    routes,
    fdb: vteps.map((p) => ({ mac: mac(p), dst: formatIP(p.ipv4Address!.ip), peer: p.name })),
    neighbours: vteps.map((p) => ({ ip: formatIP(tunnel(p, 'vxlan')!), mac: mac(p), peer: p.name })),
    fdbV6: vteps6.map((p) => ({ mac: mac6(p), dst: formatIP(p.ipv6Address!.ip), peer: p.name })),
    neighboursV6: vteps6.map((p) => ({ ip: formatIP(tunnel(p, 'vxlan', 6)!), mac: mac6(p), peer: p.name })),
    nat: {
      allPools: r.pools.map((p) => formatCidr(p.cidr)),
      natPools: r.pools.filter((p) => p.natOutgoing).map((p) => formatCidr(p.cidr)),
      tunnelDevices: [
        ...(vx4 ? ['vxlan.tabby'] : []),
        ...(vx6 ? ['vxlan-v6.tabby'] : []),
        ...(useIpip ? ['tunl0'] : []),
      ],
    },
    unreachable,
    warnings,
  };
}
/** A small deterministic random source, so the mixed cluster is the same on every run. */
function random(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

/**
 * Every case at once: pools of each encapsulation and mode, a disabled one, one without the Tunnel use, an
 * IPv6 one; nodes in two subnets or without an address, with given tunnel addresses and MACs, without a
 * record, listed twice; blocks out of order, several per node, one in no pool.
 */
function mixedCluster(nodes: number, seed: number): ClusterResources {
  const rnd = random(seed);
  const pools = [
    pool('vx', '10.10.0.0/16', { vxlanMode: 'CrossSubnet', natOutgoing: true }),
    pool('vxa', '10.11.0.0/16', { vxlanMode: 'Always', blockSize: 24 }),
    pool('ip', '10.20.0.0/16', { ipipMode: 'CrossSubnet', natOutgoing: true }),
    pool('ipa', '10.21.0.0/16', { ipipMode: 'Always' }),
    pool('plain', '10.30.0.0/16'),
    pool('workload-only', '10.40.0.0/16', { vxlanMode: 'Always', allowedUses: ['Workload'] }),
    pool('old', '10.50.0.0/16', { ipipMode: 'Always', disabled: true }),
    pool('v6', 'fd00::/48', { vxlanMode: 'Always', blockSize: 122 }),
    pool('v6x', 'fd00:1::/48', { vxlanMode: 'CrossSubnet', blockSize: 122, natOutgoing: true }),
    pool('v6n', 'fd00:2::/48', { blockSize: 122 }),
  ];
  const next = new Map<IPPool, number>();
  const blockOf = (p: IPPool): Cidr => {
    const i = next.get(p) ?? 0;
    next.set(p, i + 1);
    const size = 1n << BigInt((p.cidr.ip.family === 4 ? 32 : 128) - p.blockSize);
    return { ip: offset(p.cidr.ip, BigInt(i) * size), prefix: p.blockSize };
  };
  const records: NodeRecord[] = [];
  const affinities: BlockAffinity[] = [];
  for (let i = 0; i < nodes; i++) {
    const name = `node-${String(i).padStart(3, '0')}`;
    const kind = rnd(10);
    const rec: NodeRecord = { name };
    if (kind < 4) rec.ipv4Address = cidr(`192.168.1.${i + 1}/24`);
    else if (kind < 8) rec.ipv4Address = cidr(`192.168.2.${i + 1}/24`);
    if (rnd(8) === 0) rec.ipv4VXLANTunnelAddr = parseIP(`10.99.1.${i + 1}`)!;
    if (rnd(8) === 0) rec.ipv4IPIPTunnelAddr = parseIP(`10.99.2.${i + 1}`)!;
    if (rnd(8) === 0) rec.vxlanTunnelMACAddr = `66:00:00:00:00:${(i & 255).toString(16).padStart(2, '0')}`;
    // IPv6: in one of two /64s, as a /128 (never the same subnet), or none
    const v6 = rnd(4);
    if (v6 < 3) rec.ipv6Address = cidr(`2001:db8:${v6 === 1 ? 2 : 1}::${i + 1}/${v6 === 2 ? 128 : 64}`);
    if (rnd(8) === 0) rec.ipv6VXLANTunnelAddr = parseIP(`fd99::${i + 1}`)!;
    if (rnd(8) === 0) rec.vxlanTunnelMACAddrV6 = `66:00:00:00:06:${(i & 255).toString(16).padStart(2, '0')}`;
    if (kind !== 9) records.push(rec); // no Node record: blocks only
    // a second record: the first counts
    if (rnd(12) === 0) records.push({ name, ipv4Address: cidr('192.168.3.1/24') });
    for (let k = rnd(4); k > 0; k--) {
      const p = pools[rnd(pools.length)];
      affinities.push({ name: `${name}-${k}`, node: name, cidr: blockOf(p) });
    }
  }
  affinities.push({ name: 'stray', node: 'node-001', cidr: cidr('10.200.0.0/26') }); // in no pool
  records.push({ name: 'no-blocks', ipv4Address: cidr('192.168.1.250/24') });
  // shuffled: the order in the file must not matter
  for (let i = affinities.length - 1; i > 0; i--) {
    const j = rnd(i + 1);
    [affinities[i], affinities[j]] = [affinities[j], affinities[i]];
  }
  return { pools, nodes: records, affinities };
}

const localOf = (r: ClusterResources, name: string, fallback = '192.168.1.200/24'): LocalNode => {
  const rec = r.nodes.find((n) => n.name === name);
  return {
    name,
    address: rec?.ipv4Address ?? cidr(fallback),
    parent: 'eth0',
    ...(rec?.ipv6Address ? { address6: rec.ipv6Address, parent6: 'eth1' } : {}),
    hostMtu: 1500,
  };
};

describe('planOverlay equals the plain reference', () => {
  it.each([1, 2, 3])('on a mixed cluster of 80 nodes (seed %i), for every node and for strangers', (seed) => {
    const r = mixedCluster(80, seed);
    const names = [...r.nodes.map((n) => n.name), 'node-absent'];
    for (const name of names) {
      const local = localOf(r, name);
      const got = planOverlay(r, local);
      const want = referencePlan(r, local);
      expect(got).toEqual(want);
      expect(JSON.stringify(got)).toBe(JSON.stringify(want));
    }
  });

  it('for nodes with only IPv6 or only IPv4 underlay addresses', () => {
    const r = mixedCluster(80, 9);
    for (const name of ['node-001', 'node-010', 'node-042', 'node-absent']) {
      const { address: _v4, ...v6only } = localOf(r, name);
      const only6: LocalNode = { ...v6only, address6: cidr('2001:db8:1::fe/64'), parent6: 'eth1' };
      const only4: LocalNode = { name, address: cidr('192.168.1.201/24'), parent: 'eth0', hostMtu: 1500 };
      for (const local of [only6, only4]) {
        const got = planOverlay(r, local);
        expect(JSON.stringify(got)).toBe(JSON.stringify(referencePlan(r, local)));
      }
    }
  });

  it('on 1,000 nodes', () => {
    const r = mixedCluster(1000, 7);
    for (const name of ['node-000', 'node-500', 'node-999']) {
      expect(planOverlay(r, localOf(r, name))).toEqual(referencePlan(r, localOf(r, name)));
    }
  });

  it('after the resources changed (the cached index follows)', () => {
    const r = mixedCluster(40, 4);
    const local = localOf(r, 'node-002');
    planOverlay(r, local);
    r.affinities = r.affinities.filter((a) => a.node !== 'node-003');
    expect(planOverlay(r, local)).toEqual(referencePlan(r, local));
    r.affinities.push({ name: 'late', node: 'node-003', cidr: cidr('10.11.200.0/24') });
    expect(planOverlay(r, local)).toEqual(referencePlan(r, local));
    r.nodes = [];
    expect(planOverlay(r, local)).toEqual(referencePlan(r, local));
  });
});

describe('the identity helpers agree with plain scans', () => {
  it('blocksOf and derivedTunnelAddr', () => {
    const r = mixedCluster(60, 5);
    for (const n of [...new Set(r.affinities.map((a) => a.node))]) {
      const plain = r.affinities
        .filter((a) => a.node === n)
        .sort((a, b) => (a.cidr.ip.value < b.cidr.ip.value ? -1 : 1));
      expect(blocksOf(r, n)).toEqual(plain);
    }
    expect(derivedTunnelAddr(r, 'nobody', 'vxlan')).toBeUndefined();
    expect(clusterIndex(r)).toBe(clusterIndex(r)); // built once
    const copy = { ...r };
    expect(clusterIndex(copy)).not.toBe(clusterIndex(r));
  });
});

describe('planning 5,000 nodes', () => {
  const n = 5000;
  // Parsed once, through the path a long-running process takes.
  const resources = (async () => {
    const docs = await new DocumentCache().documents(bigClusterYaml(n, { mode: 'CrossSubnet' }));
    return resourcesFromDocuments(docs);
  })();

  it('the generated file has one Node and one block per node, in one subnet', async () => {
    const r = await resources;
    expect([r.pools.length, r.nodes.length, r.affinities.length]).toEqual([1, n, n]);
    expect(formatCidr(r.nodes[n - 1].ipv4Address!)).toBe(bigNodeAddress(n - 1));
    expect(formatCidr(r.affinities[n - 1].cidr)).toBe(bigNodeBlock(n - 1));
  });

  it('routes every peer directly within the subnet, and through the tunnel from another', async () => {
    const r = await resources;
    const inside = planOverlay(r, localOf(r, 'node-17'));
    expect(inside.routes).toHaveLength(n);
    expect(inside.routes.filter((x) => x.kind === 'direct')).toHaveLength(n - 1);
    expect(inside.routes[0]).toMatchObject({ kind: 'blackhole', dst: bigNodeBlock(17) });
    expect(inside.fdb).toEqual([]);
    const outside = planOverlay(r, { ...localOf(r, 'elsewhere', '192.168.0.1/24'), hostMtu: 9000 });
    expect(outside.routes.filter((x) => x.kind === 'vxlan')).toHaveLength(n);
    expect(outside.fdb).toHaveLength(n);
    const tunnel = formatIP(offset(cidr(bigNodeBlock(4321)).ip, 1n));
    const mac = vtepMacFor('node-4321');
    expect(outside.neighbours.find((x) => x.peer === 'node-4321')).toEqual({ ip: tunnel, mac, peer: 'node-4321' });
    expect(outside.neighbours.map((x) => x.peer)).toEqual(r.nodes.map((x) => x.name).sort()); // peers in name order
  });

  it('plans each peer as it would plan a cluster of that peer alone', async () => {
    const r = await resources;
    const local = localOf(r, 'node-17', '192.168.0.1/24');
    const plan = planOverlay(r, local);
    for (const peer of ['node-0', 'node-18', 'node-999', `node-${n - 1}`]) {
      const alone: ClusterResources = {
        pools: r.pools,
        nodes: r.nodes.filter((x) => x.name === peer || x.name === local.name),
        affinities: r.affinities.filter((a) => a.node === peer || a.node === local.name),
      };
      const small = planOverlay(alone, local);
      expect(plan.routes.filter((x) => x.peer === peer)).toEqual(small.routes.filter((x) => x.peer === peer));
      expect(plan.fdb.filter((x) => x.peer === peer)).toEqual(small.fdb);
    }
  });

  it('equals the plain reference in VXLAN Always mode', async () => {
    const r = await resources;
    const always: ClusterResources = { ...r, pools: [{ ...r.pools[0], vxlanMode: 'Always' }] };
    const local = localOf(always, 'node-4000');
    expect(planOverlay(always, local)).toEqual(referencePlan(always, local));
  });
});
