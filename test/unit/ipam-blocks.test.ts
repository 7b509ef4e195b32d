import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseIpamConf, rangeSetsFromBlocks } from '../../ipam/config';
import { ClusterResources } from '../../conf/calico';
import { formatIP, parseCidr, parseIP } from '../../lib/net/addr';
import { describeRangeSet, isGateway } from '../../ipam/range';
import { ipamAdd } from '../../ipam/ipam';
import { derivedTunnelAddr } from '../../lib/cluster/identity';
import { parseCniArgs } from '../../lib/cni/args';
import { expectCniErrorAsync } from './cni-error';
import { pool as fixturePool } from '../helpers/fixtures';

const cidr = (s: string) => parseCidr(s)!;

describe('rangeSetsFromBlocks', () => {
  it('makes one rangeset per family, IPv4 first, one range per block', () => {
    const sets = rangeSetsFromBlocks([
      cidr('fd00:20::/122'),
      cidr('10.244.1.0/24'),
      cidr('10.244.7.0/26'),
      cidr('fd00:20::40/122'),
    ]);
    expect(sets).toHaveLength(2);
    expect(sets.map(describeRangeSet)).toEqual([
      '10.244.1.1-10.244.1.254,10.244.7.1-10.244.7.62',
      'fd00:20::1-fd00:20::3f,fd00:20::41-fd00:20::7f',
    ]);
  });

  it('gives each block its first address as the gateway', () => {
    const [v4, v6] = rangeSetsFromBlocks([cidr('10.244.1.0/24'), cidr('10.244.7.0/26'), cidr('fd00:20::/122')]);
    expect(v4.map((r) => formatIP(r.gateway!))).toEqual(['10.244.1.1', '10.244.7.1']);
    expect(v6.map((r) => formatIP(r.gateway!))).toEqual(['fd00:20::1']);
    expect(isGateway(v4, parseIP('10.244.7.1')!)).toBe(true);
  });

  it('makes only the families there are', () => {
    expect(rangeSetsFromBlocks([])).toEqual([]);
    expect(rangeSetsFromBlocks([cidr('10.244.1.0/24')])).toHaveLength(1);
    expect(rangeSetsFromBlocks([cidr('fd00::/122')])[0][0].subnet.ip.family).toBe(6);
  });

  it("reserves the derived tunnel address: it is the gateway of the node's first block", () => {
    const pool = fixturePool('p', '10.244.0.0/16', { vxlanMode: 'Always' });
    const blocks = ['10.244.3.64/26', '10.244.1.192/26'];
    const r: ClusterResources = {
      pools: [pool],
      nodes: [],
      affinities: blocks.map((b) => ({ name: b, node: 'n', cidr: cidr(b) })),
    };
    const tunnel = derivedTunnelAddr(r, 'n', 'vxlan')!;
    expect(formatIP(tunnel)).toBe('10.244.1.193');
    expect(isGateway(rangeSetsFromBlocks(blocks.map(cidr))[0], tunnel)).toBe(true);
  });
});

describe('tabby-ipam from cluster blocks', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-ipam-blocks-'));
  });
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  const conf = (blocks: string[], ipam: Record<string, unknown> = {}, args = '', reserved: string[] = []) =>
    parseIpamConf(
      { cniVersion: '1.1.0', name: 'net1', ipam: { type: 'tabby-ipam', dataDir, ...ipam } },
      { command: 'ADD', containerId: 'x', netns: '/x', ifname: 'eth0', args: parseCniArgs(args), path: [] },
      { blocks: blocks.map(cidr), reserved: reserved.map((a) => parseIP(a)!) },
    );
  const add = async (c: ReturnType<typeof conf>, id: string) =>
    (await ipamAdd(c, { containerId: id, ifname: 'eth0' })).ips!.map((i) => i.address);

  it('uses the blocks when the config gives no ranges', () => {
    expect(conf(['10.244.1.0/29', 'fd00::/125']).rangeSets.map(describeRangeSet)).toEqual([
      '10.244.1.1-10.244.1.6',
      'fd00::1-fd00::7',
    ]);
  });

  it('never hands out a reserved address (an explicit tunnel address inside the block)', async () => {
    const c = conf(['10.244.1.0/29'], {}, '', ['10.244.1.3']);
    const got = [await add(c, 'a'), await add(c, 'b'), await add(c, 'c')].flat();
    expect(got).toEqual(['10.244.1.2/29', '10.244.1.4/29', '10.244.1.5/29']);
  });

  it('prefers ranges the config gives', () => {
    expect(conf(['10.244.1.0/29'], { ranges: [[{ subnet: '10.9.0.0/24' }]] }).rangeSets.map(describeRangeSet)).toEqual([
      '10.9.0.1-10.9.0.254',
    ]);
  });

  it("never hands out a block's first address (the tunnel address), across blocks, one address per family", async () => {
    const c = conf(['10.244.1.0/29', '10.244.1.8/29', 'fd00::/124']);
    const got: string[][] = [];
    for (let i = 0; i < 7; i++) got.push(await add(c, `c${i}`));
    expect(got.map((g) => g[0])).toEqual([
      '10.244.1.2/29',
      '10.244.1.3/29',
      '10.244.1.4/29',
      '10.244.1.5/29',
      '10.244.1.6/29',
      '10.244.1.10/29',
      '10.244.1.11/29',
    ]);
    expect(got.every((g) => g.length === 2 && g[1].startsWith('fd00::'))).toBe(true);
    expect(got.flat()).not.toContain('10.244.1.1/29');
    expect(got.flat()).not.toContain('10.244.1.9/29');
    expect(got.flat()).not.toContain('fd00::1/124');
  });

  it('refuses the tunnel address when a pod asks for it', async () => {
    await expectCniErrorAsync(
      ipamAdd(conf(['10.244.1.0/29'], {}, 'IP=10.244.1.1'), { containerId: 'c', ifname: 'eth0' }),
      102,
      /10\.244\.1\.1 is the gateway/,
    );
  });
});
