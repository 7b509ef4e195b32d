import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  execPlugin,
  expectCniError,
  expectResult,
  expectSilentSuccess,
  podAddresses,
  REF_CNI_DIR,
  show,
  TestNode,
} from '../helpers/cni';
import { ip, link, nsPath, tabbyVeths, useSandbox } from '../helpers/netns';
import { reservationMap, tabbyIpamDir } from '../helpers/ipam';

// The `tabby-ipam` face: the same binary under the name tabby-ipam, used as IPAM by the reference ptp
// and bridge; and the other way round, tabby delegating to the reference host-local.

const sb = useSandbox();

const ipamDir = (): string => tabbyIpamDir(sb);

function ptpConf(node: TestNode, dataDir: string): Record<string, unknown> {
  return {
    cniVersion: '1.0.0', // Debian's ptp (v1.1.1) speaks up to 1.0.0
    name: 'ptpnet',
    type: 'ptp',
    ipam: {
      type: 'tabby-ipam',
      ranges: [[{ subnet: '10.245.0.0/24' }]],
      routes: [{ dst: '0.0.0.0/0' }],
      dataDir,
    },
  };
}

describe('tabby-ipam under the reference ptp plugin', () => {
  it('ADD gives an address, CHECK passes, DEL releases it', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const cniPath = ipamDir();
    const dataDir = sb.tmpdir();
    const conf = ptpConf(node, dataDir);
    const env = (cmd: string) => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: 'ptp1',
      CNI_NETNS: nsPath(pod),
      CNI_IFNAME: 'eth0',
      CNI_PATH: cniPath,
    });
    const ptp = [path.join(REF_CNI_DIR, 'ptp')];

    const res = expectResult(await execPlugin(node.name, ptp, env('ADD'), conf));
    expect(res.ips).toHaveLength(1);
    expect(res.ips[0].address).toBe('10.245.0.2/24');
    expect(res.ips[0].gateway).toBe('10.245.0.1');
    expect(await podAddresses(pod)).toEqual(['10.245.0.2/24']);
    expect(fs.readFileSync(path.join(dataDir, 'ptpnet', '10.245.0.2'), 'utf8')).toBe('ptp1\r\neth0');

    expectSilentSuccess(await execPlugin(node.name, ptp, env('CHECK'), { ...conf, prevResult: res }));

    expectSilentSuccess(await execPlugin(node.name, ptp, env('DEL'), conf));
    expect(fs.existsSync(path.join(dataDir, 'ptpnet', '10.245.0.2'))).toBe(false);
    expect(await link(pod, 'eth0')).toBeUndefined();
  });

  it('run directly as tabby-ipam, gives an IPAM result (no interfaces) and its errors', async () => {
    const node = await TestNode.create(sb);
    const dir = ipamDir();
    const dataDir = sb.tmpdir();
    const conf = ptpConf(node, dataDir);
    const env = (cmd: string, cid = 'x1') => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: cid,
      CNI_NETNS: '/var/run/netns/none',
      CNI_IFNAME: 'eth0',
      CNI_PATH: dir,
    });
    const bin = [path.join(dir, 'tabby-ipam')];

    const res = expectResult(await execPlugin(node.name, bin, env('ADD'), conf));
    expect(res).not.toHaveProperty('interfaces');
    expect(res.ips).toEqual([{ address: '10.245.0.2/24', gateway: '10.245.0.1' }]);
    expect(res.routes).toEqual([{ dst: '0.0.0.0/0' }]);

    expectCniError(await execPlugin(node.name, bin, env('ADD'), conf), 102, /duplicate/);
    expectSilentSuccess(await execPlugin(node.name, bin, env('CHECK'), conf));
    expectSilentSuccess(await execPlugin(node.name, bin, env('DEL'), conf));
    expect(fs.readdirSync(path.join(dataDir, 'ptpnet')).filter((f) => /^\d/.test(f))).toEqual([]);
    expectCniError(await execPlugin(node.name, bin, env('CHECK'), conf), 106);
  });
});

describe('tabby-ipam under the reference bridge plugin', () => {
  it("ADD gives an address on the bridge's subnet, CHECK passes, DEL releases it", async () => {
    const node = await TestNode.create(sb);
    const pods = [await sb.netns(), await sb.netns()];
    const cniPath = ipamDir();
    const dataDir = sb.tmpdir();
    const conf = {
      cniVersion: '1.0.0', // Debian's bridge (v1.1.1) speaks up to 1.0.0
      name: 'brnet',
      type: 'bridge',
      bridge: 'tbr0',
      isGateway: true,
      ipam: { type: 'tabby-ipam', ranges: [[{ subnet: '10.246.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir },
    };
    const env = (cmd: string, i: number) => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: `br${i}`,
      CNI_NETNS: nsPath(pods[i]),
      CNI_IFNAME: 'eth0',
      CNI_PATH: cniPath,
    });
    const bridge = [path.join(REF_CNI_DIR, 'bridge')];
    const dir = path.join(dataDir, 'brnet');

    const res = await Promise.all(
      pods.map(async (_, i) => expectResult(await execPlugin(node.name, bridge, env('ADD', i), conf))),
    );
    expect(res.map((r) => r.ips[0].address).sort()).toEqual(['10.246.0.2/24', '10.246.0.3/24']);
    expect(res[0].ips[0].gateway).toBe('10.246.0.1');
    expect(await podAddresses(pods[0])).toEqual([res[0].ips[0].address]);
    expect(await link(node.name, 'tbr0')).toBeDefined();
    expect(reservationMap(dir)).toEqual(
      Object.fromEntries(res.map((r, i) => [r.ips[0].address.split('/')[0], `br${i}\r\neth0`])),
    );

    for (let i = 0; i < 2; i++)
      expectSilentSuccess(await execPlugin(node.name, bridge, env('CHECK', i), { ...conf, prevResult: res[i] }));
    for (let i = 0; i < 2; i++) expectSilentSuccess(await execPlugin(node.name, bridge, env('DEL', i), conf));
    expect(reservationMap(dir)).toEqual({});
    expect(await link(pods[0], 'eth0')).toBeUndefined();
  });
});

describe('tabby delegating to the reference host-local', () => {
  it('when ADD fails after host-local handed out an address, tabby has host-local DEL it', async () => {
    const node = await TestNode.create(sb);
    const conf = node.conf({ cniVersion: '1.0.0', ipam: { type: 'host-local' } }); // host-local v1.1.1: up to 1.0.0
    const pod = await sb.netns();
    // eth0 already in the pod: IPAM ADD succeeds, wiring the pod fails
    await ip(pod, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
    const r = await node.add(pod, 'c1', { conf });
    expect(r.code, show(r)).not.toBe(0);
    expect(r.json?.msg, show(r)).toMatch(/exists/);
    expect(reservationMap(node.ipamDir)).toEqual({});
    // host-local did hand out .2 (its last_reserved_ip says so) before tabby had it released
    expect(fs.readFileSync(path.join(node.ipamDir, 'last_reserved_ip.0'), 'utf8')).toBe('10.244.1.2');
    expect(await tabbyVeths(node.name)).toEqual([]);

    // and the delegated attachment works end to end on a clean pod
    const pod2 = await sb.netns();
    const ok = expectResult(await node.add(pod2, 'c2', { conf }));
    expect(reservationMap(node.ipamDir)).toEqual({ [ok.ips[0].address.split('/')[0]]: 'c2\r\neth0' });
    expectSilentSuccess(await node.del(pod2, 'c2', { conf }));
    expect(reservationMap(node.ipamDir)).toEqual({});
  });
});
