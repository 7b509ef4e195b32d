// Per-pod pools and fixed addresses on etcd (simulated nodes, real etcd in the router, the built tabby,
// no agent: every pod start reads and claims for itself). A pod that names a pool, or asks for an
// address in a block nobody holds, makes its node claim that block; the default pods of that node stay
// in the pools that select it. Every refusal is CNI error JSON and writes nothing: not to etcd (its
// revision is unchanged), not to the node (links, routes, reservations).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Pod, SimCluster, SimNode } from '../helpers/cluster';
import { tabbyArgv } from '../helpers/cni';
import { EtcdCluster, stopAllEtcd } from '../helpers/etcd';
import { annotated, cniError, inCidr, IP_ADDRS, IPV4_POOLS, nodeState, podIps } from '../helpers/pod-pools';

afterAll(stopAllEtcd);

let c: SimCluster;
let etcd: EtcdCluster;
let a: SimNode;
let b: SimNode;
const pods: Record<string, Pod> = {};

const pool = (name: string, spec: Record<string, unknown>) =>
  JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec });

async function apply(...docs: string[]): Promise<void> {
  const f = path.join(c.dir, `apply-${Date.now()}.yaml`);
  fs.writeFileSync(f, docs.join('\n---\n') + '\n');
  const r = await c.cli(a, 'apply', '--config', a.conflist, '-f', f);
  if (r.code !== 0) throw new Error(`tabby apply: exit ${r.code}: ${r.stdout}${r.stderr}`);
}

/** Block records in etcd: cidr -> owner (etcdctl, independent of tabby). */
async function blocks(): Promise<Record<string, string>> {
  const r = await etcd.ctl('get', '--prefix', '/tabby/ipam/v2/assignment/', '-w', 'json');
  const out: Record<string, string> = {};
  for (const kv of (JSON.parse(r.stdout).kvs ?? []) as { value: string }[]) {
    const rec = JSON.parse(Buffer.from(kv.value, 'base64').toString('utf8'));
    out[rec.cidr] = String(rec.affinity).replace(/^host:/, '');
  }
  return out;
}

async function revision(): Promise<string> {
  const r = await etcd.ctl('get', '/', '--prefix', '--keys-only', '--limit', '1', '-w', 'json');
  return String(JSON.parse(r.stdout).header.revision);
}

async function add(node: SimNode, name: string, ann: Record<string, string> = {}, args?: string): Promise<Pod> {
  const r = await c.tryAddPod(node, name, annotated(c, node, ann), args ? { CNI_ARGS: args } : undefined);
  if (!r.pod) throw new Error(`ADD ${name}: exit ${r.run.code}: ${r.run.stdout} ${r.run.stderr}`);
  pods[name] = r.pod;
  return r.pod;
}

const blockOf = (all: Record<string, string>, ip: string) => Object.keys(all).find((k) => inCidr(ip, k));

beforeAll(async () => {
  c = await SimCluster.create(tabbyArgv());
  etcd = await c.startEtcd();
  c.useEtcd(etcd);
  [a, b] = c.nodes;
  await apply(
    pool('main', { cidr: '10.60.0.0/16', blockSize: 26 }),
    pool('special', { cidr: '10.61.0.0/16', blockSize: 26, nodeSelector: "zone == 'x'", assignmentMode: 'Manual' }),
    pool('off', { cidr: '10.62.0.0/16', blockSize: 26, disabled: true }),
  );
});
afterAll(async () => {
  await c?.destroy();
});

