import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SimCluster } from '../helpers/cluster';
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
