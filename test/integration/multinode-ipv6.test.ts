import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SimCluster } from '../helpers/cluster';
import { Check, Mode } from '../helpers/scenarios';
import { ipv6ModeSwitchScenario, ipv6PoolScenario } from '../helpers/scenarios6';
import { tabbyArgv } from '../helpers/cni';

/**
 * IPv6 across nodes (issue #11): three simulated nodes on two subnets of an IPv6-only underlay carry an
 * IPv6 pool in each VXLAN mode over vxlan-v6.tabby; a dual-stack underlay carries an IPv4 pool over IPv4
 * and an IPv6 one over IPv6, each pod getting an address of each family; natOutgoing of IPv6 pods is seen
 * from an external IPv6 host (nftables, and ip6tables); an IPv6 pool switched between modes.
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
      const checks = await ipv6PoolScenario(c, { v6: mode, tag: `v6${mode.slice(0, 2).toLowerCase()}` });
      expect(checks.length).toBeGreaterThan(20);
      expect(failed(checks)).toEqual([]);
    },
    120_000,
  );

  test('an IPv6 pool switched Always -> CrossSubnet -> Never -> Always with tabby reconcile', async () => {
    const checks = await ipv6ModeSwitchScenario(c);
    expect(failed(checks)).toEqual([]);
  }, 120_000);

  test('tabby plan and status show the IPv6 peers, paths and reasons', async () => {
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
});

describe('iptables backend', () => {
  let c: SimCluster;
  beforeAll(async () => {
    c = await SimCluster.create(tabbyArgv(), { ipv6: 'only', natBackend: 'iptables' });
  });
  afterAll(async () => {
    await c?.destroy();
  });

  test('IPv6 natOutgoing through ip6tables', async () => {
    const checks = await ipv6PoolScenario(c, { v6: 'Always', tag: 'ipt6' });
    expect(failed(checks)).toEqual([]);
  }, 120_000);
});
