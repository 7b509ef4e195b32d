import { describe, expect, it } from 'vitest';
import { ClusterResources, IPPool, NodeRecord } from '../../conf/calico';
import { parseIP } from '../../lib/net/addr';
import { vtepMacFor } from '../../lib/cluster/identity';
import { LocalNode, OverlayPlan, planOverlay, PlannedRoute } from '../../lib/cluster/plan';
import {
  IPIP_DEVICE,
  IPIP_OVERHEAD,
  VXLAN_DEVICE,
  VXLAN_OVERHEAD,
  VXLAN_PORT,
  VXLAN_VNI,
} from '../../lib/dataplane/devices';
import { aff, cidr, nodeRec, pool as basePool } from '../helpers/fixtures';

/** plan.test's pools are cut in /24 blocks. */
const pool = (name: string, c: string, extra: Partial<IPPool> = {}): IPPool =>
  basePool(name, c, { blockSize: 24, ...extra });

/** Three nodes: a and b on 192.168.10.0/24, c on 192.168.20.0/24; one /24 block each, c has two. */
function cluster(
  p: Partial<IPPool>,
  opts: { extraPools?: IPPool[]; nodes?: NodeRecord[]; extraBlocks?: ReturnType<typeof aff>[] } = {},
): ClusterResources {
  return {
    pools: [pool('pool-a', '10.244.0.0/16', { natOutgoing: true, ...p }), ...(opts.extraPools ?? [])],
    nodes: opts.nodes ?? [
      nodeRec('node-a', '192.168.10.11/24'),
      nodeRec('node-b', '192.168.10.12/24'),
      nodeRec('node-c', '192.168.20.13/24'),
    ],
    affinities: [
      aff('node-c', '10.244.4.0/24'),
      aff('node-a', '10.244.1.0/24'),
      aff('node-b', '10.244.2.0/24'),
      aff('node-c', '10.244.3.0/24'),
      ...(opts.extraBlocks ?? []),
    ],
  };
}
const A: LocalNode = { name: 'node-a', address: cidr('192.168.10.11/24'), parent: 'eth0', hostMtu: 1500 };
const C: LocalNode = { name: 'node-c', address: cidr('192.168.20.13/24'), parent: 'ens5', hostMtu: 9001 };

/** A route in the `ip route` shape, without its reason. */
const line = (r: PlannedRoute): string =>
  r.kind === 'blackhole'
    ? `blackhole ${r.dst}`
    : `${r.dst} via ${r.via} dev ${r.dev} [${r.kind}${r.peer ? ` ${r.peer}` : ''}]`;
const lines = (p: OverlayPlan) => p.routes.map(line);
const route = (p: OverlayPlan, dst: string) => p.routes.find((r) => r.dst === dst)!;

