import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseIpamConf } from '../../ipam/config';
import { ipamAdd } from '../../ipam/ipam';
import { parseCniArgs } from '../../lib/cni/args';
import { CniEnv } from '../../lib/cni/env';
import { Addr, formatCidr, formatIP, parseIP } from '../../lib/net/addr';
import { IP_ADDRS, IPV4_POOLS, IPV6_POOLS, POD_ANNOTATIONS, podRequest } from '../../ipam/pod-request';
import { choosePodBlocks, NodeView, podPools, UnknownPoolError } from '../../lib/cluster/pod-choice';
import { conflistToInstall } from '../../cmd/cli/install-files';
import { cidr, pool } from '../helpers/fixtures';
import { expectCniError } from './cni-error';

// The pure half of per-pod pools and fixed addresses: what a pod asks for (annotations, CNI arguments,
// and which wins), and which of the node's blocks that gives, or why it cannot be had.

const env = (args = '', command: CniEnv['command'] = 'ADD'): CniEnv => ({
  command,
  containerId: 'c1',
  netns: '/x',
  ifname: 'eth0',
  args: parseCniArgs(args),
  path: [],
});
const withAnn = (ann: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  name: 'n',
  ...extra,
  runtimeConfig: { [POD_ANNOTATIONS]: ann, ...((extra.runtimeConfig as object) ?? {}) },
});
const ips = (a: Addr[]) => a.map(formatIP);

