import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { clusterYaml, Pod, SimCluster, SimNode, vxlanPool } from '../helpers/cluster';
import { tabbyArgv } from '../helpers/cni';
import { nsExec } from '../helpers/proc';
import { httpGet, startAgent, stopAgent, waitFor } from '../helpers/agent';

/**
 * Safe by construction: an empty, broken or mistaken cluster description never tears down a working
 * node. Each finding of the "safe by construction" review, reproduced on three simulated nodes: the
 * kernel holds byte for byte what it held, the pods still reach each other, and every command says why.
 */

let c: SimCluster;
let pods: Pod[];
const GOOD = () => clusterYaml(vxlanPool('CrossSubnet'));

/** Everything of the node's dataplane a mistake could touch, as text. */
async function kernelState(n: SimNode): Promise<string> {
  const parts = await Promise.all(
    [
      ['/usr/sbin/ip', ['-d', 'link', 'show']],
      ['/usr/sbin/ip', ['address', 'show']],
      ['/usr/sbin/ip', ['route', 'show', 'table', 'all']],
      ['/usr/sbin/ip', ['neigh', 'show', 'nud', 'permanent']],
      ['/usr/sbin/bridge', ['fdb', 'show', 'dev', 'vxlan.tabby']],
      ['/usr/sbin/nft', ['list', 'ruleset']],
    ].map(([cmd, args]) => nsExec(n.ns, cmd as string, args as string[]).then((r) => r.stdout)),
  );
  // IPv6 link-local addresses settle on their own (duplicate address detection, then their local
  // routes): the kernel's doing, not tabby's, so they are left out
  return parts
    .join('\n---\n')
    .split('\n')
    .filter((l) => !/\bfe80::/.test(l))
    .map((l) => l.replace(/ tentative\b/, ''))
    .join('\n');
}

/** Every pod reaches every other pod. */
async function allPairsReach(): Promise<string[]> {
  const bad: string[] = [];
  for (const a of pods)
    for (const b of pods) if (a !== b && !(await c.reachable(a.ns, b.ip, 56, 3))) bad.push(`${a.name}->${b.name}`);
  return bad;
}

const states = () => Promise.all(c.nodes.map(kernelState));

beforeAll(async () => {
  c = await SimCluster.create(tabbyArgv());
  c.writeClusterFile(GOOD());
  pods = [await c.addPod('node-a', 'ga'), await c.addPod('node-b', 'gb'), await c.addPod('node-c', 'gc')];
  expect(await allPairsReach()).toEqual([]);
}, 120_000);
afterAll(async () => {
  await c?.destroy();
});