describe('planOverlay, VXLAN Always', () => {
  const p = planOverlay(cluster({ vxlanMode: 'Always' }), A);

  it("routes every remote block via the peer's tunnel address on vxlan.tabby, and blackholes its own", () => {
    expect(lines(p)).toEqual([
      'blackhole 10.244.1.0/24',
      '10.244.2.0/24 via 10.244.2.1 dev vxlan.tabby [vxlan node-b]',
      '10.244.3.0/24 via 10.244.3.1 dev vxlan.tabby [vxlan node-c]',
      '10.244.4.0/24 via 10.244.3.1 dev vxlan.tabby [vxlan node-c]',
    ]);
    expect(p.unreachable).toEqual([]);
    expect(
      p.routes
        .filter((r) => r.kind === 'vxlan')
        .every((r) => r.pool === 'pool-a' && /pool-a is vxlan Always/.test(r.reason)),
    ).toBe(true);
  });

  it("has one permanent FDB entry and one neighbour per peer, with Calico's MACs", () => {
    expect(p.fdb).toEqual([
      { mac: vtepMacFor('node-b'), dst: '192.168.10.12', peer: 'node-b' },
      { mac: vtepMacFor('node-c'), dst: '192.168.20.13', peer: 'node-c' },
    ]);
    expect(p.neighbours).toEqual([
      { ip: '10.244.2.1', mac: vtepMacFor('node-b'), peer: 'node-b' },
      { ip: '10.244.3.1', mac: vtepMacFor('node-c'), peer: 'node-c' },
    ]);
  });

  it('describes the VXLAN device: VNI 4096, port 4789, on the parent, local = node IP, own MAC and tunnel address', () => {
    expect(p.vxlan).toEqual({
      device: 'vxlan.tabby',
      vni: 4096,
      port: 4789,
      parent: 'eth0',
      local: '192.168.10.11',
      mac: vtepMacFor('node-a'),
      address: '10.244.1.1',
      mtu: 1450,
    });
    expect([VXLAN_DEVICE, VXLAN_VNI, VXLAN_PORT, VXLAN_OVERHEAD, IPIP_DEVICE, IPIP_OVERHEAD]).toEqual([
      'vxlan.tabby',
      4096,
      4789,
      50,
      'tunl0',
      20,
    ]);
    expect(p.ipip).toBeUndefined();
  });

  it('gives the pods the host MTU less 50, and the tunnel the same', () => {
    expect(p.mtu).toBe(1450);
    expect(planOverlay(cluster({ vxlanMode: 'Always' }), C).mtu).toBe(8951);
  });

  it('names this node', () => {
    expect(p.node).toEqual({ name: 'node-a', address: '192.168.10.11/24', parent: 'eth0' });
  });

  it('uses MACs and tunnel addresses from the Node records when they are given', () => {
    const nodes = [
      nodeRec('node-a', '192.168.10.11/24'),
      nodeRec('node-b', '192.168.10.12/24', {
        vxlanTunnelMACAddr: '66:00:00:00:00:0b',
        ipv4VXLANTunnelAddr: parseIP('10.244.2.200')!,
      }),
      nodeRec('node-c', '192.168.20.13/24'),
    ];
    const q = planOverlay(cluster({ vxlanMode: 'Always' }, { nodes }), A);
    expect(route(q, '10.244.2.0/24').via).toBe('10.244.2.200');
    expect(q.fdb[0]).toEqual({ mac: '66:00:00:00:00:0b', dst: '192.168.10.12', peer: 'node-b' });
    expect(q.neighbours[0]).toEqual({ ip: '10.244.2.200', mac: '66:00:00:00:00:0b', peer: 'node-b' });
  });
});