describe('a pod chooses its pool or address on etcd', () => {
  let bBlock: string;

  test('a named pool and a requested address make the node claim that block; default pods stay in the default pools', async () => {
    const pb = await add(b, 'b-def');
    let all = await blocks();
    bBlock = blockOf(all, pb.ip)!;
    expect(all[bBlock]).toBe('node-b');
    expect(inCidr(pb.ip, '10.60.0.0/16')).toBe(true);

    const def = await add(a, 'a-def');
    expect(inCidr(def.ip, '10.60.0.0/16'), def.ip).toBe(true);

    // `special` selects no node and is Manual: named, it gives node-a a block.
    const named = await add(a, 'a-named', { [IPV4_POOLS]: '["special"]' });
    expect(inCidr(named.ip, '10.61.0.0/16'), named.ip).toBe(true);
    all = await blocks();
    expect(all[blockOf(all, named.ip)!]).toBe('node-a');
    // ... and only pods that name it get addresses there.
    const def2 = await add(a, 'a-def2');
    expect(inCidr(def2.ip, '10.60.0.0/16'), def2.ip).toBe(true);

    // ipAddrs in a block nobody holds: node-a claims exactly that block.
    expect(all['10.60.200.0/26']).toBeUndefined();
    const fixed = await add(a, 'a-fixed', { [IP_ADDRS]: '["10.60.200.10"]' }, 'IgnoreUnknown=1;IP=10.60.200.11');
    expect(podIps(fixed)).toEqual(['10.60.200.10']);
    expect((await blocks())['10.60.200.0/26']).toBe('node-a');

    // CNI_ARGS IP= alone (no annotations), in the Manual pool: claimed too.
    expect(podIps(await add(a, 'a-ip', {}, 'IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.61.100.10'))).toEqual([
      '10.61.100.10',
    ]);
    expect((await blocks())['10.61.100.0/26']).toBe('node-a');

    // A pool applied after node-a's snapshot was written is found in etcd (no agent keeps it current here).
    await apply(pool('late', { cidr: '10.63.0.0/16', blockSize: 26 }));
    const late = await add(a, 'a-late', { [IPV4_POOLS]: '["late"]' });
    expect(inCidr(late.ip, '10.63.0.0/16'), late.ip).toBe(true);

    expect(await c.reachable(named.ns, def.ip)).toBe(true);
    expect(await c.reachable(fixed.ns, pods['a-ip'].ip)).toBe(true);
  });

  test('refusals: CNI error JSON with the right code, no etcd write, nothing on the node', async () => {
    const inB = bBlock.replace(/\.(\d+)\/26$/, (_, o) => `.${Number(o) + 20}`);
    const cases: [string, Record<string, string>, string, number, RegExp][] = [
      [
        'another node’s block',
        { [IP_ADDRS]: `["${inB}"]` },
        '',
        102,
        new RegExp(
          `${inB.replace(/\./g, '\\.')} is in block ${bBlock.replace(/[./]/g, '\\$&')} of IPPool main, which node node-b holds`,
        ),
      ],
      ['the same by IP=', {}, `IP=${inB}`, 102, /which node node-b holds/],
      ['outside every pool', { [IP_ADDRS]: '["10.99.0.5"]' }, '', 102, /10\.99\.0\.5 is outside every IPPool/],
      ['a disabled pool', { [IPV4_POOLS]: '["off"]' }, '', 102, /IPPool off \(10\.62\.0\.0\/16\) is disabled/],
      [
        'an address in a disabled pool',
        { [IP_ADDRS]: '["10.62.3.5"]' },
        '',
        102,
        /10\.62\.3\.5: IPPool off .* is disabled/,
      ],
      ['an unknown pool', { [IPV4_POOLS]: '["nope"]' }, '', 7, /no IPPool is named "nope"/],
      [
        'an address in use',
        { [IP_ADDRS]: '["10.60.200.10"]' },
        '',
        102,
        /10\.60\.200\.10 .*in use by container tbc\w+-a-fixed \(eth0\)/,
      ],
      [
        'the network address of an unclaimed block',
        { [IP_ADDRS]: '["10.60.201.0"]' },
        '',
        102,
        /network address of block 10\.60\.201\.0\/26/,
      ],
    ];
    for (const [what, ann, args, code, msg] of cases) {
      const rev = await revision();
      const before = await nodeState(c, a);
      const r = await c.tryAddPod(
        a,
        `bad-${cases.findIndex((x) => x[0] === what)}`,
        annotated(c, a, ann),
        args ? { CNI_ARGS: args } : undefined,
      );
      const err = cniError(r.run);
      expect(err.code, `${what}: ${r.run.stdout}`).toBe(code);
      expect(err.msg, what).toMatch(msg);
      expect(await revision(), `${what}: etcd written`).toBe(rev);
      expect(await nodeState(c, a), `${what}: node changed`).toBe(before);
    }
    expect((await blocks())['10.60.201.0/26']).toBeUndefined();
  });

  test('DEL releases them; the address is free for another pod', async () => {
    for (const p of Object.values(pods)) expect((await c.delPod(p)).code).toBe(0);
    const again = await add(a, 'a-fixed2', { [IP_ADDRS]: '["10.60.200.10"]' });
    expect(podIps(again)).toEqual(['10.60.200.10']);
    expect((await c.delPod(again)).code).toBe(0);
  });
});