describe.each([
  ['an empty cluster file', '', 11, /holds no IPPool: refused \(the dataplane stays as last applied\)/],
  ['a YAML error', 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: x\n', 11, /refused/],
  [
    'blockSize 31',
    GOOD().replace('blockSize: 24', 'blockSize: 31'),
    11,
    /spec\.blockSize: must be between 20 and 30 .*: refused/,
  ],
  ['a file with nodes but no pool', GOOD().split('\n---\n').slice(1).join('\n---\n'), 11, /refused/],
])('%s', (_name, text, code, msg) => {
  test('is refused by reconcile, plan, status and CNI STATUS; ADD starts pods on the last applied state; nothing changes', async () => {
    const before = await states();
    c.writeClusterFile(text);
    try {
      const a = c.node('node-a');
      const rec = await c.cli(a, 'reconcile', '--config', a.conflist);
      expect(rec.code).not.toBe(0);
      expect(rec.stderr).toMatch(msg);
      for (const cmd of ['plan', 'status']) {
        const r = await c.cli(a, cmd, '--config', a.conflist);
        expect(r.code, cmd).not.toBe(0);
        expect(r.stderr, cmd).toMatch(msg);
      }
      const st = await c.cni(a, 'STATUS', '', '');
      expect(st.code).not.toBe(0);
      expect(JSON.parse(st.stdout)).toMatchObject({ code: 50, msg: expect.stringMatching(msg) });
      // a pod start on the node's last applied state: it works, and says why in the log
      const { pod, run } = await c.tryAddPod('node-a', 'lkg');
      expect(run.code, run.stdout).toBe(0);
      expect(fs.readFileSync(c.logFile(a), 'utf8')).toMatch(/this pod starts with the last applied state/);
      expect(await c.reachable(pod!.ns, pods[2].ip)).toBe(true);
      await c.delPod(pod!);
      expect(await states()).toEqual(before);
      expect(await allPairsReach()).toEqual([]);
      // a node that never applied anything has no last state: its ADD fails, naming the problem
      const fresh = { ...c.pluginConfig(a), stateDir: path.join(c.dir, 'fresh-state') };
      const f = await c.tryAddPod(a, 'fresh', fresh);
      expect(f.run.code).not.toBe(0);
      expect(JSON.parse(f.run.stdout)).toMatchObject({ code, msg: expect.stringMatching(msg) });
      expect(await states()).toEqual(before);
    } finally {
      c.writeClusterFile(GOOD());
    }
  }, 90_000);
});

test('a wrong nodeName: every command names the nodes there are and which owns this host, and nothing changes', async () => {
  const before = await states();
  const a = c.node('node-a');
  const wrong = path.join(c.dir, 'wrong.conflist');
  const list = JSON.parse(fs.readFileSync(a.conflist, 'utf8'));
  list.plugins[0].nodeName = 'Node-A';
  fs.writeFileSync(wrong, JSON.stringify(list));
  const msg =
    /node "Node-A" is not in file .*Nodes there: node-a, node-b, node-c.*Node node-a owns this host's address/;
  for (const cmd of ['plan', 'status', 'reconcile']) {
    const r = await c.cli(a, cmd, '--config', wrong);
    expect(r.code, cmd).not.toBe(0);
    expect(r.stderr, cmd).toMatch(msg);
  }
  const { run } = await c.tryAddPod(a, 'wrongname', { ...c.pluginConfig(a), nodeName: 'Node-A' });
  expect(JSON.parse(run.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(msg) });
  expect(await states()).toEqual(before);
  expect(await allPairsReach()).toEqual([]);
}, 60_000);

test('a node in the file but without a block: ADD says so before anything changes', async () => {
  const before = await states();
  c.writeClusterFile(
    GOOD().replace(
      /kind: BlockAffinity\nmetadata: \{name: node-a[^\n]*\nspec: \{node: node-a[^\n]*/,
      'kind: BlockAffinity\nmetadata: {name: other}\nspec: {node: node-x, cidr: 10.244.9.0/24}',
    ),
  );
  try {
    const a = c.node('node-a');
    const fresh = { ...c.pluginConfig(a), stateDir: path.join(c.dir, 'noblock-state') };
    const { run } = await c.tryAddPod(a, 'noblock', fresh);
    expect(JSON.parse(run.stdout)).toMatchObject({
      code: 7,
      msg: expect.stringMatching(/node node-a holds no block in file .*add a BlockAffinity/),
    });
    expect(await kernelState(a)).toEqual(before[0]);
  } finally {
    c.writeClusterFile(GOOD());
  }
}, 60_000);

test("a renamed network does not take a live pod's address: ADD names the pod, rolls back, and the pod keeps working", async () => {
  const a = c.node('node-a');
  const renamed = { ...c.pluginConfig(a), name: 'k8s-pod-network' };
  const before = await kernelState(a);
  const { run } = await c.tryAddPod(a, 'renamed', renamed);
  expect(run.code).not.toBe(0);
  const err = JSON.parse(run.stdout);
  expect(err.code).toBe(102);
  expect(err.msg).toMatch(
    new RegExp(
      `address ${pods[0].ip.replace(/\./g, '\\.')} is in use on this node: its host route goes to pod ${c.tag}-ga \\(eth0, network tabbynet\\)`,
    ),
  );
  expect(await kernelState(a)).toEqual(before);
  // the other store's reservation was rolled back
  const dir = path.join(c.dir, 'node-a', 'ipam', 'k8s-pod-network');
  expect(fs.existsSync(path.join(dir, pods[0].ip))).toBe(false);
  expect(await allPairsReach()).toEqual([]);
}, 60_000);

test("GC and ipam check judge only this node's blocks: another node's reservations in a shared data directory stay", async () => {
  const a = c.node('node-a');
  const dir = path.join(c.dir, 'node-a', 'ipam', 'tabbynet');
  const foreign = path.join(dir, '10.244.2.77'); // node-b's block
  fs.writeFileSync(foreign, 'someone-elses-pod\r\neth0');
  const cfg = { ...c.pluginConfig(a), 'cni.dev/valid-attachments': [{ containerID: `${c.tag}-ga`, ifname: 'eth0' }] };
  const r = await c.cni(a, 'GC', '', '', cfg);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(fs.existsSync(foreign)).toBe(true);
  expect(fs.existsSync(path.join(dir, pods[0].ip))).toBe(true);
  // and so does `tabby ipam check` given the node's conflist
  const chk = await c.cli(a, 'ipam', 'check', '--config', a.conflist);
  expect(chk.code, chk.stdout + chk.stderr).toBe(0);
  expect(chk.stdout).toMatch(/not checked: 1 reservation\(s\) outside this node's blocks/);
  fs.rmSync(foreign);
}, 60_000);

test('status reports each kind of drift, plan --diff shows what reconcile would change, reconcile reports each change', async () => {
  const a = c.node('node-a');
  const ip = (...args: string[]) => nsExec(a.ns, '/usr/sbin/ip', args);
  const peerRoute = '10.244.3.0/24';
  const [fdb] = await c.fdb(a);
  const [neigh] = (await c.neighbours(a)).filter((n) => n.lladdr);
  await ip('route', 'del', peerRoute);
  await nsExec(a.ns, '/usr/sbin/bridge', ['fdb', 'del', fdb.mac, 'dev', 'vxlan.tabby', 'dst', fdb.dst!]);
  await ip('neigh', 'del', neigh.dst, 'dev', 'vxlan.tabby');
  await nsExec(a.ns, '/usr/sbin/nft', ['delete', 'table', 'ip', 'tabby']);
  await ip('route', 'add', '10.244.77.0/24', 'via', '10.244.3.1', 'dev', 'vxlan.tabby', 'onlink', 'proto', '117');
  try {
    const s = JSON.parse((await c.cli(a, 'status', '--config', a.conflist, '--json')).stdout);
    const drift = s.dataplane.filter((i: { state: string }) => i.state !== 'in sync');
    expect(drift).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          kind: 'route',
          state: 'missing',
          what: expect.stringMatching(/^10\.244\.3\.0\/24 via/),
        }),
        expect.objectContaining({
          kind: 'route',
          state: 'foreign',
          what: expect.stringMatching(/^10\.244\.77\.0\/24/),
        }),
        expect.objectContaining({ kind: 'fdb', state: 'missing', what: `${fdb.mac} dst ${fdb.dst}` }),
        expect.objectContaining({ kind: 'neighbour', state: 'missing', what: `${neigh.dst} lladdr ${neigh.lladdr}` }),
        expect.objectContaining({ kind: 'nat', state: 'missing', what: 'table ip tabby' }),
      ]),
    );
    expect(drift).toHaveLength(5);
    const text = (await c.cli(a, 'status', '--config', a.conflist)).stdout;
    expect(text).toMatch(/dataplane: 5 item\(s\) not in sync/);
    expect(text).toMatch(/missing +route 10\.244\.3\.0\/24/);
    const diff = (await c.cli(a, 'plan', '--config', a.conflist, '--diff')).stdout;
    expect(diff).toMatch(/add route 10\.244\.3\.0\/24/);
    expect(diff).toMatch(/remove route 10\.244\.77\.0\/24/);
    expect(diff).toMatch(/add nat table ip tabby/);
    const rec = await c.cli(a, 'reconcile', '--config', a.conflist);
    expect(rec.code).toBe(0);
    for (const m of [
      /route 10\.244\.3\.0\/24 via/,
      /route 10\.244\.77\.0\/24: removed/,
      new RegExp(`fdb ${fdb.mac}`),
      new RegExp(`neighbour ${neigh.dst.replace(/\./g, '\\.')}`),
      /NAT table ip tabby: missing/,
    ])
      expect(rec.stdout).toMatch(m);
    expect((await c.cli(a, 'plan', '--config', a.conflist, '--diff')).stdout).toBe('nothing to change\n');
    expect((await c.cli(a, 'status', '--config', a.conflist)).stdout).toMatch(/dataplane: in sync/);
  } finally {
    await ip('route', 'del', '10.244.77.0/24').catch(() => undefined);
  }
  expect(await allPairsReach()).toEqual([]);
}, 60_000);

