import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClusterFileError, ClusterResources, parseClusterText, resourcesFromDocuments } from '../../conf/calico';
import { CniError } from '../../lib/cni/errors';
import { formatCidr, formatIP } from '../../lib/net/addr';

/** The example manifests of the seeds (002_*.txt and 000_*.txt), verbatim: each must parse as it is. */
const SEED_POOLS: [string, string][] = [
  [
    'ippool-cross-subnet-1',
    `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: ippool-cross-subnet-1
spec:
  cidr: 192.168.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
`,
  ],
  [
    'ippool-ipip-1',
    `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: ippool-ipip-1
spec:
  cidr: 192.168.0.0/16
  ipipMode: Always
  natOutgoing: true
`,
  ],
  [
    'ippool-cross-subnet-1',
    `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: ippool-cross-subnet-1
spec:
  cidr: 192.168.0.0/16
  vxlanMode: CrossSubnet
  natOutgoing: true
`,
  ],
  [
    'ippool-vxlan-1',
    `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: ippool-vxlan-1
spec:
  cidr: 192.168.0.0/16
  vxlanMode: Always
  natOutgoing: true
`,
  ],
  [
    'ipip-nat-outgoing',
    `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: ipip-nat-outgoing
spec:
  cidr: 10.1.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
  disabled: false
  nodeSelector: all()
`,
  ],
  [
    'ippool-vxlan-cross-subnet-1',
    `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: ippool-vxlan-cross-subnet-1
spec:
  cidr: 192.168.0.0/16
  vxlanMode: CrossSubnet
  natOutgoing: true
`,
  ],
];

const SEEDS_DIR = '/work/shared/seeds';

