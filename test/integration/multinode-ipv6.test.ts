import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { clusterYaml6, SimCluster, vxlanPool6 } from '../helpers/cluster';
import { Check, Mode } from '../helpers/scenarios';
import { ipv6PoolScenario } from '../helpers/scenarios6';
import { tabbyArgv } from '../helpers/cni';

/**
 * IPv6 across nodes (issue #11): three simulated nodes on two subnets of an IPv6-only underlay carry an
 * IPv6 pool in each VXLAN mode over vxlan-v6.tabby, and tabby plan/status explain it. Dual stack, ip6tables
 * and a pool switched between modes are in multinode-dualstack.test.ts (a file of its own runs beside this one).
 */

const failed = (checks: Check[]): string[] => {
  if (process.env.TABBY_SHOW_CHECKS) for (const c of checks) console.log(`${c.ms} ms  ${c.name}`);
  return checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
};

describe('pure IPv6 underlay', () => {
  let c: SimCluster;
  beforeAll(async () => {
    c = await SimCluster.create(tabbyArgv(), { ipv6: 'only' });
  });
  afterAll(async () => {
    await c?.destroy();
  });

  test.each(['Always', 'CrossSubnet', 'Never'] as Mode[])(
    'vxlanMode %s: every pod pair by ping at the pod MTU and TCP, encapsulation from counters, NAT to the external IPv6 host',
    async (mode) => {
      // NAT is checked in CrossSubnet here (Always and Never NAT alike), and in the other file
      const natChecks = mode === 'CrossSubnet';
      const checks = await ipv6PoolScenario(c, { v6: mode, natChecks, tag: `v6${mode.slice(0, 2).toLowerCase()}` });
      expect(checks.length).toBeGreaterThan(20);
      expect(failed(checks)).toEqual([]);
    },
    120_000,
  );

  test('tabby plan and status show the IPv6 peers, paths and reasons', async () => {
    c.writeClusterFile(clusterYaml6({ v6: vxlanPool6('Always'), underlay: 'only' }));
    const a = c.node('node-a');
    const plan = await c.cli(a, 'plan', '--config', a.conflist);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/node node-a: 2001:db8:10::11\/64 on eth0, pod MTU 1430/);
    expect(plan.stdout).toMatch(/device vxlan-v6\.tabby: VNI 4096, port 4789, local 2001:db8:10::11, parent eth0/);
    expect(plan.stdout).toMatch(
      /fd00:10::300\/122 +via fd00:10::301 dev vxlan-v6\.tabby onlink +# pool pool-6 is vxlan Always/,
    );
    expect(plan.stdout).toMatch(/fdb \(IPv6\):\n.*dst 2001:db8:10::12 +# IPv6 VTEP of node-b\n.*dst 2001:db8:20::13/);
    const s = JSON.parse((await c.cli(a, 'status', '--config', a.conflist, '--json')).stdout);
    expect(s.node).toMatchObject({ address6: '2001:db8:10::11/64', vxlanV6: { address: 'fd00:10::101' } });
    expect(s.peers.find((p: { name: string }) => p.name === 'node-c')).toMatchObject({
      address: '2001:db8:20::13/64',
      ipv6: { path: 'vxlan', encapsulated: true, blocks: ['fd00:10::300/122'] },
    });
  });
});