test('under tabby agent: an empty file is refused, /healthz says why, the dataplane stays, and a good file is applied again', async () => {
  const a = c.node('node-a');
  const agent = startAgent(c, a, 9097, ['--resync', '2']);
  try {
    await waitFor('ready', async () => (await httpGet(agent, '/healthz')).status === 200);
    const before = await states();
    c.writeClusterFile('');
    await waitFor('not ready, with the reason', async () => {
      const h = await httpGet(agent, '/healthz');
      return h.status === 503 && /refused the datastore's current state: .*holds no IPPool/.test(h.body);
    });
    // a pod start does not wait for the agent: it takes the last applied state at once
    const { pod, run } = await c.tryAddPod(a, 'agent-lkg');
    expect(run.code, run.stdout).toBe(0);
    await c.delPod(pod!);
    // two resyncs later, still nothing changed
    await new Promise((r) => setTimeout(r, 4500));
    expect(await states()).toEqual(before);
    c.writeClusterFile(GOOD());
    await waitFor('ready again', async () => (await httpGet(agent, '/healthz')).status === 200);
    expect(agent.log()).toMatch(/the datastore is accepted again/);
  } finally {
    await stopAgent(agent);
    c.writeClusterFile(GOOD());
  }
  expect(await allPairsReach()).toEqual([]);
}, 90_000);

test('tabby teardown takes the overlay down on purpose; reconcile brings it back', async () => {
  const a = c.node('node-a');
  const t = await c.cli(a, 'teardown', '--config', a.conflist);
  expect(t.code).toBe(0);
  expect(t.stdout).toMatch(/delete vxlan\.tabby/);
  expect(await c.linkExists(a, 'vxlan.tabby')).toBe(false);
  expect((await nsExec(a.ns, '/usr/sbin/nft', ['list', 'table', 'ip', 'tabby'])).code).not.toBe(0);
  expect((await c.cli(a, 'reconcile', '--config', a.conflist)).code).toBe(0);
  expect(await allPairsReach()).toEqual([]);
}, 60_000);
