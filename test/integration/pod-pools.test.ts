import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { clusterYaml, Pod, SimCluster, SimNode, vxlanPool } from '../helpers/cluster';
import { tabbyArgv } from '../helpers/cni';
import { annotated, cniError, inCidr, IP_ADDRS, IPV4_POOLS, nodeState, podIps } from '../helpers/pod-pools';

/**
 * Per-pod pools and fixed addresses on a cluster file (simulated nodes, the built tabby, no agent): the
 * Calico annotations in runtimeConfig as containerd passes them, CNI_ARGS IP= and args.cni.ips, which
 * wins, and every refusal as CNI error JSON that changed nothing on the node.
 */

// node-a holds 10.244.1.0/24 of pool-a (its default) and 10.250.1.0/24 of `special`, a pool whose
// nodeSelector matches no node; node-b holds 10.244.2.0/24. `off` is disabled, `spare` has no block here.
const EXTRA = [
  'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: special}\nspec: {cidr: 10.250.0.0/16, blockSize: 24, nodeSelector: "zone == \'x\'"}',
  'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: off}\nspec: {cidr: 10.251.0.0/16, blockSize: 24, disabled: true}',
  'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: spare}\nspec: {cidr: 10.252.0.0/16, blockSize: 24}',
  'apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: node-a-special}\nspec: {node: node-a, cidr: 10.250.1.0/24}',
].join('\n---\n');

let c: SimCluster;
let a: SimNode;
const pods: Record<string, Pod> = {};

beforeAll(async () => {
  c = await SimCluster.create(tabbyArgv());
  c.writeClusterFile(clusterYaml(vxlanPool('Always'), EXTRA));
  a = c.node('node-a');
});
afterAll(async () => {
  await c?.destroy();
});

async function add(name: string, annotations: Record<string, string> = {}, extra = {}, args?: string): Promise<Pod> {
  const r = await c.tryAddPod(a, name, annotated(c, a, annotations, extra), args ? { CNI_ARGS: args } : undefined);
  if (!r.pod) throw new Error(`ADD ${name}: exit ${r.run.code}: ${r.run.stdout} ${r.run.stderr}`);
  pods[name] = r.pod;
  return r.pod;
}

describe('a pod chooses its pool or address on a cluster file', () => {
  test('default pools, a named pool (nodeSelector ignored, by name or CIDR), ipAddrs, IP= and args.cni.ips', async () => {
    // The default: pools that select node-a, though it holds a block of `special` too.
    const def = await add('def');
    expect(podIps(def)).toHaveLength(1);
    expect(inCidr(def.ip, '10.244.1.0/24'), def.ip).toBe(true);

    const named = await add('named', { [IPV4_POOLS]: '["special"]' });
    expect(inCidr(named.ip, '10.250.1.0/24'), named.ip).toBe(true);
    const byCidr = await add('bycidr', { [IPV4_POOLS]: '["10.250.0.0/16"]' });
    expect(inCidr(byCidr.ip, '10.250.1.0/24'), byCidr.ip).toBe(true);

    // ipAddrs wins over the pools annotation and over CNI_ARGS IP=; the pod gets exactly that address.
    const fixed = await add(
      'fixed',
      { [IP_ADDRS]: '["10.244.1.77"]', [IPV4_POOLS]: '["special"]' },
      {},
      'IgnoreUnknown=1;K8S_POD_NAME=fixed;IP=10.244.1.78',
    );
    expect(podIps(fixed)).toEqual(['10.244.1.77']);

    // Without annotations (a runtime without the capability): IP= and args.cni.ips, in a named pool too.
    expect(podIps(await add('viaip', {}, {}, 'IgnoreUnknown=1;IP=10.250.1.50'))).toEqual(['10.250.1.50']);
    expect(podIps(await add('viaargs', {}, { args: { cni: { ips: ['10.244.1.60'] } } }))).toEqual(['10.244.1.60']);

    // The pods work: the one in `special` reaches the default one and the fixed one.
    expect(await c.reachable(named.ns, def.ip)).toBe(true);
    expect(await c.reachable(pods.viaip.ns, fixed.ip)).toBe(true);
  });

  test.each([
    [
      'an address in another node’s block',
      { [IP_ADDRS]: '["10.244.2.5"]' },
      '',
      102,
      /10\.244\.2\.5 is in block 10\.244\.2\.0\/24 of IPPool pool-a, which node node-b holds/,
    ],
    [
      'an address no node holds a block for',
      {},
      'IP=10.244.9.5',
      102,
      /10\.244\.9\.5 is in block 10\.244\.9\.0\/24 of IPPool pool-a, which no node holds .*BlockAffinity/,
    ],
    [
      'an address outside every pool',
      { [IP_ADDRS]: '["10.99.0.5"]' },
      '',
      102,
      /10\.99\.0\.5 is outside every IPPool \(pools: off/,
    ],
    [
      'a disabled pool',
      { [IPV4_POOLS]: '["off"]' },
      '',
      102,
      /ipv4pools"\]: IPPool off \(10\.251\.0\.0\/16\) is disabled/,
    ],
    [
      'an address in a disabled pool',
      { [IP_ADDRS]: '["10.251.1.5"]' },
      '',
      102,
      /10\.251\.1\.5: IPPool off .* is disabled/,
    ],
    ['an unknown pool', { [IPV4_POOLS]: '["nope"]' }, '', 7, /ipv4pools"\]: no IPPool is named "nope"/],
    [
      'a pool with no block on this node',
      { [IPV4_POOLS]: '["spare"]' },
      '',
      101,
      /node node-a holds no block of IPPool spare \(10\.252\.0\.0\/16\)/,
    ],
    [
      'an address in use',
      { [IP_ADDRS]: '["10.244.1.77"]' },
      '',
      102,
      /10\.244\.1\.77 .*in use by container tbc\w+-fixed \(eth0\)/,
    ],
    ['the gateway of a block', {}, 'IP=10.250.1.1', 102, /10\.250\.1\.1 is the gateway of block 10\.250\.1\.0\/24/],
    ['bad annotation JSON', { [IP_ADDRS]: '10.244.1.90' }, '', 7, /ipAddrs"\]: "10\.244\.1\.90" is not JSON/],
  ])('refused: %s, with CNI error JSON, and nothing changed', async (_what, ann, args, code, msg) => {
    const before = await nodeState(c, a);
    const r = await c.tryAddPod(
      a,
      `bad${Math.random().toString(16).slice(2, 8)}`,
      annotated(c, a, ann),
      args ? { CNI_ARGS: args } : undefined,
    );
    const err = cniError(r.run);
    expect(r.run.code).not.toBe(0);
    expect(err.code, r.run.stdout).toBe(code);
    expect(err.msg).toMatch(msg);
    expect(r.run.stderr).not.toMatch(/    at /); // no stack trace
    expect(await nodeState(c, a)).toBe(before);
  });

  test('DEL releases the fixed addresses like any other', async () => {
    for (const p of Object.values(pods)) expect((await c.delPod(p)).code).toBe(0);
    const again = await add('fixed2', { [IP_ADDRS]: '["10.244.1.77"]' });
    expect(podIps(again)).toEqual(['10.244.1.77']);
    expect((await c.delPod(again)).code).toBe(0);
  });
});
