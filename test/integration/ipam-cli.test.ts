import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CniRun, execPlugin, expectResult, show, tabbyArgv, TestNode } from '../helpers/cni';
import { HOST_LOCAL, ipamOnlyConf, ipamRun, reservationMap } from '../helpers/ipam';
import { ip, tabbyVeths, useSandbox } from '../helpers/netns';

// `tabby ipam list|release|check` for operators, run inside a node namespace against its data dir.

const sb = useSandbox();

const cli = (node: TestNode, ...args: string[]): Promise<CniRun> =>
  execPlugin(node.name, [...tabbyArgv(), 'ipam', ...args], {});
const ipOf = (r: any): string => r.ips[0].address.split('/')[0];

/** A node with two tabby pods (A, B) on tabbynet and one host-local reservation (H) on network "other" (A's address too). */
async function setup() {
  const node = await TestNode.create(sb);
  const a = expectResult(await node.add(await sb.netns(), 'A'));
  const b = expectResult(await node.add(await sb.netns(), 'B'));
  const other = ipamOnlyConf({
    type: 'host-local',
    network: 'other',
    dataDir: node.dataDir,
    ranges: [[{ subnet: '10.244.1.0/24' }]],
  });
  const h = expectResult(await ipamRun(node.name, [HOST_LOCAL], 'ADD', 'H', other));
  return { node, a, b, h };
}

describe('tabby ipam list', () => {
  it('shows every reservation with network, container, interface and age; --network filters; --json for scripts', async () => {
    const { node, a, b, h } = await setup();
    const j = await cli(node, 'list', '--data-dir', node.dataDir, '--json');
    expect(j.code, show(j)).toBe(0);
    expect(j.json.map((r: any) => [r.network, r.ip, r.containerId, r.ifname])).toEqual([
      ['other', ipOf(h), 'H', 'eth0'],
      ['tabbynet', ipOf(a), 'A', 'eth0'],
      ['tabbynet', ipOf(b), 'B', 'eth0'],
    ]);
    for (const r of j.json) {
      expect(r.ageSeconds).toBeGreaterThanOrEqual(0);
      expect(Number.isNaN(Date.parse(r.since))).toBe(false);
    }

    const t = await cli(node, 'list', '--data-dir', node.dataDir, '--network', 'tabbynet');
    expect(t.code, show(t)).toBe(0);
    const lines = t.stdout.trim().split('\n');
    expect(lines[0].split(/\s+/)).toEqual(['NETWORK', 'IP', 'CONTAINER', 'INTERFACE', 'AGE']);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 4))).toEqual([
      ['tabbynet', ipOf(a), 'A', 'eth0'],
      ['tabbynet', ipOf(b), 'B', 'eth0'],
    ]);
    expect(lines[1].split(/\s+/)[4]).toMatch(/^\d+s$/);

    const empty = await cli(node, 'list', '--data-dir', node.dataDir, '--network', 'nonet');
    expect(empty.stdout).toMatch(/no reservations in network nonet/);
    expect((await cli(node, 'list', '--data-dir', node.dataDir, '--network', 'nonet', '--json')).json).toEqual([]);
  });

  it('rejects unknown options and subcommands with exit 2, one error line and the short usage', async () => {
    const node = await TestNode.create(sb);
    const cases: [string[], string, string][] = [
      [['list', '--bogus'], 'tabby ipam list: unknown flag --bogus', 'tabby ipam list '],
      [['frobnicate'], 'tabby ipam: unknown ipam command "frobnicate"', 'tabby ipam list|release|check '],
      [
        ['list', '--data-dir', 'relative/dir'],
        'tabby ipam list: --data-dir must be an absolute path',
        'tabby ipam list ',
      ],
      [['release'], 'tabby ipam release: IP is required', 'tabby ipam release IP '],
    ];
    for (const [args, error, usage] of cases) {
      const r = await cli(node, ...args);
      expect(r.code, show(r)).toBe(2);
      const [first, second] = r.stderr.split('\n');
      expect(first).toContain(error);
      expect(second.startsWith(`usage: ${usage}`), second).toBe(true);
    }
  });
});

