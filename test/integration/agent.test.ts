import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { clusterYaml, SimCluster, SimNode, vxlanPool } from '../helpers/cluster';
import { AgentProcess, httpGet, metricValue, startAgent, stopAgent, waitFor } from '../helpers/agent';
import { tabbyArgv } from '../helpers/cni';
import { nsExec } from '../helpers/proc';

// Three simulated nodes, each running `tabby agent` on one cluster file: the agents keep routes, FDB
// entries, neighbours, tunnels and NAT current as the file changes, repair drift at their resync, and
// leave the dataplane alone when stopped. Every wait is on a condition with a deadline.

let c: SimCluster;
let agents: AgentProcess[] = [];
beforeAll(async () => {
  c = await SimCluster.create(tabbyArgv());
});
afterEach(async () => {
  await Promise.all(agents.map((a) => stopAgent(a, 'SIGKILL')));
  agents = [];
});
afterAll(async () => {
  await c?.destroy();
});

function start(node: SimNode, extra: string[] = []): AgentProcess {
  const a = startAgent(c, node, 9099, extra);
  agents.push(a);
  return a;
}

const routeTo = async (node: SimNode, dst: string) => (await c.tabbyRoutes(node)).find((r) => r.dst === dst);
const ready = (a: AgentProcess) =>
  waitFor(`${a.node.name}'s agent to be ready`, async () => (await httpGet(a, '/healthz')).status === 200);

