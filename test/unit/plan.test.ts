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

  it('ignores disabled and IPv6 pools with nothing routed through them', () => {
    const r = cluster(
      {},
      {
        extraPools: [
          pool('old', '10.9.0.0/16', { vxlanMode: 'Always', disabled: true }),
          pool('v6', 'fd00::/48', { vxlanMode: 'Always', blockSize: 122 }),
        ],
      },
    );
    expect(planOverlay(r, A).mtu).toBe(1500);
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

  it('IPv6 blocks are not tunnelled: unreachable, saying why', () => {
    const r = cluster(
      { vxlanMode: 'Always' },
      { extraPools: [pool('v6', 'fd00::/48', { blockSize: 122 })], extraBlocks: [aff('node-b', 'fd00::40/122')] },
    );
    const p = planOverlay(r, A);
    expect(p.unreachable).toEqual([{ peer: 'node-b', block: 'fd00::40/122', reason: expect.stringMatching(/IPv6/) }]);
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