describe('podRequest: what the pod asks for, and which source wins', () => {
  it('reads nothing when nothing is asked, and nothing on commands other than ADD', () => {
    expect(podRequest({ name: 'n' }, env())).toMatchObject({ addresses: [], exact: false, pools: {} });
    const r = podRequest(withAnn({ [IP_ADDRS]: 'not json' }), env('IP=nope', 'DEL'));
    expect(r.addresses).toEqual([]);
  });

  it('ipAddrs: exactly those addresses, over CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips', () => {
    const r = podRequest(
      withAnn(
        { [IP_ADDRS]: '["10.1.0.5","fd00::5"]', [IPV4_POOLS]: '["other"]' },
        { args: { cni: { ips: ['10.1.0.7'] } }, runtimeConfig: { ips: ['10.1.0.8'] } },
      ),
      env('IP=10.1.0.6'),
    );
    expect(ips(r.addresses)).toEqual(['10.1.0.5', 'fd00::5']);
    expect(r.exact).toBe(true);
    expect(r.pools).toEqual({});
    expect(r.ignored.join(' ')).toMatch(
      /10\.1\.0\.6, 10\.1\.0\.7, 10\.1\.0\.8 \(cni\.projectcalico\.org\/ipAddrs wins\)/,
    );
    expect(r.ignored.join(' ')).toMatch(/ipv4pools/);
  });

  it('the CNI arguments all count (host-local), without duplicates, and are not exact', () => {
    const r = podRequest(
      { name: 'n', args: { cni: { ips: ['10.1.0.7', '10.1.0.6/24'] } }, runtimeConfig: { ips: ['fd00::9'] } },
      env('IP=10.1.0.6'),
    );
    expect(ips(r.addresses)).toEqual(['10.1.0.6', '10.1.0.7', 'fd00::9']);
    expect(r.exact).toBe(false);
  });

  it('pools per family, for the families that got no address', () => {
    const r = podRequest(withAnn({ [IPV4_POOLS]: '["a", "10.2.0.0/16"]', [IPV6_POOLS]: '["v6"]' }), env('IP=fd00::3'));
    expect(r.pools).toEqual({ 4: ['a', '10.2.0.0/16'] });
    expect(r.ignored.join(' ')).toMatch(/ipv6pools \(an address of that family was asked for\)/);
    expect(podRequest(withAnn({ [IPV4_POOLS]: '[]' }), env()).pools).toEqual({});
  });

  it.each([
    [{ [IP_ADDRS]: 'nope' }, /ipAddrs"\]: "nope" is not JSON/],
    [{ [IP_ADDRS]: '{"a":1}' }, /is not a JSON list of non-empty strings/],
    [{ [IP_ADDRS]: '["10.0.0.1/32"]' }, /"10\.0\.0\.1\/32" is not an IP address \(no prefix length\)/],
    [{ [IP_ADDRS]: '["10.0.0.1","10.0.0.2"]' }, /more than one IPv4 address/],
    [{ [IPV4_POOLS]: '[""]' }, /ipv4pools"\]: .* non-empty strings/],
    [{ [IPV4_POOLS]: 5 }, /must be a string holding a JSON list/],
    [{ 'cni.projectcalico.org/ipAddrsNoIpam': '["10.0.0.1"]' }, /ipAddrsNoIpam"\]: is not supported/],
  ])('refuses %j with code 7, naming the annotation', (ann, msg) => {
    expectCniError(() => podRequest(withAnn(ann), env()), 7, msg);
  });

  it('refuses annotations that are not an object', () => {
    expectCniError(
      () => podRequest({ name: 'n', runtimeConfig: { [POD_ANNOTATIONS]: [] } }, env()),
      7,
      /object of strings/,
    );
  });
});

const POOLS = podPools(
  [
    pool('main', '10.1.0.0/16', { blockSize: 24 }),
    pool('manual', '10.2.0.0/16', { blockSize: 24, assignmentMode: 'Manual' }),
    pool('zone-b', '10.3.0.0/16', { blockSize: 24, nodeSelector: "zone == 'b'" }),
    pool('off', '10.4.0.0/16', { blockSize: 24, disabled: true }),
    pool('lb', '10.5.0.0/16', { blockSize: 24, allowedUses: ['LoadBalancer'] }),
    pool('six', 'fd00:1::/64', { blockSize: 122 }),
  ],
  { name: 'node-a', labels: { zone: 'a' } },
);

const view = (blocks: string[], reserved: string[] = []): NodeView => ({
  node: 'node-a',
  blocks: blocks.map(cidr),
  reserved: reserved.map((a) => parseIP(a)!),
  pools: POOLS,
});
const choose = (v: NodeView, ann: Record<string, string>, args = '') =>
  choosePodBlocks(v, podRequest(withAnn(ann), env(args)));
const blocksOf = (c: { blocks: { ip: Addr; prefix: number }[] }) => c.blocks.map(formatCidr);

describe('podPools: which pools give addresses by default', () => {
  it('enabled, for workloads, Automatic and selecting the node', () => {
    expect(POOLS.filter((p) => p.selects).map((p) => p.name)).toEqual(['main', 'six']);
  });
});

describe('choosePodBlocks', () => {
  const NODE = view(['10.1.1.0/24', '10.2.7.0/24', '10.3.9.0/24', 'fd00:1::40/122']);

  it('by default: only the blocks of pools that select the node, whatever else it holds', () => {
    const c = choose(NODE, {});
    expect(blocksOf(c)).toEqual(['10.1.1.0/24', 'fd00:1::40/122']);
    expect(c.unheld).toEqual([]);
    expect(c.empty).toEqual([]);
  });

  it('a named pool is used though its nodeSelector does not match or it is Manual; by name or CIDR', () => {
    expect(blocksOf(choose(NODE, { [IPV4_POOLS]: '["zone-b"]' }))).toEqual(['10.3.9.0/24', 'fd00:1::40/122']);
    expect(blocksOf(choose(NODE, { [IPV4_POOLS]: '["10.2.0.0/16", "zone-b"]' }))).toEqual([
      '10.2.7.0/24',
      '10.3.9.0/24',
      'fd00:1::40/122',
    ]);
    expect(choose(NODE, { [IPV4_POOLS]: '["manual"]' }).named[4]!.map((p) => p.name)).toEqual(['manual']);
  });

  it('a named pool with no block here: the family is empty, to claim from that pool', () => {
    const c = choose(view(['10.1.1.0/24']), { [IPV4_POOLS]: '["zone-b"]' });
    expect(blocksOf(c)).toEqual([]);
    expect(c.empty.map((e) => [e.family, e.pools.map((p) => p.name)])).toEqual([[4, ['zone-b']]]);
  });

  it('ipAddrs: only the block of each address, held or not', () => {
    let c = choose(NODE, { [IP_ADDRS]: '["10.3.9.20"]' });
    expect(blocksOf(c)).toEqual(['10.3.9.0/24']);
    c = choose(NODE, { [IP_ADDRS]: '["10.2.200.5"]' });
    expect(blocksOf(c)).toEqual([]);
    expect(c.unheld.map((u) => [formatIP(u.address), formatCidr(u.block), u.pool.name])).toEqual([
      ['10.2.200.5', '10.2.200.0/24', 'manual'],
    ]);
  });

  it('CNI_ARGS IP=: the address block joins the default ones (host-local: every family gets one)', () => {
    const c = choose(NODE, {}, 'IP=10.3.9.20');
    expect(blocksOf(c)).toEqual(['10.3.9.0/24', '10.1.1.0/24', 'fd00:1::40/122']);
  });

  it.each([
    [
      { [IPV4_POOLS]: '["nope"]' },
      7,
      /ipv4pools"\]: no IPPool is named "nope" \(pools: lb \(10\.5\.0\.0\/16\), main \(10\.1\.0\.0\/16\), /,
    ],
    [{ [IPV4_POOLS]: '["10.9.0.0/16"]' }, 7, /no IPPool has the CIDR "10\.9\.0\.0\/16"/],
    [{ [IPV4_POOLS]: '["six"]' }, 7, /IPPool six \(fd00:1::\/64\) is not an IPv4 pool/],
    [{ [IPV6_POOLS]: '["main"]' }, 7, /IPPool main \(10\.1\.0\.0\/16\) is not an IPv6 pool/],
    [{ [IPV4_POOLS]: '["off"]' }, 102, /IPPool off \(10\.4\.0\.0\/16\) is disabled: no addresses from it/],
    [{ [IPV4_POOLS]: '["lb"]' }, 102, /IPPool lb \(10\.5\.0\.0\/16\) is not for workloads/],
    [
      { [IP_ADDRS]: '["10.9.0.5"]' },
      102,
      /requested IP address 10\.9\.0\.5 is outside every IPPool \(pools: lb \(10\.5\.0\.0\/16\), main/,
    ],
    [{ [IP_ADDRS]: '["10.4.1.5"]' }, 102, /10\.4\.1\.5: IPPool off \(10\.4\.0\.0\/16\) is disabled/],
    [{ [IP_ADDRS]: '["10.1.1.0"]' }, 102, /10\.1\.1\.0 is the network address of block 10\.1\.1\.0\/24/],
    [{ [IP_ADDRS]: '["10.1.1.1"]' }, 102, /10\.1\.1\.1 is the gateway of block 10\.1\.1\.0\/24/],
    [{ [IP_ADDRS]: '["10.1.1.255"]' }, 102, /10\.1\.1\.255 is the broadcast address of block/],
  ])('%j: code %i', (ann, code, msg) => {
    expectCniError(() => choose(NODE, ann as Record<string, string>), code, msg);
  });

  it('an unknown pool and an address in no pool are the errors a fresher pool list may undo', () => {
    expect(() => choose(NODE, { [IPV4_POOLS]: '["nope"]' })).toThrow(UnknownPoolError);
    expect(() => choose(NODE, { [IP_ADDRS]: '["10.9.0.5"]' })).toThrow(UnknownPoolError);
    expect(() => choose(NODE, { [IPV4_POOLS]: '["off"]' })).not.toThrow(UnknownPoolError);
  });

  it("refuses the node's tunnel address", () => {
    expectCniError(
      () => choose(view(['10.1.1.0/24'], ['10.1.1.9']), { [IP_ADDRS]: '["10.1.1.9"]' }),
      102,
      /10\.1\.1\.9 is this node's tunnel address/,
    );
  });
});

describe('tabby install: the pod-annotations capability', () => {
  const list = {
    cniVersion: '1.0.0',
    name: 'k',
    plugins: [
      { type: 'tabby', capabilities: { portMappings: true }, ipam: { type: 'tabby-ipam' } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };

  it('adds it to tabby entries, keeping their other capabilities and every other plugin as it is', () => {
    const out = JSON.parse(conflistToInstall(JSON.stringify(list)));
    expect(out.plugins[0]).toEqual({
      type: 'tabby',
      capabilities: { portMappings: true, [POD_ANNOTATIONS]: true },
      ipam: { type: 'tabby-ipam' },
    });
    expect(out.plugins[1]).toEqual(list.plugins[1]);
  });

  it('leaves a conflist that has it byte for byte, and sets nodeName beside it', () => {
    const text = conflistToInstall(JSON.stringify(list));
    expect(conflistToInstall(text)).toBe(text);
    expect(JSON.parse(conflistToInstall(text, 'node-a')).plugins[0]).toMatchObject({
      nodeName: 'node-a',
      capabilities: { portMappings: true, [POD_ANNOTATIONS]: true },
    });
    const bare = { ...list, plugins: [{ type: 'tabby', ipam: { type: 'tabby-ipam' } }] };
    expect(JSON.parse(conflistToInstall(JSON.stringify(bare))).plugins[0].capabilities).toEqual({
      [POD_ANNOTATIONS]: true,
    });
  });
});

describe('tabby-ipam with the request', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  const conf = (ann: Record<string, string>, cluster?: Parameters<typeof parseIpamConf>[2], ranges?: unknown) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-podreq-'));
    dirs.push(dataDir);
    return parseIpamConf(
      withAnn(ann, { ipam: { type: 'tabby-ipam', dataDir, ...(ranges ? { ranges } : {}) } }),
      env(),
      cluster,
    );
  };

  it('ipAddrs is exact: the other family gets no address', async () => {
    const c = conf({ [IP_ADDRS]: '["10.0.0.5"]' }, undefined, [
      [{ subnet: '10.0.0.0/24' }],
      [{ subnet: 'fd00::/120' }],
    ]);
    const r = await ipamAdd(c, { containerId: 'c1', ifname: 'eth0' });
    expect(r.ips!.map((x) => x.address)).toEqual(['10.0.0.5/24']);
  });

  it('a pool annotation is refused unless the blocks were chosen for it (own ranges, or a delegate)', () => {
    const ann = { [IPV4_POOLS]: '["main"]' };
    expectCniError(() => conf(ann, undefined, [[{ subnet: '10.0.0.0/24' }]]), 7, /ipv4pools"\]: pools are chosen only/);
    expectCniError(() => conf(ann, { blocks: [cidr('10.1.1.0/24')], reserved: [] }), 7, /pools are chosen only/);
    expect(conf(ann, { blocks: [cidr('10.1.1.0/24')], reserved: [], poolsChosen: true }).rangeSets).toHaveLength(1);
  });
});
