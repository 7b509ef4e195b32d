import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as fs from 'node:fs';
import { clusterYaml6, SimCluster, SimNode, vxlanPool, vxlanPool6 } from '../helpers/cluster';
import { nsExec } from '../helpers/proc';
import { Check } from '../helpers/scenarios';
import { ipv6ModeSwitchScenario, ipv6PoolScenario } from '../helpers/scenarios6';
import { tabbyArgv } from '../helpers/cni';

/**
 * IPv6 across nodes (issue #11), continued: a dual-stack underlay carries an IPv4 pool over IPv4 and an
 * IPv6 one over IPv6, each pod getting an address of each family, and NAT of both families is seen from
 * the external host; IPv6 natOutgoing through ip6tables; an IPv6 pool switched between modes.
 */

const failed = (checks: Check[]): string[] => checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);

describe('dual-stack underlay', () => {
  let c: SimCluster;
  beforeAll(async () => {
    c = await SimCluster.create(tabbyArgv(), { ipv6: 'dual' });
  });
  afterAll(async () => {
    await c?.destroy();
  });

  test('dual-stack pods across two subnets: IPv4 over the IPv4 underlay, IPv6 over the IPv6 one, both families NATed', async () => {
    const checks = await ipv6PoolScenario(c, { v6: 'CrossSubnet', v4: 'CrossSubnet', tag: 'ds' });
    expect(checks.length).toBeGreaterThan(40);
    expect(failed(checks)).toEqual([]);
    const a = c.node('node-a');
    const status = await c.cli(a, 'status', '--config', a.conflist);
    expect(status.stdout).toMatch(/node-c +192\.168\.20\.13\/24 +vxlan +yes/);
    expect(status.stdout).toMatch(/node-c +2001:db8:20::13\/64 +vxlan +yes/);
    expect(status.stdout).toMatch(/node-b +2001:db8:10::12\/64 +direct +no/);
  }, 120_000);

  test('featureDetectOverride ChecksumOffloadBroken=true turns TX checksum offload off on both VXLAN devices, and again on a recreated one', async () => {
    const offload = async (n: SimNode, dev: string) =>
      /^\s*tx-checksum-ip-generic: (\w+)/m.exec((await nsExec(n.ns, '/usr/sbin/ethtool', ['-k', dev])).stdout)?.[1];
    const [a, , cc] = c.nodes;
    const before = fs.readFileSync(a.conflist, 'utf8');
    c.writeClusterFile(clusterYaml6({ v6: vxlanPool6('Always'), v4: vxlanPool('Always'), underlay: 'dual' }));
    try {
      for (const n of [a, cc]) {
        expect((await c.cli(n, 'reconcile', '--config', n.conflist)).code).toBe(0);
        expect(await offload(n, 'vxlan.tabby')).toBe('on'); // the default on this kernel
      }
      for (const n of [a, cc]) {
        const list = JSON.parse(fs.readFileSync(n.conflist, 'utf8'));
        list.plugins[0].featureDetectOverride = 'ChecksumOffloadBroken=true';
        fs.writeFileSync(n.conflist, JSON.stringify(list));
      }
      for (const n of [a, cc]) {
        const r = await c.cli(n, 'reconcile', '--config', n.conflist);
        expect(r.stdout).toMatch(/vxlan\.tabby: TX checksum offload off/);
        expect(r.stdout).toMatch(/vxlan-v6\.tabby: TX checksum offload off/);
        for (const dev of ['vxlan.tabby', 'vxlan-v6.tabby']) expect(await offload(n, dev)).toBe('off');
      }
      // a device deleted by hand comes back with offload on; the next apply turns it off again
      await nsExec(a.ns, '/usr/sbin/ip', ['link', 'del', 'vxlan-v6.tabby']);
      expect((await c.cli(a, 'reconcile', '--config', a.conflist)).code).toBe(0);
      expect(await offload(a, 'vxlan-v6.tabby')).toBe('off');
      // pods on both families across the tunnel, with TCP at full size
      const pa = await c.addPod('node-a', 'csum-a');
      const pc = await c.addPod('node-c', 'csum-c');
      for (const dst of [pc.ip, pc.ip6!]) {
        expect(await c.reachable(pa.ns, dst)).toBe(true);
        expect(await c.tcpTransfer(pa.ns, pc.ns, dst)).toBe(200_000);
      }
      await c.delPod(pa);
      await c.delPod(pc);
    } finally {
      fs.writeFileSync(a.conflist, before);
      const list = JSON.parse(fs.readFileSync(cc.conflist, 'utf8'));
      delete list.plugins[0].featureDetectOverride;
      fs.writeFileSync(cc.conflist, JSON.stringify(list));
    }
  }, 120_000);
});

describe('iptables backend, IPv6-only underlay', () => {
  let c: SimCluster;
  beforeAll(async () => {
    c = await SimCluster.create(tabbyArgv(), { ipv6: 'only', natBackend: 'iptables' });
  });
  afterAll(async () => {
    await c?.destroy();
  });

  test('IPv6 natOutgoing through ip6tables', async () => {
    // the pod pairs of Always are proven on nftables (multinode-ipv6.test.ts): here NAT alone
    const checks = await ipv6PoolScenario(c, { v6: 'Always', pairs: false, tag: 'ipt6' });
    expect(checks.some((x) => /external IPv6 host: NATed/.test(x.name))).toBe(true);
    expect(failed(checks)).toEqual([]);
  }, 120_000);

  test('an IPv6 pool switched CrossSubnet -> Never -> Always with tabby reconcile', async () => {
    const checks = await ipv6ModeSwitchScenario(c);
    expect(failed(checks)).toEqual([]);
  }, 120_000);
});