/** Every fenced block of a seed that holds `kind: IPPool`. */
function seedBlocks(): string[] {
  if (!fs.existsSync(SEEDS_DIR)) return [];
  return fs
    .readdirSync(SEEDS_DIR)
    .filter((f) => /^00[02]_.*\.txt$/.test(f))
    .flatMap((f) =>
      fs
        .readFileSync(path.join(SEEDS_DIR, f), 'utf8')
        .split(/^```[a-z]*\s*$/m)
        .filter((_, i) => i % 2 === 1),
    )
    .filter((b) => /^kind: IPPool$/m.test(b));
}

/** One YAML document per resource, from JSON-ish objects (YAML is a superset of JSON). */
const doc = (kind: string, name: string, spec: Record<string, unknown>): Record<string, unknown> => ({
  apiVersion: 'projectcalico.org/v3',
  kind,
  metadata: { name },
  spec,
});
const yaml = (...docs: Record<string, unknown>[]): string => docs.map((d) => JSON.stringify(d)).join('\n---\n');
const pool = (name: string, spec: Record<string, unknown>) => doc('IPPool', name, spec);
const node = (name: string, spec: Record<string, unknown>) => doc('Node', name, spec);
const aff = (name: string, nodeName: string, cidr: string) => doc('BlockAffinity', name, { node: nodeName, cidr });

const parse = (...docs: Record<string, unknown>[]): Promise<ClusterResources> => parseClusterText(yaml(...docs));

/** Expects the documents to be rejected with a ClusterFileError (code 7) whose message matches every pattern. */
async function rejects(text: string, ...patterns: (RegExp | string)[]): Promise<string> {
  const err = await parseClusterText(text).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the cluster file to be rejected').toBeInstanceOf(ClusterFileError);
  expect(err).toBeInstanceOf(CniError);
  expect((err as CniError).code).toBe(7);
  const msg = (err as Error).message;
  expect(msg.startsWith('cluster file: ')).toBe(true);
  for (const p of patterns) expect(msg).toMatch(p);
  return msg;
}
const rejectsDocs = (docs: Record<string, unknown>[], ...patterns: (RegExp | string)[]) =>
  rejects(yaml(...docs), ...patterns);

describe("the seeds' IPPool manifests", () => {
  it.each(SEED_POOLS)('%s parses as it is', async (name, text) => {
    const r = await parseClusterText(text);
    expect(r.pools).toHaveLength(1);
    expect(r.pools[0].name).toBe(name);
    expect(r.pools[0].natOutgoing).toBe(true);
    expect(r.nodes).toEqual([]);
    expect(r.affinities).toEqual([]);
  });

  it('reads the modes the manifests set', async () => {
    const modes = await Promise.all(
      SEED_POOLS.map(async ([, t]) => {
        const p = (await parseClusterText(t)).pools[0];
        return [formatCidr(p.cidr), p.vxlanMode, p.ipipMode];
      }),
    );
    expect(modes).toEqual([
      ['192.168.0.0/16', 'Never', 'CrossSubnet'],
      ['192.168.0.0/16', 'Never', 'Always'],
      ['192.168.0.0/16', 'CrossSubnet', 'Never'],
      ['192.168.0.0/16', 'Always', 'Never'],
      ['10.1.0.0/16', 'Never', 'CrossSubnet'],
      ['192.168.0.0/16', 'CrossSubnet', 'Never'],
    ]);
  });

  it.skipIf(!fs.existsSync(SEEDS_DIR))(
    'every IPPool block in the seed files is one of the above and parses',
    async () => {
      const blocks = seedBlocks();
      expect(blocks).toHaveLength(SEED_POOLS.length);
      for (const b of blocks) {
        expect(SEED_POOLS.map(([, t]) => t.trim())).toContain(b.trim());
        expect((await parseClusterText(b)).pools).toHaveLength(1);
      }
    },
  );
});

describe('IPPool defaults', () => {
  it("fills in Calico's defaults for an IPv4 pool", async () => {
    const [p] = (await parse(pool('p4', { cidr: '10.244.0.0/16' }))).pools;
    expect(p).toMatchObject({
      name: 'p4',
      blockSize: 26,
      vxlanMode: 'Never',
      ipipMode: 'Never',
      natOutgoing: false,
      disabled: false,
      disableBGPExport: false,
      nodeSelector: 'all()',
      allowedUses: ['Workload', 'Tunnel'],
      assignmentMode: 'Automatic',
    });
    expect(formatCidr(p.cidr)).toBe('10.244.0.0/16');
  });

  it("defaults an IPv6 pool's blockSize to 122", async () => {
    const [p] = (await parse(pool('p6', { cidr: 'fd00:10::/48' }))).pools;
    expect(p.blockSize).toBe(122);
    expect(p.vxlanMode).toBe('Never');
    expect(p.ipipMode).toBe('Never');
    expect(p.allowedUses).toEqual(['Workload', 'Tunnel']);
  });

  it('keeps what is set', async () => {
    const [p] = (
      await parse(
        pool('p', {
          cidr: '10.0.0.0/8',
          blockSize: 24,
          vxlanMode: 'Always',
          natOutgoing: true,
          disabled: true,
          disableBGPExport: true,
          nodeSelector: 'zone == "a"',
          allowedUses: ['Workload'],
          assignmentMode: 'Manual',
        }),
      )
    ).pools;
    expect(p).toMatchObject({
      blockSize: 24,
      vxlanMode: 'Always',
      ipipMode: 'Never',
      natOutgoing: true,
      disabled: true,
      disableBGPExport: true,
      nodeSelector: 'zone == "a"',
      allowedUses: ['Workload'],
      assignmentMode: 'Manual',
    });
  });

  it('accepts the edges of the blockSize ranges tabby can allocate from', async () => {
    for (const [cidr, bs] of [
      ['10.0.0.0/16', 20],
      ['10.0.0.0/16', 30],
      ['fd00::/64', 116],
      ['fd00::/64', 126],
    ] as const) {
      expect((await parse(pool('p', { cidr, blockSize: bs }))).pools[0].blockSize).toBe(bs);
    }
  });

  it("refuses /31 and /32 blocks (Calico allows them; they leave no room in tabby's IPAM)", async () => {
    for (const [cidr, bs] of [
      ['10.0.0.0/16', 31],
      ['10.0.0.0/16', 32],
      ['fd00::/64', 127],
      ['fd00::/64', 128],
    ] as const) {
      await expect(parse(pool('p', { cidr, blockSize: bs }))).rejects.toThrow(/spec\.blockSize: .*leaves no room/);
    }
  });

  it('treats empty values as unset, as Calico does', async () => {
    const r = await parse(
      pool('p', { cidr: '10.0.0.0/16', vxlanMode: '', ipipMode: '', blockSize: 0, nodeSelector: '', allowedUses: [] }),
    );
    expect(r.pools[0]).toMatchObject({
      vxlanMode: 'Never',
      ipipMode: 'Never',
      blockSize: 26,
      nodeSelector: 'all()',
      allowedUses: ['Workload', 'Tunnel'],
    });
  });
});

describe('IPPool rejections name the document, the resource and the field', () => {
  const second = (spec: Record<string, unknown>) => [pool('ok', { cidr: '10.1.0.0/16' }), pool('bad', spec)];

  it.each([
    [
      'both modes not Never',
      { cidr: '10.2.0.0/16', vxlanMode: 'Always', ipipMode: 'CrossSubnet' },
      'spec.ipipMode',
      /choose one encapsulation/,
    ],
    [
      'both modes Always',
      { cidr: '10.2.0.0/16', vxlanMode: 'Always', ipipMode: 'Always' },
      'spec.ipipMode',
      /vxlanMode is Always/,
    ],
    ['IPIP on IPv6', { cidr: 'fd00::/48', ipipMode: 'Always' }, 'spec.ipipMode', /IPv6/],
    ['IPIP CrossSubnet on IPv6', { cidr: 'fd00::/48', ipipMode: 'CrossSubnet' }, 'spec.ipipMode', /IPv6/],
    ['blockSize 19 (v4)', { cidr: '10.2.0.0/16', blockSize: 19 }, 'spec.blockSize', /between 20 and 30/],
    ['blockSize 33 (v4)', { cidr: '10.2.0.0/16', blockSize: 33 }, 'spec.blockSize', /between 20 and 30.*33/],
    ['blockSize 115 (v6)', { cidr: 'fd00::/48', blockSize: 115 }, 'spec.blockSize', /between 116 and 126/],
    ['blockSize 129 (v6)', { cidr: 'fd00::/48', blockSize: 129 }, 'spec.blockSize', /between 116 and 126/],
    ['blockSize 26 on a v6 pool', { cidr: 'fd00::/48', blockSize: 26 }, 'spec.blockSize', /IPv6/],
    ['blockSize not an integer', { cidr: '10.2.0.0/16', blockSize: '26' }, 'spec.blockSize', /integer/],
    [
      'prefix longer than blockSize',
      { cidr: '10.2.0.0/27', blockSize: 26 },
      'spec.cidr',
      /\/27 is longer than the blockSize 26/,
    ],
    ['v6 prefix longer than blockSize', { cidr: 'fd00::/124' }, 'spec.cidr', /\/124 is longer than the blockSize 122/],
    ['host bits set', { cidr: '10.2.3.0/16' }, 'spec.cidr', /host bits.*10\.2\.0\.0\/16/],
    ['v6 host bits set', { cidr: 'fd00::1/64' }, 'spec.cidr', /host bits/],
    ['overlap with 169.254.0.0/16', { cidr: '169.254.0.0/24' }, 'spec.cidr', /169\.254\.0\.0\/16/],
    ['containing 169.254.0.0/16', { cidr: '168.0.0.0/6' }, 'spec.cidr', /169\.254\.0\.0\/16/],
    ['overlap with fe80::/10', { cidr: 'fe80::/64' }, 'spec.cidr', /fe80::\/10/],
    ['unknown spec field', { cidr: '10.2.0.0/16', vxlan: 'Always' }, 'spec.vxlan', /unknown field/],
    ['misspelt natOutgoing', { cidr: '10.2.0.0/16', natOutGoing: true }, 'spec.natOutGoing', /unknown field/],
    ['a bad mode', { cidr: '10.2.0.0/16', vxlanMode: 'always' }, 'spec.vxlanMode', /Never, Always, CrossSubnet/],
    ['natOutgoing not a boolean', { cidr: '10.2.0.0/16', natOutgoing: 'yes' }, 'spec.natOutgoing', /true or false/],
    ['cidr missing', {}, 'spec.cidr', /required/],
    ['cidr not a CIDR', { cidr: '10.2.0.0' }, 'spec.cidr', /not a CIDR/],
    [
      'an unknown allowedUse',
      { cidr: '10.2.0.0/16', allowedUses: ['Pods'] },
      'spec.allowedUses',
      /Workload, Tunnel, LoadBalancer/,
    ],
    [
      'a bad assignmentMode',
      { cidr: '10.2.0.0/16', assignmentMode: 'Auto' },
      'spec.assignmentMode',
      /Automatic or Manual/,
    ],
    ['the APIv1 ipip field', { cidr: '10.2.0.0/16', ipip: { enabled: true, mode: 'always' } }, 'spec.ipip', /ipipMode/],
    ['the APIv1 nat-outgoing field', { cidr: '10.2.0.0/16', 'nat-outgoing': true }, 'spec.nat-outgoing', /natOutgoing/],
  ])('%s', async (_what, spec, field, problem) => {
    const msg = await rejectsDocs(second(spec), 'document 2', 'IPPool bad', field, problem);
    expect(msg).not.toMatch('document 1');
  });

  it('lets the APIv1 fields through when unset (null, false)', async () => {
    const [p] = (await parse(pool('v1', { cidr: '10.2.0.0/16', ipip: null, 'nat-outgoing': false }))).pools;
    expect(p.natOutgoing).toBe(false);
    expect(p.ipipMode).toBe('Never');
  });

  it('allows a prefix longer than blockSize on a disabled pool', async () => {
    const [p] = (await parse(pool('d', { cidr: '10.2.0.0/28', disabled: true }))).pools;
    expect(p.disabled).toBe(true);
    expect(p.blockSize).toBe(26);
  });

  it('rejects overlapping pools, naming both', async () => {
    await rejectsDocs(
      [pool('a', { cidr: '10.0.0.0/16' }), pool('b', { cidr: '10.0.128.0/17' })],
      'IPPool b',
      'spec.cidr',
      /overlaps IPPool a \(10\.0\.0\.0\/16\)/,
      'document 2',
    );
    await rejectsDocs(
      [pool('a', { cidr: 'fd00::/48' }), pool('b', { cidr: 'fd00::/32' })],
      'IPPool b',
      /overlaps IPPool a/,
    );
  });

  it('accepts pools side by side, of both families', async () => {
    const r = await parse(
      pool('a', { cidr: '10.0.0.0/16' }),
      pool('b', { cidr: '10.1.0.0/16' }),
      pool('c', { cidr: 'fd00::/48' }),
    );
    expect(r.pools.map((p) => p.name)).toEqual(['a', 'b', 'c']);
  });

  it('rejects a bad apiVersion, naming the document and the field', async () => {
    await rejects(
      yaml(pool('a', { cidr: '10.0.0.0/16' }), {
        ...pool('b', { cidr: '10.1.0.0/16' }),
        apiVersion: 'crd.projectcalico.org/v1',
      }),
      'document 2',
      'apiVersion',
      /projectcalico\.org\/v3/,
      'crd.projectcalico.org/v1',
    );
    await rejects(
      yaml({ kind: 'IPPool', metadata: { name: 'x' }, spec: { cidr: '10.0.0.0/16' } }),
      'document 1',
      'apiVersion',
    );
  });

  it('rejects an unknown kind, naming it', async () => {
    await rejects(
      yaml(pool('a', { cidr: '10.0.0.0/16' }), doc('NetworkPolicy', 'np', {})),
      'document 2',
      'kind',
      'NetworkPolicy',
    );
  });

  it('requires metadata.name', async () => {
    await rejects(
      yaml({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', spec: { cidr: '10.0.0.0/16' } }),
      'document 1',
      'metadata.name',
      /required/,
    );
  });

  it('rejects a document that is not a mapping', async () => {
    await rejects('- a\n- b\n', 'document 1', /mapping/);
  });

  it('rejects a spec that is not a mapping', async () => {
    await rejects(yaml({ ...pool('a', {}), spec: 'x' }), 'document 1', 'IPPool a', 'spec', /mapping/);
  });

  it('rejects duplicate names of one kind, naming the kind, the name and the document', async () => {
    await rejectsDocs(
      [pool('a', { cidr: '10.0.0.0/16' }), pool('a', { cidr: '10.1.0.0/16' })],
      'IPPool a',
      'metadata.name',
      /defined twice/,
      'document 2',
    );
    await rejectsDocs([node('n', {}), node('n', {})], 'Node n', /defined twice/, 'document 2');
  });

  it('allows one name across kinds', async () => {
    const r = await parse(
      pool('x', { cidr: '10.0.0.0/16', blockSize: 24 }),
      node('x', {}),
      aff('x', 'x', '10.0.1.0/24'),
    );
    expect([r.pools.length, r.nodes.length, r.affinities.length]).toEqual([1, 1, 1]);
  });
});

describe('BlockAffinity', () => {
  const base = [pool('pa', { cidr: '10.244.0.0/16', blockSize: 24 }), node('node-a', {}), node('node-b', {})];

  it('reads node and cidr', async () => {
    const r = await parse(...base, aff('a1', 'node-a', '10.244.1.0/24'), aff('b1', 'node-b', '10.244.2.0/24'));
    expect(r.affinities.map((a) => [a.name, a.node, formatCidr(a.cidr)])).toEqual([
      ['a1', 'node-a', '10.244.1.0/24'],
      ['b1', 'node-b', '10.244.2.0/24'],
    ]);
  });

  it('rejects a block outside every pool', async () => {
    await rejectsDocs(
      [...base, aff('a1', 'node-a', '10.99.1.0/24')],
      'BlockAffinity a1',
      'spec.cidr',
      /10\.99\.1\.0\/24 is in no IPPool/,
      'document 4',
    );
  });

  it('rejects a block of the wrong size', async () => {
    await rejectsDocs(
      [...base, aff('a1', 'node-a', '10.244.1.0/26')],
      'BlockAffinity a1',
      'spec.cidr',
      /not a \/24 block of IPPool pa/,
      'document 4',
    );
    await rejectsDocs([...base, aff('a1', 'node-a', '10.244.0.0/23')], 'BlockAffinity a1', /not a \/24 block/);
  });

  it('rejects overlapping blocks, naming the node that holds it', async () => {
    await rejectsDocs(
      [...base, aff('a1', 'node-a', '10.244.1.0/24'), aff('b1', 'node-b', '10.244.1.0/24')],
      'BlockAffinity b1',
      'spec.cidr',
      /already affine to node node-a \(BlockAffinity a1\)/,
      'document 5',
    );
  });

  it('rejects host bits, a missing node and a missing cidr', async () => {
    await rejectsDocs(
      [...base, aff('a1', 'node-a', '10.244.1.1/24')],
      'document 4',
      'BlockAffinity a1',
      'spec.cidr',
      /host bits/,
    );
    await rejectsDocs(
      [...base, doc('BlockAffinity', 'a1', { cidr: '10.244.1.0/24' })],
      'document 4',
      'BlockAffinity a1',
      'spec.node',
      /required/,
    );
    await rejectsDocs(
      [...base, doc('BlockAffinity', 'a1', { node: 'node-a' })],
      'document 4',
      'BlockAffinity a1',
      'spec.cidr',
      /required/,
    );
  });

  it('accepts a block in a disabled pool', async () => {
    const r = await parse(
      pool('old', { cidr: '10.9.0.0/16', blockSize: 24, disabled: true }),
      aff('o1', 'node-a', '10.9.3.0/24'),
    );
    expect(r.affinities).toHaveLength(1);
  });
});

describe('Node', () => {
  it('reads the BGP address with its prefix, the tunnel addresses and the MAC', async () => {
    const [n] = (
      await parse(
        node('node-a', {
          bgp: { ipv4Address: '192.168.10.11/24', ipv6Address: 'fd00:1::11/64', ipv4IPIPTunnelAddr: '10.244.1.1' },
          ipv4VXLANTunnelAddr: '10.244.1.1',
          vxlanTunnelMACAddr: '66:AA:bb:cc:dd:ee',
        }),
      )
    ).nodes;
    expect(n.name).toBe('node-a');
    expect(formatCidr(n.ipv4Address!)).toBe('192.168.10.11/24');
    expect(formatCidr(n.ipv6Address!)).toBe('fd00:1::11/64');
    expect(formatIP(n.ipv4VXLANTunnelAddr!)).toBe('10.244.1.1');
    expect(formatIP(n.ipv4IPIPTunnelAddr!)).toBe('10.244.1.1');
    expect(n.vxlanTunnelMACAddr).toBe('66:aa:bb:cc:dd:ee');
  });

  it('reads the IPv6 VTEP: ipv6VXLANTunnelAddr and vxlanTunnelMACAddrV6', async () => {
    const [n] = (
      await parse(
        node('node-a', {
          bgp: { ipv6Address: '2001:db8:10::11/64' },
          ipv6VXLANTunnelAddr: 'fd00:10::1',
          vxlanTunnelMACAddrV6: '66:A0:68:c9:4c:79',
        }),
      )
    ).nodes;
    expect(formatCidr(n.ipv6Address!)).toBe('2001:db8:10::11/64');
    expect(formatIP(n.ipv6VXLANTunnelAddr!)).toBe('fd00:10::1');
    expect(n.vxlanTunnelMACAddrV6).toBe('66:a0:68:c9:4c:79');
  });

  it('keeps the host bits of the node address (it is the node IP, not a network)', async () => {
    const [n] = (await parse(node('n', { bgp: { ipv4Address: '192.168.10.11/24' } }))).nodes;
    expect(formatIP(n.ipv4Address!.ip)).toBe('192.168.10.11');
    expect(n.ipv4Address!.prefix).toBe(24);
  });

  it('takes an address without a prefix as a /32 (then nothing is in its subnet)', async () => {
    const [n] = (await parse(node('n', { bgp: { ipv4Address: '192.168.10.11' } }))).nodes;
    expect(formatCidr(n.ipv4Address!)).toBe('192.168.10.11/32');
  });

  it('leaves out what is not given', async () => {
    const [n] = (await parse(node('n', {}))).nodes;
    expect(n).toEqual({
      name: 'n',
      ipv4Address: undefined,
      ipv6Address: undefined,
      ipv4IPIPTunnelAddr: undefined,
      ipv4VXLANTunnelAddr: undefined,
      vxlanTunnelMACAddr: undefined,
    });
  });

  it.each([
    ['a bad MAC', { vxlanTunnelMACAddr: '66:aa:bb:cc:dd' }, 'spec.vxlanTunnelMACAddr', /not a MAC address/],
    ['a MAC with a bad digit', { vxlanTunnelMACAddr: '66:aa:bb:cc:dd:eg' }, 'spec.vxlanTunnelMACAddr', /not a MAC/],
    [
      'a bad VXLAN tunnel address',
      { ipv4VXLANTunnelAddr: '10.244.1' },
      'spec.ipv4VXLANTunnelAddr',
      /not an IP address/,
    ],
    ['a bad BGP address', { bgp: { ipv4Address: '192.168.10.300/24' } }, 'spec.bgp.ipv4Address', /not an address/],
    [
      'a bad IPIP tunnel address',
      { bgp: { ipv4IPIPTunnelAddr: 'x' } },
      'spec.bgp.ipv4IPIPTunnelAddr',
      /not an IP address/,
    ],
    ['bgp not a mapping', { bgp: '192.168.10.11/24' }, 'spec.bgp', /mapping/],
    ['a v4 tunnel address as v6', { ipv6VXLANTunnelAddr: '10.0.0.1' }, 'spec.ipv6VXLANTunnelAddr', /IPv6 address/],
    ['a bad v6 MAC', { vxlanTunnelMACAddrV6: 'x' }, 'spec.vxlanTunnelMACAddrV6', /not a MAC address/],
    ['a v4 address as ipv6Address', { bgp: { ipv6Address: '10.0.0.1/24' } }, 'spec.bgp.ipv6Address', /IPv6/],
  ])('rejects %s', async (_what, spec, field, problem) => {
    await rejectsDocs(
      [pool('p', { cidr: '10.244.0.0/16' }), node('node-x', spec)],
      'document 2',
      'Node node-x',
      field,
      problem,
    );
  });
});

describe('file formats', () => {
  const P = pool('a', { cidr: '10.0.0.0/16', blockSize: 24, vxlanMode: 'Always' });
  const N = node('n1', { bgp: { ipv4Address: '192.168.10.11/24' } });
  const A = aff('n1-b', 'n1', '10.0.1.0/24');

  it('reads plain multi-document YAML with a leading and an empty trailing document', async () => {
    const text = `---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-a}
spec: {cidr: 10.244.0.0/16, blockSize: 24, vxlanMode: CrossSubnet, natOutgoing: true}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 192.168.10.11/24}}   # node IP and its subnet
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: node-a-10-244-1-0-24}
spec: {node: node-a, cidr: 10.244.1.0/24}
---
`;
    const docs: unknown[] = [];
    const r = await parseClusterText(text, docs);
    expect(r.pools.map((p) => [p.name, p.vxlanMode, p.natOutgoing, p.blockSize])).toEqual([
      ['pool-a', 'CrossSubnet', true, 24],
    ]);
    expect(r.nodes.map((n) => formatCidr(n.ipv4Address!))).toEqual(['192.168.10.11/24']);
    expect(r.affinities.map((a) => a.node)).toEqual(['node-a']);
    // the plain documents come back for the cache, and give the same resources again
    expect(resourcesFromDocuments(JSON.parse(JSON.stringify(docs)))).toEqual(r);
  });

  it('reads an empty file as no resources', async () => {
    expect(await parseClusterText('')).toEqual({ pools: [], nodes: [], affinities: [] });
    expect(await parseClusterText('# nothing yet\n')).toEqual({ pools: [], nodes: [], affinities: [] });
  });

  it('names the document with a YAML syntax error', async () => {
    const text = `${yaml(P)}\n---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: [x\n`;
    await rejects(text, 'document 2', '(YAML)');
  });

  it('reads one JSON object', async () => {
    const r = await parseClusterText(JSON.stringify(P, null, 2));
    expect(r.pools.map((p) => p.name)).toEqual(['a']);
  });

  it('reads a JSON array of resources', async () => {
    const r = await parseClusterText(`  \n${JSON.stringify([P, N, A])}`);
    expect([r.pools.length, r.nodes.length, r.affinities.length]).toEqual([1, 1, 1]);
  });

  it('reads an IPPoolList (and other Lists) with items', async () => {
    const list = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPoolList',
      items: [P, pool('b', { cidr: '10.1.0.0/16' })],
    };
    const r = await parseClusterText(JSON.stringify(list));
    expect(r.pools.map((p) => p.name)).toEqual(['a', 'b']);
    const r2 = await parseClusterText(
      yaml(list, { apiVersion: 'projectcalico.org/v3', kind: 'NodeList', items: [N] }, A),
    );
    expect(r2.nodes.map((n) => n.name)).toEqual(['n1']);
    expect(r2.affinities).toHaveLength(1);
  });

  it('names the list item that is wrong', async () => {
    const list = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPoolList',
      items: [P, pool('b', { cidr: '10.1.0.0/16', blockSize: 40 })],
    };
    await rejects(JSON.stringify(list), 'document 1', 'IPPoolList item 1', 'IPPool b', 'spec.blockSize');
    await rejects(
      JSON.stringify([P, pool('b', { cidr: '10.1.0.0/16', blockSize: 40 })]),
      'document 2',
      'IPPool b',
      'spec.blockSize',
    );
  });

  it('reports broken JSON', async () => {
    await rejects('[{"apiVersion": "projectcalico.org/v3",', 'document 1');
  });

  it('reads a YAML document written as a flow mapping', async () => {
    const r = await parseClusterText(
      '{apiVersion: projectcalico.org/v3, kind: IPPool, metadata: {name: f}, spec: {cidr: 10.0.0.0/16}}\n',
    );
    expect(r.pools.map((p) => p.name)).toEqual(['f']);
  });
});