describe('planOverlay, VXLAN CrossSubnet', () => {
  const p = planOverlay(cluster({ vxlanMode: 'CrossSubnet' }), A);

  it('routes a same-subnet peer directly via its node IP on the parent, a remote-subnet one through vxlan.tabby', () => {
    expect(lines(p)).toEqual([
      'blackhole 10.244.1.0/24',
      '10.244.2.0/24 via 192.168.10.12 dev eth0 [direct node-b]',
      '10.244.3.0/24 via 10.244.3.1 dev vxlan.tabby [vxlan node-c]',
      '10.244.4.0/24 via 10.244.3.1 dev vxlan.tabby [vxlan node-c]',
    ]);
  });

  it('has FDB entries and neighbours only for tunnelled peers', () => {
    expect(p.fdb.map((f) => f.peer)).toEqual(['node-c']);
    expect(p.neighbours.map((n) => n.peer)).toEqual(['node-c']);
  });

  it('gives reasons that name the subnet relation', () => {
    expect(route(p, '10.244.2.0/24').reason).toMatch(
      /node-b \(192\.168\.10\.12\) is in this node's subnet 192\.168\.10\.11\/24/,
    );
    expect(route(p, '10.244.2.0/24').reason).toMatch(/directly/);
    expect(route(p, '10.244.3.0/24').reason).toMatch(/node-c \(192\.168\.20\.13\) is in another subnet/);
    expect(route(p, '10.244.3.0/24').reason).toMatch(/goes through the tunnel.*CrossSubnet/);
    expect(route(p, '10.244.1.0/24').reason).toMatch(/block of this node/);
  });

  it('keeps the VXLAN device and its MTU even when every peer is direct', () => {
    const q = planOverlay(
      cluster(
        { vxlanMode: 'CrossSubnet' },
        {
          nodes: [
            nodeRec('node-a', '192.168.10.11/16'),
            nodeRec('node-b', '192.168.10.12/24'),
            nodeRec('node-c', '192.168.20.13/24'),
          ],
        },
      ),
      { ...A, address: cidr('192.168.10.11/16') },
    );
    expect(q.routes.filter((r) => r.kind === 'vxlan')).toEqual([]);
    expect(q.vxlan?.device).toBe('vxlan.tabby');
    expect(q.mtu).toBe(1450);
  });

  it("is one-sided: the local prefix decides, not the peer's", () => {
    // node-c sees both a and b in another subnet
    const q = planOverlay(cluster({ vxlanMode: 'CrossSubnet' }), C);
    expect(lines(q)).toEqual([
      'blackhole 10.244.3.0/24',
      'blackhole 10.244.4.0/24',
      '10.244.1.0/24 via 10.244.1.1 dev vxlan.tabby [vxlan node-a]',
      '10.244.2.0/24 via 10.244.2.1 dev vxlan.tabby [vxlan node-b]',
    ]);
    expect(q.vxlan).toMatchObject({ parent: 'ens5', local: '192.168.20.13', address: '10.244.3.1' });
    // a peer record with a /32 is still inside the local /24
    const nodes = [
      nodeRec('node-a', '192.168.10.11/24'),
      nodeRec('node-b', '192.168.10.12/32'),
      nodeRec('node-c', '192.168.20.13/24'),
    ];
    expect(route(planOverlay(cluster({ vxlanMode: 'CrossSubnet' }, { nodes }), A), '10.244.2.0/24').kind).toBe(
      'direct',
    );
  });

  it('with a /32 node address, nothing is same-subnet (Calico #4254)', () => {
    const q = planOverlay(cluster({ vxlanMode: 'CrossSubnet' }), { ...A, address: cidr('192.168.10.11/32') });
    expect(route(q, '10.244.2.0/24')).toMatchObject({ kind: 'vxlan', via: '10.244.2.1', dev: 'vxlan.tabby' });
    expect(route(q, '10.244.2.0/24').reason).toMatch(/another subnet than 192\.168\.10\.11\/32/);
    expect(q.routes.some((r) => r.kind === 'direct')).toBe(false);
    expect(q.fdb.map((f) => f.peer)).toEqual(['node-b', 'node-c']);
  });
});

