// IPv6 across nodes with the cluster in etcd (issue #11): on a dual-stack underlay, agents register their
// nodes with an IPv6 address (autodetected), an IPv6 VTEP MAC and an IPv6 tunnel address from a v6 block
// they claim; every node routes the others' v6 blocks (directly in its /64, through vxlan-v6.tabby
// across), and dual-stack pods reach each other on both families and are NATed on both.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { EXTERNAL_IP6, Pod, SimCluster, SimNode } from '../helpers/cluster';
import { AgentProcess, httpGet, startAgent, stopAgent, waitFor } from '../helpers/agent';
import { tabbyArgv } from '../helpers/cni';
import { stopAllEtcd } from '../helpers/etcd';

afterAll(stopAllEtcd);

let agents: AgentProcess[] = [];
afterEach(async () => {
  await Promise.all(agents.map((a) => stopAgent(a, 'SIGKILL')));
  agents = [];
});

const ready = (a: AgentProcess) =>
  waitFor(
    `${a.node.name}'s agent to be ready`,
    async () => {
      if (a.child.exitCode !== null) throw new Error(`the agent exited: ${a.log()}`);
      return (await httpGet(a, '/healthz')).status === 200;
    },
    20_000,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}\nagent log:\n${a.log()}`);
  });

const pool = (name: string, spec: Record<string, unknown>) =>
  JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec });

const onLan = (n: SimNode) => n.name === 'node-a' || n.name === 'node-b';

describe('a dual-stack cluster in etcd', () => {
  let c: SimCluster;
  beforeAll(async () => {
    c = await SimCluster.create(tabbyArgv(), { lan: '172.16.10.0/24', far: '172.16.20.0/24', ipv6: 'dual' });
    c.useEtcd(await c.startEtcd());
  });
  afterAll(async () => {
    await c?.destroy();
  });

  test('agents register IPv6 addresses and tunnels; v6 blocks are routed per subnet; pods talk and are NATed on both families', async () => {
    const a = c.node('node-a');
    const manifest = path.join(c.dir, 'pools.yaml');
    fs.writeFileSync(
      manifest,
      [
        pool('v4', { cidr: '192.168.0.0/16', vxlanMode: 'CrossSubnet', natOutgoing: true }),
        pool('v6', { cidr: 'fd00:10::/48', blockSize: 122, vxlanMode: 'CrossSubnet', natOutgoing: true }),
      ].join('\n---\n') + '\n',
    );
    const applied = await c.cli(a, 'apply', '--config', a.conflist, '-f', manifest);
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    for (const n of c.nodes) {
      const ag = startAgent(c, n);
      agents.push(ag);
      await ready(ag);
    }
    type Row = { name: string; address6?: string; vxlanTunnelAddrV6?: string; vtepMacV6?: string };
    const rows: Row[] = await waitFor('every node registered with an IPv6 tunnel address', async () => {
      const r = await c.cli(a, 'get', 'nodes', '-o', 'json', '--config', a.conflist);
      const list: Row[] = JSON.parse(r.stdout);
      return list.length === 3 && list.every((x) => x.vxlanTunnelAddrV6) && list;
    });
    for (const n of c.nodes) {
      expect(rows.find((x) => x.name === n.name)).toMatchObject({
        address6: `${n.ip6}/64`,
        vxlanTunnelAddrV6: expect.stringMatching(/^fd00:10:/),
        vtepMacV6: expect.stringMatching(/^66:/),
      });
    }
    const tunnel6 = new Map(rows.map((x) => [x.name, x.vxlanTunnelAddrV6!]));
    // Every node routes every other's v6 block: directly in its /64, through vxlan-v6.tabby across.
    for (const n of c.nodes) {
      for (const p of c.nodes.filter((x) => x !== n)) {
        const dev = onLan(n) && onLan(p) ? 'eth0' : 'vxlan-v6.tabby';
        await waitFor(`${n.name} to route ${p.name}'s IPv6 block over ${dev}`, async () =>
          (await c.tabbyRoutes6(n)).some(
            (r) => r.dev === dev && (dev === 'eth0' ? r.gateway === p.ip6 : r.gateway === tunnel6.get(p.name)),
          ),
        );
      }
    }
    const pods: Pod[] = await Promise.all(c.nodes.map((n) => c.addPod(n.name, `e6-${n.name.slice(-1)}`)));
    const problems: string[] = [];
    for (const p of pods) {
      if (!p.ip6 || p.ip.includes(':')) problems.push(`${p.name}: addresses ${JSON.stringify(p.result.ips)}`);
      if (p.result.interfaces[1].mtu !== 1430) problems.push(`${p.name}: MTU ${p.result.interfaces[1].mtu}`);
    }
    for (const x of pods) {
      for (const y of pods) {
        if (x === y) continue;
        const across = !(onLan(x.node) && onLan(y.node));
        const before = await c.txPackets(x.node.ns, 'vxlan-v6.tabby');
        const ok6 = await c.reachable(x.ns, y.ip6!, 1430 - 48);
        const encap = (await c.txPackets(x.node.ns, 'vxlan-v6.tabby')) > before;
        if (!ok6) problems.push(`IPv6 ${x.name} -> ${y.name}: unreachable`);
        else if (encap !== across) problems.push(`IPv6 ${x.name} -> ${y.name}: encapsulated=${encap}, want ${across}`);
        if (!(await c.reachable(x.ns, y.ip, 1430 - 28))) problems.push(`IPv4 ${x.name} -> ${y.name}: unreachable`);
        const got = await c.tcpTransfer(x.ns, y.ns, y.ip6!, 100_000);
        if (got !== 100_000) problems.push(`IPv6 TCP ${x.name} -> ${y.name}: ${got} bytes`);
      }
      const seen = await c.sourceSeenBy(x.ns, EXTERNAL_IP6);
      if (seen !== x.node.ip6) problems.push(`${x.name} -> external IPv6: seen as ${seen}, want ${x.node.ip6}`);
    }
    expect(problems).toEqual([]);
    for (const p of pods) expect((await c.delPod(p)).code).toBe(0);
  }, 120_000);

  test('a node without an agent: its first pod start claims a block of each family and registers both addresses', async () => {
    const x = await c.addNode('node-x', 'lan', { join: false });
    const r = await c.tryAddPod(x, 'e6-x');
    expect(r.run.code, r.run.stdout + r.run.stderr).toBe(0);
    const pod = r.pod!;
    expect(pod.ip).toMatch(/^192\.168\./);
    expect(pod.ip6).toMatch(/^fd00:10:/);
    const blocks = JSON.parse((await c.cli(x, 'get', 'blocks', '-o', 'json', '--config', x.conflist)).stdout);
    const mine = blocks.filter((b: { owner?: string }) => b.owner === 'node-x').map((b: { cidr: string }) => b.cidr);
    expect(mine).toEqual([expect.stringMatching(/^192\.168\..*\/26$/), expect.stringMatching(/^fd00:10:.*\/122$/)]);
    const nodes = JSON.parse((await c.cli(x, 'get', 'nodes', '-o', 'json', '--config', x.conflist)).stdout);
    expect(nodes.find((n: { name: string }) => n.name === 'node-x')).toMatchObject({
      address: `${x.ip}/24`,
      address6: `${x.ip6}/64`,
    });
    expect((await c.delPod(pod)).code).toBe(0);
  });
});