describe('tabby ipam release', () => {
  it('releases one address under the lock, warns when its host veth still exists, and says which network', async () => {
    const { node, a, h } = await setup();
    // A (tabbynet) and H (host-local, network other) hold the same address: say which network
    expect(ipOf(h)).toBe(ipOf(a));
    const ambiguous = await cli(node, 'release', ipOf(a), '--data-dir', node.dataDir);
    expect(ambiguous.code, show(ambiguous)).toBe(1);
    expect(ambiguous.stderr).toMatch(/reserved in networks other, tabbynet: say which with --network/);

    const r = await cli(node, 'release', ipOf(a), '--data-dir', node.dataDir, '--network', 'tabbynet');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout.trim()).toBe(`released ${ipOf(a)} (container A, interface eth0) in network tabbynet`);
    expect(r.stderr).toMatch(new RegExp(`warning: host veth ${a.interfaces[0].name} of A/eth0 still exists`));
    expect(Object.keys(reservationMap(node.ipamDir))).not.toContain(ipOf(a));

    // the same address again: not reserved there
    const again = await cli(node, 'release', ipOf(a), '--data-dir', node.dataDir, '--network', 'tabbynet');
    expect(again.code, show(again)).toBe(1);
    expect(again.stderr).toMatch(/is not reserved in network tabbynet/);

    // now only network other has it, so no --network is needed; --json for scripts
    const j = await cli(node, 'release', ipOf(h), '--data-dir', node.dataDir, '--json');
    expect(j.code, show(j)).toBe(0);
    expect(j.json.released).toMatchObject({
      network: 'other',
      ip: ipOf(h),
      containerId: 'H',
      ifname: 'eth0',
      hostVethExists: false,
    });
    expect(reservationMap(path.join(node.dataDir, 'other'))).toEqual({});

    const bad = await cli(node, 'release', 'not-an-ip', '--data-dir', node.dataDir);
    expect(bad.code, show(bad)).toBe(2);
  });
});

describe('tabby ipam check', () => {
  it('finds reservations whose container is gone (no host veth), exit 1; exit 0 once they are released', async () => {
    const { node, a, b } = await setup();
    const t0 = await cli(node, 'check', '--data-dir', node.dataDir, '--network', 'tabbynet');
    expect(t0.code, show(t0)).toBe(0);
    expect(t0.stdout).toMatch(/2 reservation\(s\) in network tabbynet of .*, none whose container is gone/);

    // B's pod is gone behind tabby's back: its host veth has vanished, its reservation stays
    await ip(node.name, ['link', 'del', b.interfaces[0].name]);
    expect(await tabbyVeths(node.name)).toEqual([a.interfaces[0].name]);
    const j = await cli(node, 'check', '--data-dir', node.dataDir, '--network', 'tabbynet', '--json');
    expect(j.code, show(j)).toBe(1);
    expect(j.json.checked).toBe(2);
    expect(j.json.gone).toHaveLength(1);
    expect(j.json.gone[0]).toMatchObject({
      network: 'tabbynet',
      ip: ipOf(b),
      containerId: 'B',
      ifname: 'eth0',
      hostVeth: b.interfaces[0].name,
    });

    const t = await cli(node, 'check', '--data-dir', node.dataDir, '--network', 'tabbynet');
    expect(t.code, show(t)).toBe(1);
    expect(t.stdout).toMatch(/1 of 2 reservation\(s\) in network tabbynet of .* belong to containers that are gone/);
    expect(t.stdout).toContain(ipOf(b));
    expect(t.stdout).toContain(b.interfaces[0].name);
    expect(t.stdout).not.toContain(` ${ipOf(a)} `);

    expect((await cli(node, 'release', ipOf(b), '--data-dir', node.dataDir, '--network', 'tabbynet')).code).toBe(0);
    const after = await cli(node, 'check', '--data-dir', node.dataDir, '--network', 'tabbynet', '--json');
    expect(after.code, show(after)).toBe(0);
    expect(after.json).toEqual({ checked: 1, gone: [], unknown: [], notChecked: [] });
    expect(fs.existsSync(node.ipamDir)).toBe(true);

    // without --network, only networks a tabby veth names are judged: "other" (host-local's) is not
    const all = await cli(node, 'check', '--data-dir', node.dataDir, '--json');
    expect(all.code, show(all)).toBe(0);
    expect(all.json.notChecked).toEqual(['other']);
  });
});