describe('planOverlay, Never', () => {
  const p = planOverlay(cluster({}), A);

  it('routes same-subnet peers directly and leaves remote-subnet ones unreachable, saying why', () => {
    expect(lines(p)).toEqual(['blackhole 10.244.1.0/24', '10.244.2.0/24 via 192.168.10.12 dev eth0 [direct node-b]']);
    expect(route(p, '10.244.2.0/24').reason).toMatch(/in this node's subnet.*not encapsulated.*directly/);
    expect(p.unreachable.map((u) => [u.peer, u.block])).toEqual([
      ['node-c', '10.244.3.0/24'],
      ['node-c', '10.244.4.0/24'],
    ]);
    for (const u of p.unreachable) {
      expect(u.reason).toMatch(/node-c \(192\.168\.20\.13\) is in another subnet/);
      expect(u.reason).toMatch(/Never/);
      expect(u.reason).toMatch(/underlay/);
    }
  });

  it('has no tunnel, no FDB, no neighbours, and the host MTU', () => {
    expect(p.vxlan).toBeUndefined();
    expect(p.ipip).toBeUndefined();
    expect(p.fdb).toEqual([]);
    expect(p.neighbours).toEqual([]);
    expect(p.mtu).toBe(1500);
    expect(p.nat.tunnelDevices).toEqual([]);
  });

  it('with a /32 node address, every peer is unreachable', () => {
    const q = planOverlay(cluster({}), { ...A, address: cidr('192.168.10.11/32') });
    expect(q.routes.map(line)).toEqual(['blackhole 10.244.1.0/24']);
    expect(q.unreachable.map((u) => u.block)).toEqual(['10.244.2.0/24', '10.244.3.0/24', '10.244.4.0/24']);
  });
});

describe('planOverlay, IPIP', () => {
  it("Always: every remote block via the peer's node IP on tunl0, no FDB", () => {
    const p = planOverlay(cluster({ ipipMode: 'Always' }), A);
    expect(lines(p)).toEqual([
      'blackhole 10.244.1.0/24',
      '10.244.2.0/24 via 192.168.10.12 dev tunl0 [ipip node-b]',
      '10.244.3.0/24 via 192.168.20.13 dev tunl0 [ipip node-c]',
      '10.244.4.0/24 via 192.168.20.13 dev tunl0 [ipip node-c]',
    ]);
    expect(p.fdb).toEqual([]);
    expect(p.neighbours).toEqual([]);
    expect(p.vxlan).toBeUndefined();
    expect(p.ipip).toEqual({ device: 'tunl0', address: '10.244.1.1', mtu: 1480 });
    expect(p.mtu).toBe(1480);
    expect(p.nat.tunnelDevices).toEqual(['tunl0']);
    expect(route(p, '10.244.2.0/24').reason).toMatch(/pool-a is ipip Always/);
  });

  it('CrossSubnet: same subnet direct on the parent, other subnet on tunl0', () => {
    const p = planOverlay(cluster({ ipipMode: 'CrossSubnet' }), A);
    expect(lines(p)).toEqual([
      'blackhole 10.244.1.0/24',
      '10.244.2.0/24 via 192.168.10.12 dev eth0 [direct node-b]',
      '10.244.3.0/24 via 192.168.20.13 dev tunl0 [ipip node-c]',
      '10.244.4.0/24 via 192.168.20.13 dev tunl0 [ipip node-c]',
    ]);
    expect(route(p, '10.244.3.0/24').reason).toMatch(/another subnet.*tunnel.*ipip CrossSubnet/);
    expect(p.fdb).toEqual([]);
    expect(p.mtu).toBe(1480);
  });

  it('takes the tunnel address from the Node record when given', () => {
    const nodes = [
      nodeRec('node-a', '192.168.10.11/24', { ipv4IPIPTunnelAddr: parseIP('10.244.1.77')! }),
      nodeRec('node-b', '192.168.10.12/24'),
      nodeRec('node-c', '192.168.20.13/24'),
    ];
    expect(planOverlay(cluster({ ipipMode: 'Always' }, { nodes }), A).ipip?.address).toBe('10.244.1.77');
  });
});

describe('planOverlay, MTU with several pools', () => {
  it('takes the largest overhead among encapsulations in use', () => {
    const both = cluster(
      { ipipMode: 'Always' },
      { extraPools: [pool('vx', '10.250.0.0/16', { vxlanMode: 'CrossSubnet' })] },
    );
    const p = planOverlay(both, A);
    expect(p.mtu).toBe(1450);
    expect(p.vxlan?.mtu).toBe(1450);
    expect(p.ipip?.mtu).toBe(1450);
    expect(p.nat.tunnelDevices).toEqual(['vxlan.tabby', 'tunl0']);
  });

  it('ignores disabled pools with nothing routed through them', () => {
    const r = cluster(
      {},
      {
        extraPools: [
          pool('old', '10.9.0.0/16', { vxlanMode: 'Always', disabled: true }),
          pool('old6', 'fd00::/48', { vxlanMode: 'Always', blockSize: 122, disabled: true }),
        ],
      },
    );
    expect(planOverlay(r, A).mtu).toBe(1500);
  });

  it('an IPv6 VXLAN pool in use takes 70 (its overhead) from every tunnel and the pods', () => {
    const r = cluster(
      { vxlanMode: 'CrossSubnet' },
      { extraPools: [pool('v6', 'fd00::/48', { vxlanMode: 'Always', blockSize: 122 })] },
    );
    const p = planOverlay(r, { ...A, address6: cidr('2001:db8:10::11/64'), parent6: 'eth0' });
    expect([p.mtu, p.vxlan?.mtu, p.vxlanV6?.mtu]).toEqual([1430, 1430, 1430]);
    expect(planOverlay({ ...r, pools: [r.pools[0], { ...r.pools[1], vxlanMode: 'Never' }] }, A).mtu).toBe(1450);
  });
});

describe('planOverlay, edge cases', () => {
  it('a peer without an address is unreachable, saying so', () => {
    const nodes = [nodeRec('node-a', '192.168.10.11/24'), nodeRec('node-b', '192.168.10.12/24'), nodeRec('node-c')];
    const p = planOverlay(cluster({ vxlanMode: 'Always' }, { nodes }), A);
    expect(p.routes.filter((r) => r.peer === 'node-c')).toEqual([]);
    expect(p.unreachable).toEqual([
      { peer: 'node-c', block: '10.244.3.0/24', reason: expect.stringMatching(/node node-c has no IPv4 address/) },
      { peer: 'node-c', block: '10.244.4.0/24', reason: expect.stringMatching(/node node-c has no IPv4 address/) },
    ]);
    expect(p.fdb.map((f) => f.peer)).toEqual(['node-b']);
  });

  it('a peer with blocks but no Node record is unreachable too', () => {
    const nodes = [nodeRec('node-a', '192.168.10.11/24'), nodeRec('node-b', '192.168.10.12/24')];
    const p = planOverlay(cluster({ vxlanMode: 'Always' }, { nodes }), A);
    expect(p.unreachable.map((u) => u.peer)).toEqual(['node-c', 'node-c']);
  });

  it("a disabled pool's blocks are still routed (existing pods keep working)", () => {
    const r = cluster({ vxlanMode: 'Always', disabled: true });
    const p = planOverlay(r, A);
    expect(lines(p)).toEqual([
      'blackhole 10.244.1.0/24',
      '10.244.2.0/24 via 10.244.2.1 dev vxlan.tabby [vxlan node-b]',
      '10.244.3.0/24 via 10.244.3.1 dev vxlan.tabby [vxlan node-c]',
      '10.244.4.0/24 via 10.244.3.1 dev vxlan.tabby [vxlan node-c]',
    ]);
    expect(p.vxlan?.device).toBe('vxlan.tabby');
    expect(p.mtu).toBe(1450);
    const q = planOverlay(cluster({ ipipMode: 'CrossSubnet', disabled: true }), A);
    expect(lines(q)).toContain('10.244.3.0/24 via 192.168.20.13 dev tunl0 [ipip node-c]');
    expect(q.ipip?.device).toBe('tunl0');
  });

  it('IPv6 blocks on a node without an IPv6 address: unreachable, saying why', () => {
    const r = cluster(
      { vxlanMode: 'Always' },
      { extraPools: [pool('v6', 'fd00::/48', { blockSize: 122 })], extraBlocks: [aff('node-b', 'fd00::40/122')] },
    );
    const p = planOverlay(r, A);
    expect(p.unreachable).toEqual([
      {
        peer: 'node-b',
        block: 'fd00::40/122',
        reason: 'this node (node-a) has no IPv6 address (no spec.bgp.ipv6Address, none autodetected)',
      },
    ]);
  });

  it('a node with no block in a VXLAN pool gets a warning and an address-less device', () => {
    const r = cluster({ vxlanMode: 'Always' });
    r.affinities = r.affinities.filter((a) => a.node !== 'node-a');
    const p = planOverlay(r, A);
    expect(p.vxlan?.address).toBeUndefined();
    expect(p.warnings).toEqual([expect.stringMatching(/node-a has no block in a VXLAN pool/)]);
    expect(p.routes.some((x) => x.kind === 'blackhole')).toBe(false);
  });

  it('a node absent from the file plans the routes to every peer', () => {
    const p = planOverlay(cluster({ vxlanMode: 'Always' }), { ...A, name: 'node-z' });
    expect(p.routes.filter((r) => r.kind === 'vxlan').map((r) => r.peer)).toEqual([
      'node-a',
      'node-b',
      'node-c',
      'node-c',
    ]);
    expect(p.vxlan?.mac).toBe(vtepMacFor('node-z'));
  });
});

describe('planOverlay, NAT sets', () => {
  it('lists all pools, disabled and IPv6 ones included, and only natOutgoing pools as NAT pools', () => {
    const r = cluster(
      { vxlanMode: 'Always' },
      {
        extraPools: [
          pool('no-nat', '10.250.0.0/16'),
          pool('old', '172.16.0.0/12', { disabled: true }),
          pool('old-nat', '10.9.0.0/16', { disabled: true, natOutgoing: true }),
          pool('v6', 'fd00::/48', { blockSize: 122, natOutgoing: true }),
        ],
      },
    );
    const p = planOverlay(r, A);
    expect(p.nat.allPools).toEqual(['10.244.0.0/16', '10.250.0.0/16', '172.16.0.0/12', '10.9.0.0/16', 'fd00::/48']);
    expect(p.nat.natPools).toEqual(['10.244.0.0/16', '10.9.0.0/16', 'fd00::/48']);
    expect(p.nat.tunnelDevices).toEqual(['vxlan.tabby']);
  });

  it('has no NAT pools when no pool sets natOutgoing', () => {
    const p = planOverlay(cluster({ natOutgoing: false }), A);
    expect(p.nat).toEqual({ allPools: ['10.244.0.0/16'], natPools: [], tunnelDevices: [] });
  });
});

/**
 * IPv6 over an IPv6 underlay: a and b on 2001:db8:10::/64, c on 2001:db8:20::/64; one /122 block each of
 * fd00:10::/48, c has two. `v4` adds the IPv4 cluster of the tests above (dual stack).
 */
function cluster6(p: Partial<IPPool>, o: { v4?: Partial<IPPool>; nodes?: NodeRecord[] } = {}): ClusterResources {
  const v6: IPPool = pool('pool-6', 'fd00:10::/48', { blockSize: 122, natOutgoing: true, ...p });
  const base = o.v4 ? cluster(o.v4) : { pools: [], nodes: [], affinities: [] };
  const nodes =
    o.nodes ??
    (
      [
        ['node-a', '192.168.10.11/24', '2001:db8:10::11/64'],
        ['node-b', '192.168.10.12/24', '2001:db8:10::12/64'],
        ['node-c', '192.168.20.13/24', '2001:db8:20::13/64'],
      ] as const
    ).map(([n, a4, a6]) => nodeRec(n, o.v4 ? a4 : undefined, { ipv6Address: cidr(a6) }));
  return {
    pools: [...base.pools, v6],
    nodes,
    affinities: [
      ...base.affinities,
      aff('node-c', 'fd00:10::c0/122'),
      aff('node-a', 'fd00:10::/122'),
      aff('node-b', 'fd00:10::40/122'),
      aff('node-c', 'fd00:10::80/122'),
    ],
  };
}
/** node-a of a pure IPv6 cluster: no IPv4 address at all. */
const A6: LocalNode = {
  name: 'node-a',
  parent: 'eth0',
  address6: cidr('2001:db8:10::11/64'),
  parent6: 'eth0',
  hostMtu: 1500,
};
const macV6 = (n: string) => vtepMacFor(`${n}-v6`);

describe('planOverlay, IPv6 VXLAN Always (pure IPv6)', () => {
  const p = planOverlay(cluster6({ vxlanMode: 'Always' }), A6);

  it("routes every remote v6 block via the peer's v6 tunnel address on vxlan-v6.tabby, onlink, and blackholes its own", () => {
    expect(lines(p)).toEqual([
      'blackhole fd00:10::/122',
      'fd00:10::40/122 via fd00:10::41 dev vxlan-v6.tabby [vxlan node-b]',
      'fd00:10::80/122 via fd00:10::81 dev vxlan-v6.tabby [vxlan node-c]',
      'fd00:10::c0/122 via fd00:10::81 dev vxlan-v6.tabby [vxlan node-c]',
    ]);
    expect(p.unreachable).toEqual([]);
    expect(p.warnings).toEqual([]);
  });

  it('has one permanent FDB entry (at the v6 node address) and one neighbour per peer, MAC 66 + sha1(name-v6)', () => {
    expect(macV6('remotehostname')).toBe('66:a0:68:c9:4c:79'); // Felix's test vector
    expect(p.fdbV6).toEqual([
      { mac: macV6('node-b'), dst: '2001:db8:10::12', peer: 'node-b' },
      { mac: macV6('node-c'), dst: '2001:db8:20::13', peer: 'node-c' },
    ]);
    expect(p.neighboursV6).toEqual([
      { ip: 'fd00:10::41', mac: macV6('node-b'), peer: 'node-b' },
      { ip: 'fd00:10::81', mac: macV6('node-c'), peer: 'node-c' },
    ]);
    expect([p.fdb, p.neighbours]).toEqual([[], []]);
  });

  it('describes vxlan-v6.tabby: local = v6 node address, its own MAC and tunnel address, MTU host - 70; no v4 device', () => {
    expect(p.vxlanV6).toEqual({
      device: 'vxlan-v6.tabby',
      vni: 4096,
      port: 4789,
      parent: 'eth0',
      local: '2001:db8:10::11',
      mac: macV6('node-a'),
      address: 'fd00:10::1',
      mtu: 1430,
    });
    expect(p.mtu).toBe(1430);
    expect(p.vxlan).toBeUndefined();
    expect(p.nat.tunnelDevices).toEqual(['vxlan-v6.tabby']);
    expect(p.node).toEqual({ name: 'node-a', parent: 'eth0', address6: '2001:db8:10::11/64', parent6: 'eth0' });
  });

  it('uses the v6 MAC and tunnel address of a Node record when given', () => {
    const nodes = cluster6({}).nodes.map((n) =>
      n.name === 'node-b'
        ? { ...n, vxlanTunnelMACAddrV6: '66:00:00:00:06:0b', ipv6VXLANTunnelAddr: parseIP('fd00:10::77')! }
        : n,
    );
    const q = planOverlay(cluster6({ vxlanMode: 'Always' }, { nodes }), A6);
    expect(route(q, 'fd00:10::40/122').via).toBe('fd00:10::77');
    expect(q.fdbV6[0]).toEqual({ mac: '66:00:00:00:06:0b', dst: '2001:db8:10::12', peer: 'node-b' });
    expect(q.neighboursV6[0]).toEqual({ ip: 'fd00:10::77', mac: '66:00:00:00:06:0b', peer: 'node-b' });
  });
});

describe('planOverlay, IPv6 VXLAN CrossSubnet', () => {
  it('with a /64 node address: same-subnet peer direct on the parent, other subnet through vxlan-v6.tabby', () => {
    const p = planOverlay(cluster6({ vxlanMode: 'CrossSubnet' }), A6);
    expect(lines(p)).toEqual([
      'blackhole fd00:10::/122',
      'fd00:10::40/122 via 2001:db8:10::12 dev eth0 [direct node-b]',
      'fd00:10::80/122 via fd00:10::81 dev vxlan-v6.tabby [vxlan node-c]',
      'fd00:10::c0/122 via fd00:10::81 dev vxlan-v6.tabby [vxlan node-c]',
    ]);
    expect(route(p, 'fd00:10::40/122').reason).toMatch(
      /node-b \(2001:db8:10::12\) is in this node's subnet 2001:db8:10::11\/64/,
    );
    expect(route(p, 'fd00:10::80/122').reason).toMatch(
      /another subnet than 2001:db8:10::11\/64, so it goes through the tunnel/,
    );
    expect(p.fdbV6.map((f) => f.peer)).toEqual(['node-c']);
    expect(p.neighboursV6.map((f) => f.peer)).toEqual(['node-c']);
    expect(p.mtu).toBe(1430);
  });

  it('with a /128 node address, nothing is the same subnet: every peer through the tunnel', () => {
    const p = planOverlay(cluster6({ vxlanMode: 'CrossSubnet' }), { ...A6, address6: cidr('2001:db8:10::11/128') });
    expect(p.routes.filter((r) => r.kind === 'vxlan').map((r) => r.peer)).toEqual(['node-b', 'node-c', 'node-c']);
    expect(route(p, 'fd00:10::40/122').reason).toMatch(/another subnet than 2001:db8:10::11\/128/);
    expect(p.fdbV6.map((f) => f.peer)).toEqual(['node-b', 'node-c']);
  });

  it('a pure IPv6 cluster still installs routes (Calico #9403: the v4 check made everything same-subnet)', () => {
    const p = planOverlay(cluster6({ vxlanMode: 'CrossSubnet' }), A6);
    expect(p.routes.some((r) => r.kind === 'vxlan')).toBe(true);
  });
});

describe('planOverlay, IPv6 Never', () => {
  it('routes same-subnet v6 peers directly, other subnets are unreachable; no device, host MTU', () => {
    const p = planOverlay(cluster6({}), A6);
    expect(lines(p)).toEqual([
      'blackhole fd00:10::/122',
      'fd00:10::40/122 via 2001:db8:10::12 dev eth0 [direct node-b]',
    ]);
    expect(p.unreachable.map((u) => u.block)).toEqual(['fd00:10::80/122', 'fd00:10::c0/122']);
    expect(p.unreachable[0].reason).toMatch(/node-c \(2001:db8:20::13\) is in another subnet.*Never/);
    expect(p.vxlanV6).toBeUndefined();
    expect([p.mtu, p.fdbV6, p.neighboursV6, p.nat.tunnelDevices]).toEqual([1500, [], [], []]);
  });
});

describe('planOverlay, dual stack', () => {
  const local: LocalNode = { ...A, address6: cidr('2001:db8:10::11/64'), parent6: 'eth0' };
  const p = planOverlay(cluster6({ vxlanMode: 'CrossSubnet' }, { v4: { vxlanMode: 'CrossSubnet' } }), local);

  it('carries v4 blocks over the v4 underlay and v6 blocks over the v6 one, each with its own device', () => {
    expect(lines(p)).toEqual([
      'blackhole 10.244.1.0/24',
      'blackhole fd00:10::/122',
      '10.244.2.0/24 via 192.168.10.12 dev eth0 [direct node-b]',
      'fd00:10::40/122 via 2001:db8:10::12 dev eth0 [direct node-b]',
      '10.244.3.0/24 via 10.244.3.1 dev vxlan.tabby [vxlan node-c]',
      '10.244.4.0/24 via 10.244.3.1 dev vxlan.tabby [vxlan node-c]',
      'fd00:10::80/122 via fd00:10::81 dev vxlan-v6.tabby [vxlan node-c]',
      'fd00:10::c0/122 via fd00:10::81 dev vxlan-v6.tabby [vxlan node-c]',
    ]);
    expect(p.fdb).toEqual([{ mac: vtepMacFor('node-c'), dst: '192.168.20.13', peer: 'node-c' }]);
    expect(p.fdbV6).toEqual([{ mac: macV6('node-c'), dst: '2001:db8:20::13', peer: 'node-c' }]);
    expect(p.vxlan).toMatchObject({ local: '192.168.10.11', address: '10.244.1.1', mtu: 1430 });
    expect(p.vxlanV6).toMatchObject({ local: '2001:db8:10::11', address: 'fd00:10::1', mtu: 1430 });
    expect(p.nat.tunnelDevices).toEqual(['vxlan.tabby', 'vxlan-v6.tabby']);
    expect(p.node).toEqual({
      name: 'node-a',
      address: '192.168.10.11/24',
      parent: 'eth0',
      address6: '2001:db8:10::11/64',
      parent6: 'eth0',
    });
  });

  it('a node without an IPv6 address keeps IPv4 working, and says why IPv6 is not carried', () => {
    const q = planOverlay(cluster6({ vxlanMode: 'Always' }, { v4: { vxlanMode: 'Always' } }), A);
    expect(q.vxlan?.device).toBe('vxlan.tabby');
    expect(q.vxlanV6).toBeUndefined();
    expect(q.routes.filter((r) => r.kind === 'vxlan').every((r) => r.dev === 'vxlan.tabby')).toBe(true);
    expect(q.unreachable.map((u) => u.block)).toEqual(['fd00:10::40/122', 'fd00:10::80/122', 'fd00:10::c0/122']);
    expect(q.warnings).toEqual([expect.stringMatching(/node-a has no IPv6 address.*vxlan-v6\.tabby is not created/)]);
  });

  it('a peer without an IPv6 address: its v6 blocks are unreachable, its v4 ones routed', () => {
    const r = cluster6({ vxlanMode: 'Always' }, { v4: { vxlanMode: 'Always' } });
    r.nodes = r.nodes.map((n) => (n.name === 'node-b' ? { ...n, ipv6Address: undefined } : n));
    const q = planOverlay(r, local);
    expect(q.unreachable).toEqual([
      { peer: 'node-b', block: 'fd00:10::40/122', reason: expect.stringMatching(/node node-b has no IPv6 address/) },
    ]);
    expect(route(q, '10.244.2.0/24').kind).toBe('vxlan');
    expect(q.fdbV6.map((f) => f.peer)).toEqual(['node-c']);
  });
});