describe('three nodes, each with its agent', () => {
  test('a node added to the file is routed to by its peers, and a removed one leaves no trace anywhere', async () => {
    const [a, b, cc] = ['node-a', 'node-b', 'node-c'].map((n) => c.node(n));
    c.writeClusterFile(clusterYaml(vxlanPool('Always'), '', ['node-a', 'node-b']));
    const agentA = start(a);
    start(b);
    const agentC = start(cc);
    await Promise.all([agents[0], agents[1]].map(ready));
    // node-c is not in the file yet: its agent refuses to apply it, and says why
    await waitFor("node-c's agent to say it is not in the file", async () =>
      /node "node-c" is not in file/.test((await httpGet(agentC, '/healthz')).body),
    );
    expect(await routeTo(a, '10.244.2.0/24')).toMatchObject({ dev: 'vxlan.tabby', gateway: '10.244.2.1' });
    expect(await routeTo(a, '10.244.3.0/24')).toBeUndefined();

    c.writeClusterFile(clusterYaml(vxlanPool('Always')));
    await ready(agentC);
    for (const n of [a, b]) {
      await waitFor(
        `${n.name} to route node-c's block`,
        async () => (await routeTo(n, '10.244.3.0/24'))?.dev === 'vxlan.tabby',
      );
      await waitFor(`${n.name}'s FDB entry for node-c`, async () =>
        (await c.fdb(n)).some((f) => f.dst === '192.168.20.13'),
      );
      await waitFor(`${n.name}'s neighbour for node-c`, async () =>
        (await c.neighbours(n)).some((x) => x.dst === '10.244.3.1'),
      );
    }
    // incremental: node-a's kernel work for one new peer is its route, neighbour and FDB entry
    await waitFor('the incremental apply in the log', () =>
      /incremental apply \(cluster file changed\): 3 change\(s\)/.test(agentA.log()),
    );

    const pa = await c.addPod('node-a', 'ag-pa');
    const pc = await c.addPod('node-c', 'ag-pc');
    expect(await c.reachable(pa.ns, pc.ip)).toBe(true);

    c.writeClusterFile(clusterYaml(vxlanPool('Always'), '', ['node-a', 'node-c']));
    for (const n of [a, cc]) {
      await waitFor(`${n.name} to drop node-b's route`, async () => !(await routeTo(n, '10.244.2.0/24')));
      await waitFor(
        `${n.name} to drop node-b's FDB entry`,
        async () => !(await c.fdb(n)).some((f) => f.dst === '192.168.10.12'),
      );
      await waitFor(
        `${n.name} to drop node-b's neighbour`,
        async () => !(await c.neighbours(n)).some((x) => x.dst === '10.244.2.1'),
      );
    }
    expect(await c.reachable(pa.ns, pc.ip)).toBe(true);
    await c.delPod(pa);
    await c.delPod(pc);
  }, 90_000);

  test('a pool switched from VXLAN CrossSubnet to Always moves same-subnet peers into the tunnel', async () => {
    const a = c.node('node-a');
    c.writeClusterFile(clusterYaml(vxlanPool('CrossSubnet')));
    for (const n of c.nodes) start(n);
    await Promise.all(agents.map(ready));
    await waitFor('node-b routed directly', async () => (await routeTo(a, '10.244.2.0/24'))?.dev === 'eth0');
    expect(await routeTo(a, '10.244.3.0/24')).toMatchObject({ dev: 'vxlan.tabby' });
    c.writeClusterFile(clusterYaml(vxlanPool('Always')));
    await waitFor('node-b through the tunnel', async () => (await routeTo(a, '10.244.2.0/24'))?.dev === 'vxlan.tabby');
    const pa = await c.addPod('node-a', 'sw-pa');
    const pb = await c.addPod('node-b', 'sw-pb');
    await c.countUnderlay();
    expect(await c.reachable(pa.ns, pb.ip)).toBe(true);
    expect((await c.underlayCounts(a)).get('node-b')?.vxlan).toBeGreaterThan(0);
    await c.delPod(pa);
    await c.delPod(pb);
  }, 90_000);

  test('a ConfigMap mount that swaps its ..data symlink is applied', async () => {
    // the cluster file becomes cluster.yaml -> ..data/cluster.yaml, ..data -> ..v1, as the kubelet lays it out
    const dir = path.dirname(c.clusterFile);
    const publish = (version: string, yaml: string) => {
      fs.mkdirSync(path.join(dir, version), { recursive: true });
      fs.writeFileSync(path.join(dir, version, 'cluster.yaml'), yaml);
      fs.symlinkSync(version, path.join(dir, '..data_tmp'));
      fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    };
    publish('..v1', clusterYaml(vxlanPool('Always'), '', ['node-a', 'node-b']));
    fs.rmSync(c.clusterFile);
    fs.symlinkSync('..data/cluster.yaml', c.clusterFile);
    try {
      const a = c.node('node-a');
      start(a);
      await ready(agents[0]);
      expect(await routeTo(a, '10.244.3.0/24')).toBeUndefined();
      publish('..v2', clusterYaml(vxlanPool('Always')));
      await waitFor(
        'node-c routed after the swap',
        async () => (await routeTo(a, '10.244.3.0/24'))?.dev === 'vxlan.tabby',
      );
    } finally {
      fs.rmSync(c.clusterFile);
      for (const f of ['..data', '..v1', '..v2']) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
      c.writeClusterFile(clusterYaml(vxlanPool('Always')));
    }
  }, 60_000);

  test('a route deleted by hand, a deleted NAT table and a deleted tunnel device come back', async () => {
    const a = c.node('node-a');
    c.writeClusterFile(clusterYaml(vxlanPool('Always')));
    const agent = start(a, ['--resync', '1']);
    await ready(agent);
    await nsExec(a.ns, '/usr/sbin/ip', ['route', 'del', '10.244.2.0/24']);
    await nsExec(a.ns, '/usr/sbin/nft', ['delete', 'table', 'ip', 'tabby']);
    await waitFor('the route back', async () => (await routeTo(a, '10.244.2.0/24'))?.dev === 'vxlan.tabby');
    await waitFor(
      'the NAT table back',
      async () => (await nsExec(a.ns, '/usr/sbin/nft', ['list', 'table', 'ip', 'tabby'])).code === 0,
    );
    await waitFor('the repair logged', () =>
      /repaired \d+ drifted object\(s\):.*route 10\.244\.2\.0\/24/.test(agent.log()),
    );
    // the route and the NAT table may be repaired by one resync or by two
    await waitFor(
      'both repairs counted',
      async () => metricValue((await httpGet(agent, '/metrics')).body, 'tabby_agent_drift_repairs_total')! >= 2,
    );
    expect(agent.log()).toMatch(/NAT table ip tabby: missing/);

    // the tunnel device is put back at once (a kernel event), not at the next resync
    await stopAgent(agent);
    const again = start(a, ['--resync', '3600']);
    await ready(again);
    await nsExec(a.ns, '/usr/sbin/ip', ['link', 'del', 'vxlan.tabby']);
    await waitFor('vxlan.tabby back', () => c.linkExists(a, 'vxlan.tabby'));
    await waitFor('its routes back', async () => (await routeTo(a, '10.244.3.0/24'))?.dev === 'vxlan.tabby');
    await waitFor('its FDB back', async () => (await c.fdb(a)).length === 2);
    await waitFor('the repair logged, with its cause', () =>
      /resync \(vxlan\.tabby was deleted\) repaired/.test(again.log()),
    );
  }, 60_000);

  test('SIGKILL in the middle of a large apply: the restarted agent converges', async () => {
    const a = c.node('node-a');
    c.writeClusterFile(clusterYaml(vxlanPool('Always')));
    const first = start(a);
    await ready(first);
    // 1,000 more peers in another subnet: one large apply, killed as soon as it is visibly under way
    const extra = Array.from({ length: 1000 }, (_, i) => {
      const ip = `172.20.${Math.floor(i / 250)}.${(i % 250) + 1}`;
      const block = `10.248.${Math.floor(i / 4)}.${(i % 4) * 64}/26`;
      return (
        `apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: big-${i}}\nspec: {bgp: {ipv4Address: ${ip}/16}}\n---\n` +
        `apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: big-${i}}\nspec: {node: big-${i}, cidr: ${block}}`
      );
    }).join('\n---\n');
    const bigPool = `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-big}\nspec: {cidr: 10.248.0.0/16, blockSize: 26, vxlanMode: Always}`;
    const small = `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-a}\nspec: {cidr: 10.244.0.0/20, blockSize: 24, vxlanMode: Always, natOutgoing: true}`;
    c.writeClusterFile(clusterYaml(small, `${bigPool}\n---\n${extra}`));
    await waitFor('the large apply to start', async () => (await c.tabbyRoutes(a)).length > 3, 30_000);
    await stopAgent(first, 'SIGKILL');
    const after = start(a);
    await ready(after);
    await waitFor(
      'all 1,000 new routes',
      async () => (await c.tabbyRoutes(a)).filter((r) => r.dev === 'vxlan.tabby').length === 1002,
      30_000,
    );
    await waitFor('all FDB entries', async () => (await c.fdb(a)).length === 1002, 30_000);
    // and back: every one of them goes again
    c.writeClusterFile(clusterYaml(vxlanPool('Always')));
    await waitFor('the large set gone', async () => (await c.tabbyRoutes(a)).length === 3, 30_000);
    await waitFor('its FDB entries gone', async () => (await c.fdb(a)).length === 2, 30_000);
    await waitFor('its neighbours gone', async () => (await c.neighbours(a)).length === 2, 30_000);
  }, 120_000);

  test('SIGTERM leaves the dataplane in place; ADD works with no agent, and applies a change itself', async () => {
    const a = c.node('node-a');
    c.writeClusterFile(clusterYaml(vxlanPool('Always'), '', ['node-a', 'node-b']));
    const agent = start(a);
    await ready(agent);
    const pa = await c.addPod('node-a', 'term-pa');
    const pb = await c.addPod('node-b', 'term-pb');
    const exit = await stopAgent(agent, 'SIGTERM');
    expect(exit.code).toBe(0);
    expect(agent.log()).toMatch(/SIGTERM: stopping; the dataplane stays as applied/);
    expect(await routeTo(a, '10.244.2.0/24')).toMatchObject({ dev: 'vxlan.tabby' });
    expect(await c.reachable(pa.ns, pb.ip)).toBe(true);

    const status = await c.cli(a, 'status', '--config', a.conflist, '--json');
    expect(JSON.parse(status.stdout).mode).toBe('no-agent');
    c.writeClusterFile(clusterYaml(vxlanPool('Always')));
    const pa2 = await c.addPod('node-a', 'term-pa2'); // no agent: this ADD applies the change
    expect(await routeTo(a, '10.244.3.0/24')).toMatchObject({ dev: 'vxlan.tabby' });
    for (const p of [pa, pb, pa2]) await c.delPod(p);
  }, 60_000);

  test('a second agent on the same node says so and exits non-zero', async () => {
    const a = c.node('node-a');
    const first = start(a);
    await ready(first);
    const second = start(a, []);
    const exit = await second.exited;
    expect(exit.code).not.toBe(0);
    expect(second.log()).toMatch(/another tabby agent is already running for state directory/);
    expect((await httpGet(first, '/healthz')).status).toBe(200);
    const status = await c.cli(a, 'status', '--config', a.conflist, '--json');
    expect(JSON.parse(status.stdout).mode).toBe('agent');
  }, 30_000);

  test('/healthz and /metrics answer, and the metrics move when the cluster changes', async () => {
    const a = c.node('node-a');
    c.writeClusterFile(clusterYaml(vxlanPool('Always'), '', ['node-a', 'node-b']));
    const agent = start(a);
    await ready(agent);
    const before = (await httpGet(agent, '/metrics')).body;
    expect(metricValue(before, 'tabby_agent_routes')).toBe(2);
    expect(metricValue(before, 'tabby_agent_peers')).toBe(1);
    expect(metricValue(before, 'tabby_agent_ready')).toBe(1);
    expect(before).toMatch(/^tabby_agent_apply_duration_seconds_bucket\{le="[\d.]+",kind="full"\} \d+$/m);
    const changedAt = metricValue(before, 'tabby_agent_last_datastore_change_timestamp_seconds')!;
    c.writeClusterFile(clusterYaml(vxlanPool('Always')));
    const after = await waitFor('the metrics to move', async () => {
      const m = (await httpGet(agent, '/metrics')).body;
      return metricValue(m, 'tabby_agent_routes') === 3 ? m : undefined;
    });
    expect(metricValue(after, 'tabby_agent_peers')).toBe(2);
    expect(metricValue(after, 'tabby_agent_fdb_entries')).toBe(2);
    expect(metricValue(after, 'tabby_agent_neighbours')).toBe(2);
    expect(metricValue(after, 'tabby_agent_last_datastore_change_timestamp_seconds')).toBeGreaterThan(changedAt);
    expect(metricValue(after, 'tabby_agent_applies_total', '{kind="incremental",result="ok"}')).toBeGreaterThanOrEqual(
      1,
    );

    // an unreadable datastore: the read refused and counted, the dataplane kept
    fs.writeFileSync(c.clusterFile, 'kind: [unterminated');
    await waitFor(
      'a refused read counted',
      async () => (metricValue((await httpGet(agent, '/metrics')).body, 'tabby_agent_refused_reads_total') ?? 0) >= 1,
    );
    expect(await routeTo(a, '10.244.3.0/24')).toMatchObject({ dev: 'vxlan.tabby' });
    c.writeClusterFile(clusterYaml(vxlanPool('Always')));
  }, 60_000);
});
