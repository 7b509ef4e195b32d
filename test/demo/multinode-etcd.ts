import * as fs from 'node:fs';
import * as path from 'node:path';
import { printReachability } from './reachability';
import { DISABLED_OTHER_POOL, Pod, SimCluster, SimNode } from '../helpers/cluster';
import { AgentProcess, httpGet, startAgent, stopAgent, waitFor } from '../helpers/agent';
import { stopAllEtcd } from '../helpers/etcd';

/**
 * The multi-node demo with the cluster in etcd: Debian's etcd (etcd-server) runs in the simulated router
 * with a data directory of its own, where the three nodes (two subnets, 172.16.10.0/24 and 172.16.20.0/24,
 * outside the pool) reach it. Calico's documented VXLAN CrossSubnet pool is applied as it is; each node's
 * `tabby agent` registers the node and claims a block by itself (nobody writes a Node or a block). Then
 * the same table as the cluster-file demo: which pod pairs talk, encapsulated or not, and NAT. Cleans up
 * after itself (agents, etcd and its data, namespaces); exits non-zero when a check fails.
 */

const bin = path.resolve(process.argv[2] ?? 'dist/tabby');
const tabby = bin.endsWith('.js') ? [process.execPath, bin] : [bin];

/** From https://docs.tigera.io/calico/latest/networking/configuring/vxlan-ipip, verbatim. */
const CALICO_POOL = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: ippool-vxlan-cross-subnet-1
spec:
  cidr: 192.168.0.0/16
  vxlanMode: CrossSubnet
  natOutgoing: true
`;

const indent = (text: string) => text.trimEnd().replace(/^/gm, '  ');

async function main(): Promise<number> {
  const c = await SimCluster.create(tabby, {
    tag: `tabbyetcd${process.pid}`,
    lan: '172.16.10.0/24',
    far: '172.16.20.0/24',
  });
  const agents: AgentProcess[] = [];
  let failures = 0;
  const fail = (what: string) => {
    failures++;
    console.log(`  FAILED: ${what}`);
  };
  try {
    const etcd = await c.startEtcd();
    const datastore = c.useEtcd(etcd);
    console.log(`etcd ${etcd.endpoints[0]} (/usr/bin/etcd in the router namespace ${c.router}, data in ${etcd.dir})`);
    console.log(
      `each node's conflist names it instead of a cluster file:\n  "datastore": ${JSON.stringify(datastore)}`,
    );
    const a = c.node('node-a');
    const run = async (node: SimNode, ...args: string[]) => {
      const r = await c.cli(node, ...args, '--config', node.conflist);
      if (r.code !== 0) fail(`tabby ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
      return r.stdout;
    };
    for (const [name, text, why] of [
      ['ippool-vxlan-cross-subnet-1.yaml', CALICO_POOL, "Calico's documented pool, as it is"],
      ['other-pool.yaml', DISABLED_OTHER_POOL + '\n', 'a disabled pool: traffic towards it is never NATed'],
    ]) {
      const file = path.join(c.dir, name);
      fs.writeFileSync(file, text);
      console.log(`\n$ tabby apply -f ${name}   (${why})\n${indent(text)}`);
      console.log(indent(await run(a, 'apply', '-f', file)));
    }

    console.log('\nthe nodes join, one agent each:');
    for (const n of c.nodes) {
      const agent = startAgent(c, n);
      agents.push(agent);
      await waitFor(
        `${n.name}'s agent to be ready`,
        async () => (await httpGet(agent, '/healthz')).status === 200,
        30_000,
      ).catch(async (e) => {
        throw new Error(
          `${(e as Error).message}\n${(await httpGet(agent, '/healthz')).body}agent log:\n${agent.log()}`,
        );
      });
      const said = agent
        .log()
        .split('\n')
        .filter((l) => /registered node|claimed block/.test(l))
        .map((l) => l.replace(/^\S+ INFO \[\d+\] agent /, ''));
      console.log(`  ${n.name} (${n.ip}): ${said.join('; ')}`);
    }
    console.log(`\n$ tabby get blocks   (on node-a)\n${indent(await run(a, 'get', 'blocks'))}`);
    console.log(`\n$ tabby get nodes\n${indent(await run(a, 'get', 'nodes'))}`);
    // every node routes every other's block before the first pod starts
    const blocks: { cidr: string; owner: string }[] = JSON.parse(await run(a, 'get', 'blocks', '-o', 'json'));
    for (const n of c.nodes) {
      for (const b of blocks.filter((x) => x.owner !== n.name)) {
        await waitFor(`${n.name} to route ${b.cidr}`, async () =>
          (await c.tabbyRoutes(n)).some((r) => r.dst === b.cidr),
        );
      }
    }

    const pods: Pod[] = [];
    for (const n of c.nodes) pods.push(await c.addPod(n.name, `pod-${n.name.slice(-1)}`));
    console.log('');
    for (const p of pods) {
      const block = blocks.find((b) => b.owner === p.node.name)?.cidr;
      console.log(
        `${p.name} on ${p.node.name} (${p.node.ip}): ${p.ip} from its block ${block}, MTU ${p.result.interfaces[1].mtu}`,
      );
    }

    for (const f of await printReachability(c, pods)) fail(f);
    for (const p of [...c.pods]) {
      const r = await c.delPod(p);
      if (r.code !== 0) fail(`DEL ${p.name}: ${r.stdout}`);
    }
    console.log(`\nremoved ${pods.length} pods`);
    for (const agent of agents.splice(0)) {
      const exit = await stopAgent(agent, 'SIGTERM');
      if (exit.code !== 0) fail(`${agent.node.name}'s agent exited with ${exit.code ?? exit.signal}`);
    }
    console.log('stopped the agents; stopping etcd and removing its data');
  } finally {
    for (const agent of agents) await stopAgent(agent, 'SIGKILL');
    await c.destroy();
    await stopAllEtcd();
  }
  console.log(failures === 0 ? 'demo (etcd): OK' : `demo (etcd): ${failures} check(s) FAILED`);
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
