// The cluster in etcd, end to end: simulated nodes (network namespaces, test/helpers/cluster.ts) run the
// built tabby against real etcd processes started inside the simulated router, where every node reaches
// them. Nodes join by themselves (`tabby agent` registers the Node and claims a block), pod starts claim
// blocks with create-if-absent transactions, and the dataplane rides out etcd failures. Needs root and
// a built dist/tabby. Every wait is on a condition with a deadline; every namespace, process and temp
// dir goes at the end, whatever happened.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { EXTERNAL_IP, Pod, SimCluster, SimNode } from '../helpers/cluster';
import { AgentProcess, httpGet, metricValue, startAgent, stopAgent, waitFor } from '../helpers/agent';
import { tabbyArgv } from '../helpers/cni';
import { EtcdCluster, stopAllEtcd } from '../helpers/etcd';
import { IP, nsExec, RunResult } from '../helpers/proc';

const tabby = tabbyArgv();
// Underlay subnets outside 192.168.0.0/16, so that Calico's documented pool can be used as it is.
const UNDERLAY = { lan: '172.16.10.0/24', far: '172.16.20.0/24' };

afterAll(stopAllEtcd);

// ---- helpers ----

let agents: AgentProcess[] = [];
afterEach(async () => {
  await Promise.all(agents.map((a) => stopAgent(a, 'SIGKILL')));
  agents = [];
});

function agent(c: SimCluster, node: SimNode, extra: string[] = []): AgentProcess {
  const a = startAgent(c, node, 9099, extra);
  agents.push(a);
  return a;
}

const health = async (a: AgentProcess) => (await httpGet(a, '/healthz')).status;
const ready = (a: AgentProcess, timeoutMs = 20_000) =>
  waitFor(
    `${a.node.name}'s agent to be ready`,
    async () => {
      if (a.child.exitCode !== null) throw new Error(`the agent exited: ${a.log()}`);
      return (await health(a)) === 200;
    },
    timeoutMs,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}\nagent log:\n${a.log()}`);
  });

/** A Calico resource as a YAML document (JSON is YAML). */
const doc = (kind: string, name: string, spec: Record<string, unknown>, metadata: Record<string, unknown> = {}) =>
  JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind, metadata: { name, ...metadata }, spec });
const ippool = (name: string, spec: Record<string, unknown>) => doc('IPPool', name, spec);

function manifest(c: SimCluster, yaml: string): string {
  const f = path.join(c.dir, `manifest-${randomBytes(4).toString('hex')}.yaml`);
  fs.writeFileSync(f, yaml);
  return f;
}

const apply = (c: SimCluster, node: SimNode, ...docs: string[]) =>
  c.cli(node, 'apply', '--config', node.conflist, '-f', manifest(c, docs.join('\n---\n') + '\n'));

async function mustApply(c: SimCluster, node: SimNode, ...docs: string[]): Promise<void> {
  const r = await apply(c, node, ...docs);
  if (r.code !== 0) throw new Error(`tabby apply: exit ${r.code}: ${r.stdout}${r.stderr}`);
}

interface BlockRow {
  cidr: string;
  pool?: string;
  owner?: string;
  claimed?: string;
  inUse?: number;
}

async function getBlocks(c: SimCluster, node: SimNode): Promise<BlockRow[]> {
  const r = await c.cli(node, 'get', 'blocks', '-o', 'json', '--config', node.conflist);
  if (r.code !== 0) throw new Error(`tabby get blocks: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Every key under a prefix as etcd holds it (etcdctl, independent of tabby). */
async function etcdKeys(etcd: EtcdCluster, prefix: string): Promise<{ key: string; value: string }[]> {
  const r = await etcd.ctl('get', '--prefix', prefix, '-w', 'json');
  if (r.code !== 0) throw new Error(`etcdctl get: ${r.stderr}`);
  const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
  return ((JSON.parse(r.stdout).kvs ?? []) as { key: string; value: string }[]).map((kv) => ({
    key: b64(kv.key),
    value: b64(kv.value),
  }));
}

/** The block records under a tabby prefix, parsed (a value that is not JSON is kept as text). */
async function blockRecords(etcd: EtcdCluster, prefix = '/tabby') {
  return (await etcdKeys(etcd, `${prefix}/ipam/v2/assignment/`)).map(({ key, value }) => {
    let record: { cidr?: string; affinity?: string } | undefined;
    try {
      record = JSON.parse(value);
    } catch {
      record = undefined;
    }
    return { key, value, record, owner: record?.affinity?.startsWith('host:') ? record.affinity.slice(5) : undefined };
  });
}

/** The store's current revision (changes with every write). */
async function etcdRevision(etcd: EtcdCluster): Promise<string> {
  const r = await etcd.ctl('get', '/', '--prefix', '--keys-only', '--limit', '1', '-w', 'json');
  if (r.code !== 0) throw new Error(`etcdctl get: ${r.stderr}`);
  return String(JSON.parse(r.stdout).header.revision);
}

/** The CNI error JSON a failed command printed on stdout. */
function cniError(r: RunResult): { code: number; msg: string; details?: string } {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`no CNI error JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
}

const ipValue = (ip: string) => ip.split('.').reduce((v, o) => v * 256 + Number(o), 0);
function inCidr(ip: string, cidr: string): boolean {
  const [net, len] = cidr.split('/');
  const size = 2 ** (32 - Number(len));
  return Math.floor(ipValue(ip) / size) === Math.floor(ipValue(net) / size);
}

function snapshotOf(c: SimCluster, node: SimNode): { blocks: string[]; revision: string } | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(c.dir, node.name, 'state', 'node.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** A node's VXLAN tunnel address as registered in etcd (`tabby get nodes`). */
async function tunnelAddr(c: SimCluster, via: SimNode, name: string): Promise<string> {
  const r = await c.cli(via, 'get', 'nodes', '-o', 'json', '--config', via.conflist);
  const n = (JSON.parse(r.stdout) as { name: string; vxlanTunnelAddr?: string }[]).find((x) => x.name === name);
  if (!n?.vxlanTunnelAddr) throw new Error(`no tunnel address for ${name}: ${r.stdout}`);
  return n.vxlanTunnelAddr;
}

const routeTo = async (c: SimCluster, node: SimNode, dst: string) =>
  (await c.tabbyRoutes(node)).find((r) => r.dst === dst);

/** What a node holds for a peer: its routes (by block), FDB entry (by underlay address), neighbours. */
async function peerState(c: SimCluster, node: SimNode, peer: { ip: string; blocks: string[]; tunnel?: string }) {
  const routes = (await c.tabbyRoutes(node)).filter((r) => peer.blocks.includes(r.dst));
  const fdb = (await c.fdb(node)).filter((f) => f.dst === peer.ip);
  const neigh = peer.tunnel ? (await c.neighbours(node)).filter((n) => n.dst === peer.tunnel) : [];
  return { routes: routes.length, fdb: fdb.length, neigh: neigh.length };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const sameSubnet = (a: SimNode, b: SimNode) =>
  a.ip.split('.').slice(0, 3).join('.') === b.ip.split('.').slice(0, 3).join('.');

// ---- 1. joining ----

/**
 * For a describe: a simulated cluster with etcd in its router, made before its tests and destroyed
 * after them; `set` receives both. With `useEtcd`, every node's conflist names that etcd.
 */
function withSimAndEtcd(
  set: (x: { c: SimCluster; etcd: EtcdCluster }) => void,
  opts: {
    useEtcd?: boolean;
    etcd?: Parameters<SimCluster['startEtcd']>[0];
    cluster?: Parameters<typeof SimCluster.create>[1];
  } = {},
): void {
  let made: SimCluster | undefined;
  beforeAll(async () => {
    made = await SimCluster.create(tabby, opts.cluster);
    const etcd = await made.startEtcd(opts.etcd);
    if (opts.useEtcd ?? true) made.useEtcd(etcd);
    set({ c: made, etcd });
  });
  afterAll(async () => {
    await made?.destroy();
  });
}

describe('four nodes join a cluster in etcd by themselves', () => {
  let c: SimCluster;
  withSimAndEtcd((x) => ({ c } = x), { cluster: { ...UNDERLAY, nodes: 4 } });

  test('each agent registers its node and claims one block; every pod pair talks, VXLAN only across subnets', async () => {
    const [a] = c.nodes;
    await mustApply(
      c,
      a,
      ippool('ippool-vxlan-cross-subnet-1', { cidr: '192.168.0.0/16', vxlanMode: 'CrossSubnet', natOutgoing: true }),
    );
    expect(await getBlocks(c, a)).toEqual([]);
    // One at a time: each joins a cluster that already has the ones before it.
    for (const [i, n] of c.nodes.entries()) {
      await ready(agent(c, n));
      const blocks = await getBlocks(c, a);
      expect(blocks.map((b) => b.owner).sort()).toEqual(
        c.nodes
          .slice(0, i + 1)
          .map((x) => x.name)
          .sort(),
      );
      for (const b of blocks) {
        expect(b.pool).toBe('ippool-vxlan-cross-subnet-1');
        expect(b.cidr).toMatch(/^192\.168\.\d+\.\d+\/26$/);
        expect(b.claimed).toBeTruthy();
      }
    }
    const blocks = await getBlocks(c, a);
    expect(new Set(blocks.map((b) => b.cidr)).size).toBe(4);
    for (const n of c.nodes) n.block = blocks.find((b) => b.owner === n.name)!.cidr;
    const nodes = JSON.parse((await c.cli(a, 'get', 'nodes', '-o', 'json', '--config', a.conflist)).stdout);
    for (const n of c.nodes) {
      expect(nodes.find((x: { name: string }) => x.name === n.name)).toMatchObject({
        address: `${n.ip}/24`,
        vxlanTunnelAddr: n.block.replace(/\.(\d+)\/26$/, (_, o) => `.${Number(o) + 1}`),
        vtepMac: expect.stringMatching(/^66:/),
      });
    }

    // Every node routes every other's block: directly on its subnet, through vxlan.tabby across.
    for (const n of c.nodes) {
      for (const p of c.nodes.filter((x) => x !== n)) {
        const dev = sameSubnet(n, p) ? 'eth0' : 'vxlan.tabby';
        await waitFor(
          `${n.name} to route ${p.name}'s block over ${dev}`,
          async () => (await routeTo(c, n, p.block))?.dev === dev,
        );
      }
    }

    const pods = await Promise.all(c.nodes.map((n) => c.addPod(n.name, `join-${n.name.slice(-1)}`)));
    for (const p of pods) {
      expect(inCidr(p.ip, p.node.block), `${p.name} ${p.ip} in ${p.node.block}`).toBe(true);
      expect(p.result.interfaces[1].mtu).toBe(1450);
    }
    await c.countUnderlay();
    const problems: string[] = [];
    for (const x of pods) {
      for (const y of pods) {
        if (x === y) continue;
        const across = !sameSubnet(x.node, y.node);
        const before = await c.txPackets(x.node.ns, 'vxlan.tabby');
        const ok = await c.reachable(x.ns, y.ip, 1422);
        const encap = (await c.txPackets(x.node.ns, 'vxlan.tabby')) > before;
        if (!ok) problems.push(`${x.name} -> ${y.name}: unreachable`);
        else if (encap !== across) problems.push(`${x.name} -> ${y.name}: encapsulated=${encap}, want ${across}`);
      }
    }
    for (const x of pods) {
      const counts = await c.underlayCounts(x.node);
      for (const y of pods) {
        if (x === y) continue;
        const n = counts.get(y.node.name) ?? { ipip: 0, vxlan: 0, plain: 0 };
        const ok = sameSubnet(x.node, y.node)
          ? n.plain > 0 && n.vxlan === 0 && n.ipip === 0
          : n.vxlan > 0 && n.plain === 0 && n.ipip === 0;
        if (!ok) problems.push(`underlay ${x.node.name} -> ${y.node.name}: ${JSON.stringify(n)}`);
      }
      const seen = await c.sourceSeenBy(x.ns, EXTERNAL_IP);
      if (seen !== x.node.ip) problems.push(`${x.name} -> external: seen as ${seen}, want ${x.node.ip} (natOutgoing)`);
    }
    expect(problems).toEqual([]);
    // INUSE counts the addresses of the asking node's own blocks (its IPAM store); yaml says the same.
    const rows = await getBlocks(c, a);
    expect(rows.find((r) => r.owner === 'node-a')?.inUse).toBe(1);
    expect(rows.find((r) => r.owner === 'node-b')?.inUse).toBeUndefined();
    const table = await c.cli(a, 'get', 'blocks', '--config', a.conflist);
    expect(table.stdout.split('\n')[0].split(/\s+/)).toEqual(['CIDR', 'POOL', 'OWNER', 'CLAIMED', 'INUSE']);
    const yaml = await c.cli(a, 'get', 'blocks', '-o', 'yaml', '--config', a.conflist);
    expect(yaml.stdout).toMatch(new RegExp(`cidr: ${rows[0].cidr.replace(/[./]/g, '\\$&')}`));

    // The pool switched to vxlanMode Always: the agents move same-subnet peers into the tunnel.
    await mustApply(
      c,
      a,
      ippool('ippool-vxlan-cross-subnet-1', { cidr: '192.168.0.0/16', vxlanMode: 'Always', natOutgoing: true }),
    );
    const b = c.node('node-b');
    await waitFor(
      "node-a to route node-b's block through the tunnel",
      async () => (await routeTo(c, a, b.block))?.dev === 'vxlan.tabby',
    );
    const before = await c.txPackets(a.ns, 'vxlan.tabby');
    expect(await c.reachable(pods[0].ns, pods[1].ip, 1422)).toBe(true);
    expect(await c.txPackets(a.ns, 'vxlan.tabby')).toBeGreaterThan(before);
    for (const p of pods) expect((await c.delPod(p)).code).toBe(0);
  }, 90_000);
});

// ---- 2. racing claims ----

describe('claimants race for the blocks of a small pool', () => {
  let c: SimCluster;
  let etcd: EtcdCluster;
  /** How long the 20 racing ADDs of the first test took: the window the second one kills within. */
  let raceMs = 2000;
  const POOL = ippool('race', { cidr: '10.77.0.0/26', blockSize: 29, vxlanMode: 'Never', ipipMode: 'Never' });
  withSimAndEtcd((x) => ({ c, etcd } = x), { useEtcd: false });

  /** `n` claimant hosts on the lan, each with its own conflist (node name, state and IPAM dirs), on `prefix`. */
  async function claimants(prefix: string, tag: string, n: number): Promise<SimNode[]> {
    c.useEtcd(etcd, { prefix }, []);
    const out: SimNode[] = [];
    for (let i = 0; i < n; i++) out.push(await c.addNode(`${tag}-${i}`, 'lan', { join: false }));
    return out;
  }

  /** Starts ADD of a pod (into namespace `podNs`) on a claimant as a process of its own, so that it can be killed. */
  function spawnAdd(node: SimNode, podNs: string): { kill(): void; done: Promise<RunResult> } {
    const netns = `/var/run/netns/${podNs}`;
    const child = spawn(IP, ['netns', 'exec', node.ns, ...tabby], {
      env: {
        PATH: process.env.PATH,
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: podNs,
        CNI_NETNS: netns,
        CNI_IFNAME: 'eth0',
        CNI_PATH: path.dirname(tabby[tabby.length - 1]),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify(c.pluginConfig(node)));
    const done = new Promise<RunResult>((resolve) =>
      child.on('close', (code, signal) => resolve({ code: code ?? 128, stdout, stderr: stderr + (signal ?? '') })),
    );
    return { kill: () => child.kill('SIGKILL'), done };
  }

  test('20 ADDs at once for 8 blocks: 8 win one block each, 12 fail with 101 naming the pool', async () => {
    const nodes = await claimants('/race1', 'claimant', 20);
    await mustApply(c, nodes[0], POOL);
    const t0 = Date.now();
    const runs = await Promise.all(nodes.map((n, i) => c.tryAddPod(n, `race1-${i}`)));
    raceMs = Date.now() - t0;
    const records = await blockRecords(etcd, '/race1');
    expect(records).toHaveLength(8);
    for (const r of records) {
      expect(r.record?.cidr?.replace('/', '-'), r.key).toBe(r.key.split('/').pop());
      expect(r.owner, r.value).toMatch(/^claimant-\d+$/);
    }
    expect(new Set(records.map((r) => r.record!.cidr)).size).toBe(8);
    expect(new Set(records.map((r) => r.owner)).size).toBe(8); // nobody got two
    const winners = nodes.filter((_, i) => runs[i].run.code === 0);
    expect(winners.map((n) => n.name).sort()).toEqual(records.map((r) => r.owner).sort());
    for (const [i, n] of nodes.entries()) {
      const { pod, run } = runs[i];
      if (pod) {
        const block = records.find((r) => r.owner === n.name)!.record!.cidr!;
        expect(inCidr(pod.ip, block), `${n.name}: ${pod.ip} in ${block}`).toBe(true);
      } else {
        const err = cniError(run);
        expect(err.code, run.stdout).toBe(101);
        expect(err.msg).toMatch(/pool race \(10\.77\.0\.0\/26\) is full/);
      }
    }
    expect(runs.filter((r) => r.run.code !== 0)).toHaveLength(12);
  }, 60_000);

  test('claimants SIGKILLed at random moments leave no ownerless block; fresh claimants fill the pool to 8', async () => {
    const nodes = await claimants('/race2', 'k', 20);
    await mustApply(c, nodes[0], POOL);
    // Each claimant is killed at a random moment within the time the first race took (so some finish).
    const pods = await Promise.all(nodes.map((_, i) => c.podNetns(`race2-${i}`)));
    const started = nodes.map((n, i) => spawnAdd(n, pods[i]));
    const timers = started.map((s) => setTimeout(() => s.kill(), Math.floor(Math.random() * raceMs)));
    const results = await Promise.all(started.map((s) => s.done));
    timers.forEach(clearTimeout);
    const killed = (r: RunResult) => r.code !== 0 && /SIGKILL/.test(r.stderr);

    const records = await blockRecords(etcd, '/race2');
    expect(records.length).toBeLessThanOrEqual(8);
    for (const r of records) {
      expect(r.record, `${r.key}: ${r.value}`).toBeDefined();
      expect(r.owner, `${r.key}: ${r.value}`).toMatch(/^k-\d+$/);
      expect(r.record!.cidr!.replace('/', '-')).toBe(r.key.split('/').pop());
    }
    expect(new Set(records.map((r) => r.owner)).size).toBe(records.length);
    const owners = new Set(records.map((r) => r.owner));
    for (const [i, r] of results.entries()) {
      if (r.code === 0) expect(owners.has(nodes[i].name), `${nodes[i].name} succeeded`).toBe(true);
      else if (!killed(r)) expect(cniError(r).code, r.stdout + r.stderr).toBe(101);
    }
    const killedRunning = results.filter(killed).length;
    console.log(
      `race2 (kills within ${raceMs} ms): ${killedRunning} claimant(s) killed mid-ADD, ` +
        `${results.filter((r) => r.code === 0).length} succeeded, ${records.length} block(s) claimed`,
    );

    // Fresh claimants: every block nobody owns can still be claimed, and the pool fills to exactly 8.
    const free = 8 - records.length;
    const fresh = await claimants('/race2', 'f', free + 2);
    const runs = await Promise.all(fresh.map((n, i) => c.tryAddPod(n, `race2-f${i}`)));
    const after = await blockRecords(etcd, '/race2');
    expect(after).toHaveLength(8);
    expect(new Set(after.map((r) => r.record?.cidr)).size).toBe(8);
    expect(runs.filter((r) => r.run.code === 0)).toHaveLength(free);
    for (const r of runs.filter((x) => x.run.code !== 0)) expect(cniError(r.run).code).toBe(101);
  }, 90_000);
});

// ---- 3. etcd faults ----

describe('etcd goes away and comes back', () => {
  let c: SimCluster;
  let etcd: EtcdCluster;
  const GRACE_S = 4;
  withSimAndEtcd((x) => ({ c, etcd } = x), { cluster: { ...UNDERLAY, nodes: 4 } });

  test('pods start from the node snapshot, a block needs etcd (code 11), /healthz after the grace, and a change made while a node was cut off reaches it', async () => {
    const [a, b, cc, d] = c.nodes;
    await mustApply(c, a, ippool('faults', { cidr: '10.90.0.0/16', blockSize: 29, vxlanMode: 'CrossSubnet' }));
    const [agA, agB, agC] = [a, b, cc].map((n) => agent(c, n, ['--datastore-grace', String(GRACE_S)]));
    await Promise.all([agA, agB, agC].map((x) => ready(x)));
    const blockOf = async () => new Map((await getBlocks(c, a)).map((r) => [r.owner!, r.cidr]));
    let blocks = await blockOf();
    await waitFor("node-a routes node-c's block", async () => !!(await routeTo(c, a, blocks.get('node-c')!)));
    const pa = await c.addPod('node-a', 'f-pa');
    const pc = await c.addPod('node-c', 'f-pc');
    expect(await c.reachable(pa.ns, pc.ip)).toBe(true);
    // The overlay's routes (pods' own host routes, proto 117 too, are left out: pods come and go below).
    const overlayRoutes = async (n: SimNode) => (await c.tabbyRoutes(n)).filter((r) => !r.dev?.startsWith('tab'));
    const routesBefore = await overlayRoutes(a);
    expect(routesBefore.length).toBe(3); // its blackhole, node-b direct, node-c through the tunnel

    // etcd dies. Health is sampled from now on.
    const killedAt = Date.now();
    await etcd.members[0].kill('SIGKILL');
    const firstUnhealthy = new Map<string, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const x of [agA, agB, agC]) {
          if (!firstUnhealthy.has(x.node.name) && (await health(x)) === 503)
            firstUnhealthy.set(x.node.name, Date.now());
        }
        await sleep(50);
      }
    })();
    try {
      // A pod on a node with free addresses starts with no etcd round trip.
      const t0 = Date.now();
      const pa2 = await c.addPod('node-a', 'f-pa2');
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(inCidr(pa2.ip, blocks.get('node-a')!)).toBe(true);
      // node-b fills its one block; the ADD that needs another block fails with 11 (try again later).
      let failure: RunResult | undefined;
      const onB: Pod[] = [];
      for (let i = 0; i < 8 && !failure; i++) {
        const r = await c.tryAddPod(b, `f-pb${i}`);
        if (r.pod) onB.push(r.pod);
        else failure = r.run;
      }
      expect(onB.length).toBeGreaterThan(0);
      for (const p of onB) expect(inCidr(p.ip, blocks.get('node-b')!)).toBe(true);
      expect(failure, 'an ADD that needs a new block').toBeDefined();
      const err = cniError(failure!);
      expect(err.code, failure!.stdout).toBe(11);
      expect(err.msg).toMatch(/node-b needs a new address block and etcd is unreachable/);
      // DEL needs no etcd; a node with no snapshot yet cannot start a pod (11 too).
      expect((await c.delPod(pa2)).code).toBe(0);
      const fresh = await c.tryAddPod(d, 'f-pd0');
      expect(cniError(fresh.run).code, fresh.run.stdout).toBe(11);

      await waitFor(
        'every agent to report the datastore unhealthy',
        () => firstUnhealthy.size === 3,
        (GRACE_S + 15) * 1000,
      );
      for (const [name, at] of firstUnhealthy) {
        expect(at - killedAt, `${name} unhealthy after`).toBeGreaterThanOrEqual(GRACE_S * 1000);
        expect(at - killedAt, `${name} unhealthy after`).toBeLessThan((GRACE_S + 12) * 1000);
      }
      expect((await httpGet(agA, '/healthz')).body).toMatch(/datastore unreadable for \d+ s/);
    } finally {
      sampling = false;
      await sampler;
    }
    // The dataplane stays as last applied.
    expect(await overlayRoutes(a)).toEqual(routesBefore);
    expect(await c.reachable(pa.ns, pc.ip)).toBe(true);

    // node-c is cut off from etcd (connections refused at once), then etcd comes back on its data.
    const port = new URL(etcd.endpoints[0]).port;
    const cut = await nsExec(cc.ns, '/usr/sbin/nft', ['-f', '-'], {
      input: `table ip etcdcut {\n chain out {\n  type filter hook output priority 0; policy accept;\n  ip daddr ${c.routerLanIp} tcp dport ${port} reject with tcp reset\n }\n}\n`,
    });
    expect(cut.code, cut.stderr).toBe(0);
    // node-d's agent starts while etcd is still down: not ready, and it says why.
    const agD = agent(c, d, ['--datastore-grace', String(GRACE_S)]);
    await waitFor('node-d to report why it is not ready', async () =>
      /no apply has succeeded yet.*etcd/.test((await httpGet(agD, '/healthz')).body),
    );
    await etcd.members[0].restart();
    await Promise.all([agA, agB].map((x) => ready(x, 30_000)));
    expect(await health(agC)).toBe(503);
    // Nothing was forgotten: every block is still its owner's, and a new block can be claimed again.
    const kept = await blockOf();
    for (const n of ['node-a', 'node-b', 'node-c']) expect(kept.get(n)).toBe(blocks.get(n));
    const more = await c.tryAddPod(b, 'f-pb-more');
    expect(more.run.code, more.run.stdout).toBe(0);

    // While node-c cannot see it: node-d joins (its agent registers once etcd is back), node-b leaves.
    await ready(agD, 30_000);
    const bBlocks = (await getBlocks(c, a)).filter((r) => r.owner === 'node-b').map((r) => r.cidr);
    expect(bBlocks).toHaveLength(2);
    const bTunnel = await tunnelAddr(c, a, 'node-b');
    await stopAgent(agB);
    const del = await c.cli(a, 'delete', 'node', 'node-b', '--config', a.conflist);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toMatch(/Node node-b: deleted, 2 block\(s\) released/);
    blocks = await blockOf();
    const dBlock = blocks.get('node-d')!;
    const bPeer = { ip: b.ip, blocks: bBlocks, tunnel: bTunnel };
    await waitFor('node-a to forget node-b', async () => {
      const s = await peerState(c, a, bPeer);
      return s.routes + s.fdb + s.neigh === 0;
    });
    await waitFor("node-a to route node-d's block", async () => !!(await routeTo(c, a, dBlock)));
    // node-c still holds the old picture
    expect((await peerState(c, cc, bPeer)).fdb).toBe(1);
    expect(await routeTo(c, cc, dBlock)).toBeUndefined();

    // History node-c missed is compacted away: it has to read everything again, not replay.
    const compact = await etcd.ctl('compact', await etcdRevision(etcd));
    expect(compact.code, compact.stderr).toBe(0);
    await nsExec(cc.ns, '/usr/sbin/nft', ['delete', 'table', 'ip', 'etcdcut']);
    await ready(agC, 40_000);
    await waitFor(
      'node-c to forget node-b (routes, FDB entry, neighbour)',
      async () => {
        const s = await peerState(c, cc, bPeer);
        return s.routes + s.fdb + s.neigh === 0;
      },
      20_000,
    );
    await waitFor(
      "node-c to route node-d's block directly (same subnet)",
      async () => (await routeTo(c, cc, dBlock))?.dev === 'eth0',
    );
    const pd = await c.addPod('node-d', 'f-pd');
    expect(await c.reachable(pc.ns, pd.ip)).toBe(true);
    expect(await c.reachable(pa.ns, pd.ip)).toBe(true);
  }, 120_000);
});

describe('a three-member etcd loses its leader', () => {
  let c: SimCluster;
  let etcd: EtcdCluster;
  withSimAndEtcd((x) => ({ c, etcd } = x), { cluster: UNDERLAY, etcd: { members: 3 }, useEtcd: false });

  test('pod starts (claiming blocks) and agents carry on with no error to the runtime', async () => {
    const leader = await etcd.leader();
    // The leader first: every client starts there and has to fail over.
    c.useEtcd(etcd, {
      extra: { endpoints: [leader.clientUrl, ...etcd.endpoints.filter((u) => u !== leader.clientUrl)] },
    });
    const [a, b, cc] = c.nodes;
    await mustApply(c, a, ippool('ha', { cidr: '10.91.0.0/16', blockSize: 29, vxlanMode: 'Always' }));
    const ags = c.nodes.map((n) => agent(c, n, ['--datastore-grace', '5']));
    await Promise.all(ags.map((x) => ready(x)));
    let sampling = true;
    const unhealthy: string[] = [];
    const sampler = (async () => {
      while (sampling) {
        for (const x of ags) {
          const r = await httpGet(x, '/healthz');
          if (r.status !== 200) unhealthy.push(`${x.node.name}: ${r.status} ${r.body}`);
        }
        await sleep(50);
      }
    })();
    const pods: Pod[] = [];
    const failures: string[] = [];
    try {
      // 16 pods on node-a and node-c: each /29 block takes a few, so some of these ADDs claim blocks.
      for (let i = 0; i < 16; i++) {
        if (i === 4) {
          await leader.kill('SIGKILL');
          const next = await etcd.leader();
          expect(next.name).not.toBe(leader.name);
        }
        const r = await c.tryAddPod(i % 2 ? cc : a, `ha-${i}`);
        if (r.pod) pods.push(r.pod);
        else failures.push(`ADD ha-${i}: ${r.run.stdout}`);
      }
    } finally {
      sampling = false;
      await sampler;
    }
    expect(failures).toEqual([]);
    expect(unhealthy).toEqual([]);
    // Blocks claimed after the leader died reach every agent.
    const blocks = await getBlocks(c, b);
    expect(blocks.filter((x) => x.owner === 'node-a').length).toBeGreaterThan(1);
    for (const blk of blocks.filter((x) => x.owner !== 'node-b')) {
      await waitFor(`node-b to route ${blk.owner}'s block ${blk.cidr}`, async () => !!(await routeTo(c, b, blk.cidr)));
    }
    const last = (node: SimNode) => pods.filter((p) => p.node === node).pop()!;
    expect(await c.reachable(last(a).ns, last(cc).ip)).toBe(true);
    for (const x of ags) expect(x.child.exitCode).toBeNull();
  }, 90_000);
});

// ---- 4. selectors and pools ----

describe('node selectors, disabled pools, deletes and refused applies', () => {
  let c: SimCluster;
  let etcd: EtcdCluster;
  withSimAndEtcd((x) => ({ c, etcd } = x));

  test('pools by selector, a disabled pool, delete pool/node, an overlapping pool and a bad selector', async () => {
    const [a, b, cc] = c.nodes;
    const zoneA = { cidr: '10.50.0.0/16', vxlanMode: 'Always', nodeSelector: "zone == 'a'" };
    const other = { cidr: '10.60.0.0/16', vxlanMode: 'Always', nodeSelector: "zone != 'a'" };
    await mustApply(c, a, ippool('zone-a', zoneA), ippool('zone-other', other));
    const agA = agent(c, a, ['--node-labels', 'zone=a']);
    const agB = agent(c, b, ['--node-labels', 'zone=b,rack=r1']);
    const agC = agent(c, cc);
    await Promise.all([agA, agB, agC].map((x) => ready(x)));

    const blocks = await getBlocks(c, a);
    const owned = (n: SimNode) => blocks.filter((x) => x.owner === n.name);
    expect(owned(a).map((x) => x.pool)).toEqual(['zone-a']);
    expect(owned(b).map((x) => x.pool)).toEqual(['zone-other']);
    expect(owned(cc).map((x) => x.pool)).toEqual(['zone-other']);
    const nodes = JSON.parse((await c.cli(a, 'get', 'nodes', '-o', 'json', '--config', a.conflist)).stdout);
    expect(nodes.find((x: { name: string }) => x.name === 'node-b').labels).toBe('zone=b,rack=r1');
    const pa = await c.addPod('node-a', 'sel-pa');
    const pb = await c.addPod('node-b', 'sel-pb');
    expect(inCidr(pa.ip, '10.50.0.0/16')).toBe(true);
    expect(inCidr(pb.ip, '10.60.0.0/16')).toBe(true);
    await waitFor("node-a routes node-b's block", async () => !!(await routeTo(c, a, owned(b)[0].cidr)));
    expect(await c.reachable(pa.ns, pb.ip)).toBe(true);

    // Disabled: nothing new from it; what it handed out keeps working.
    await mustApply(c, a, ippool('zone-other', { ...other, disabled: true }));
    await waitFor("node-b's snapshot without the disabled pool's block", () => snapshotOf(c, b)?.blocks.length === 0);
    const count = (await blockRecords(etcd)).length;
    const refused = await c.tryAddPod(b, 'sel-pb2');
    const err = cniError(refused.run);
    expect(err.code, refused.run.stdout).toBe(101);
    expect(err.msg).toMatch(/zone-other: disabled/);
    expect(err.msg).toMatch(/zone-a: nodeSelector .*does not match/);
    expect(await blockRecords(etcd)).toHaveLength(count);
    expect(await c.reachable(pa.ns, pb.ip)).toBe(true);

    // delete pool: refused while nodes hold its blocks; an unused one goes.
    let r = await c.cli(a, 'delete', 'pool', 'zone-other', '--config', a.conflist);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/IPPool zone-other: nodes still hold 2 of its blocks \(node-(b|c), node-(b|c)\)/);
    expect((await etcdKeys(etcd, '/tabby/resources/v3/projectcalico.org/ippools/zone-other')).length).toBe(1);
    await mustApply(c, a, ippool('spare', { cidr: '10.70.0.0/16' }));
    r = await c.cli(a, 'delete', 'pool', 'spare', '--config', a.conflist);
    expect(r.code, r.stderr).toBe(0);

    // Refused applies write nothing, not even their valid documents.
    const rev = await etcdRevision(etcd);
    r = await apply(c, a, ippool('fresh', { cidr: '10.80.0.0/16' }), ippool('overlap', { cidr: '10.50.128.0/17' }));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /IPPool overlap: spec\.cidr: 10\.50\.128\.0\/17 overlaps IPPool zone-a \(10\.50\.0\.0\/16\)/,
    );
    r = await apply(c, a, ippool('bad-selector', { cidr: '10.81.0.0/16', nodeSelector: "zone == 'a" }));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/IPPool bad-selector\).*spec\.nodeSelector: .*at position \d+/);
    expect(await etcdRevision(etcd)).toBe(rev);

    // delete node: its blocks are released, and every peer drops its routes, FDB entry and neighbour.
    const cBlocks = owned(cc).map((x) => x.cidr);
    const cPeer = { ip: cc.ip, blocks: cBlocks, tunnel: await tunnelAddr(c, a, 'node-c') };
    for (const n of [a, b]) {
      await waitFor(`${n.name} to know node-c`, async () => {
        const s = await peerState(c, n, cPeer);
        return s.routes === 1 && s.fdb === 1 && s.neigh === 1;
      });
    }
    await stopAgent(agC);
    r = await c.cli(a, 'delete', 'node', 'node-c', '--config', a.conflist);
    expect(r.code, r.stderr).toBe(0);
    expect((await blockRecords(etcd)).filter((x) => x.owner === 'node-c')).toEqual([]);
    for (const n of [a, b]) {
      await waitFor(`${n.name} to forget node-c`, async () => {
        const s = await peerState(c, n, cPeer);
        return s.routes + s.fdb + s.neigh === 0;
      });
    }
    expect(await c.reachable(pa.ns, pb.ip)).toBe(true);

    // --force deletes the pool with its blocks: peers stop routing them.
    r = await c.cli(a, 'delete', 'pool', 'zone-other', '--force', '--config', a.conflist);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/IPPool zone-other: deleted, with 1 block\(s\)/);
    expect((await blockRecords(etcd)).map((x) => x.owner)).toEqual(['node-a']);
    await waitFor("node-a to drop node-b's block", async () => !(await routeTo(c, a, owned(b)[0].cidr)));

    // The last pool deleted: an etcd with no IPPool is refused as an empty cluster file is. The agent
    // keeps its dataplane, and /healthz says why, until a pool is back.
    const before = await c.tabbyRoutes(a);
    r = await c.cli(a, 'delete', 'pool', 'zone-a', '--force', '--config', a.conflist);
    expect(r.code, r.stderr).toBe(0);
    await waitFor('node-a to refuse the empty datastore', async () => {
      const h = await httpGet(agA, '/healthz');
      return h.status === 503 && /refused the datastore's current state: etcd .*holds no IPPool/.test(h.body);
    });
    expect(await c.tabbyRoutes(a)).toEqual(before);
    expect(await c.linkExists(a, 'vxlan.tabby')).toBe(true);
    await mustApply(c, a, ippool('zone-a', zoneA));
    await waitFor('node-a ready again', async () => (await httpGet(agA, '/healthz')).status === 200);
  }, 120_000);
});

// ---- giving blocks back ----

describe('empty blocks given back (--block-release-after) and maxBlocksPerHost', () => {
  let c: SimCluster;
  withSimAndEtcd((x) => ({ c } = x));

  // Once, every empty block went at once, the tunnel address's too: "another block of the pool" was judged
  // from the blocks read before any was released (lib/agent/block-release.ts).
  test("a node keeps one block of a pool, its tunnel address's, when all its blocks empty at once", async () => {
    const [a] = c.nodes;
    await mustApply(c, a, ippool('rel', { cidr: '10.33.0.0/27', blockSize: 29, vxlanMode: 'Always' }));
    const agA = agent(c, a, ['--block-release-after', '1', '--resync', '1']);
    await ready(agA);
    await mustApply(c, a, doc('IPAMConfiguration', 'default', { maxBlocksPerHost: 2 }));
    await waitFor('the limit in the snapshot', () => (snapshotOf(c, a) as any)?.claim?.maxBlocksPerHost === 2);
    const pods: Pod[] = [];
    let refused: RunResult | undefined;
    for (let i = 0; i < 14 && !refused; i++) {
      const r = await c.tryAddPod(a, `rel-${i}`);
      if (r.pod) pods.push(r.pod);
      else refused = r.run;
    }
    expect(refused, 'an ADD over the limit').toBeDefined();
    expect(cniError(refused!).code).toBe(101);
    expect(cniError(refused!).msg).toMatch(
      /node node-a holds 2 blocks, the limit \(IPAMConfiguration maxBlocksPerHost 2\)/,
    );
    expect((await getBlocks(c, a)).filter((x) => x.owner === 'node-a')).toHaveLength(2);

    const tunnel = await tunnelAddr(c, a, 'node-a');
    for (const p of pods) expect((await c.delPod(p)).code).toBe(0);
    await waitFor('an empty block given back', async () => (await getBlocks(c, a)).length < 2, 30_000);
    const fullApplies = async () =>
      metricValue((await httpGet(agA, '/metrics')).body, 'tabby_agent_applies_total', '{kind="full",result="ok"}') ?? 0;
    const before = await fullApplies();
    // block release waits ~3 s after withholding a block: six resyncs give it every chance
    await waitFor('six more resyncs', async () => (await fullApplies()) >= before + 6, 30_000);
    const left = await getBlocks(c, a);
    expect(
      left.map((x) => x.owner),
      JSON.stringify(left),
    ).toEqual(['node-a']);
    expect(inCidr(tunnel, left[0].cidr), `tunnel address ${tunnel} in the block kept, ${left[0].cidr}`).toBe(true);
  }, 90_000);
});

// ---- 5. security ----

describe('etcd with TLS client certificates and password auth', () => {
  const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
  const WRONG = `wrong-${randomBytes(6).toString('hex')}`;
  let c: SimCluster;
  let etcd: EtcdCluster;
  withSimAndEtcd((x) => ({ c, etcd } = x), {
    useEtcd: false,
    etcd: { tls: true, auth: { user: 'tabby', password: PASSWORD } },
  });

  /** Logs at debug: whatever tabby might say about its datastore, it says. */
  function debugLogs(): void {
    for (const n of c.nodes) {
      const list = JSON.parse(fs.readFileSync(n.conflist, 'utf8'));
      list.plugins[0].logLevel = 'debug';
      fs.writeFileSync(n.conflist, JSON.stringify(list, null, 2));
    }
  }

  test('the right credentials work everywhere; wrong ones say so clearly; no secret in any output', async () => {
    const [a, b, cc] = c.nodes;
    const right = c.useEtcd(etcd, { username: 'tabby', password: PASSWORD });
    debugLogs();
    const outputs: string[] = [];
    const keep = (r: RunResult) => {
      outputs.push(r.stdout, r.stderr);
      return r;
    };
    keep(await apply(c, a, ippool('secure', { cidr: '10.95.0.0/16', vxlanMode: 'Always' })));
    const got = keep(await c.cli(a, 'get', 'pools', '--config', a.conflist));
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toMatch(/secure +10\.95\.0\.0\/16/);
    const agA = agent(c, a);
    await ready(agA);
    const pa = await c.addPod('node-a', 'sec-pa'); // from the agent's snapshot
    const pb = await c.tryAddPod(b, 'sec-pb'); // no agent: loads the cluster from etcd and claims a block itself
    keep(pb.run);
    expect(pb.run.code, pb.run.stdout).toBe(0);
    const bBlock = (await getBlocks(c, a)).find((x) => x.owner === 'node-b')!.cidr;
    expect(inCidr(pb.pod!.ip, bBlock)).toBe(true);
    expect(inCidr(pa.ip, (await getBlocks(c, a)).find((x) => x.owner === 'node-a')!.cidr)).toBe(true);

    // A wrong password: the CLI, ADD and the agent each say what is wrong.
    c.setDatastore(cc, { ...right, password: WRONG });
    let r = keep(await c.cli(cc, 'get', 'pools', '--config', cc.conflist));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/authentication failed \(wrong username or password\)/);
    const bad = await c.tryAddPod(cc, 'sec-pc');
    keep(bad.run);
    expect(bad.run.code).not.toBe(0);
    expect(cniError(bad.run).msg).toMatch(/authentication failed \(wrong username or password\)/);
    const agC = agent(c, cc);
    await waitFor('the agent to say why it is not ready', async () =>
      /authentication failed/.test((await httpGet(agC, '/healthz')).body),
    );
    await stopAgent(agC);

    // No client certificate: a TLS error that says which fields to set.
    const { certFile: _c, keyFile: _k, ...noCert } = right;
    c.setDatastore(cc, noCert);
    r = keep(await c.cli(cc, 'get', 'pools', '--config', cc.conflist));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/TLS handshake failed: .*set datastore\.certFile and datastore\.keyFile/);
    const noCertAdd = await c.tryAddPod(cc, 'sec-pc2');
    keep(noCertAdd.run);
    expect(cniError(noCertAdd.run).msg).toMatch(/TLS handshake failed/);

    // Credentials in the endpoint URL are refused without echoing them.
    const host = new URL(etcd.endpoints[0]).host;
    const withCreds = `https://tabby:${PASSWORD}@${host}`;
    c.setDatastore(cc, { ...right, endpoints: [withCreds] });
    r = keep(await c.cli(cc, 'get', 'pools', '--config', cc.conflist));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/datastore\.endpoints\[0\]/);
    const credAdd = await c.tryAddPod(cc, 'sec-pc3');
    keep(credAdd.run);
    expect(cniError(credAdd.run).msg).toMatch(/datastore\.endpoints\[0\]/);

    await stopAgent(agA);
    outputs.push(agA.log(), agC.log());

    const logs = fs
      .readdirSync(c.dir)
      .filter((f) => f.endsWith('.log'))
      .map((f) => fs.readFileSync(path.join(c.dir, f), 'utf8'));
    expect(logs.join('')).toMatch(/DEBUG/); // the debug level was on
    const keyLines = fs
      .readFileSync(etcd.tlsFiles!.key, 'utf8')
      .split('\n')
      .filter((l) => l.length > 20 && !l.startsWith('-----'));
    const secrets = [PASSWORD, WRONG, withCreds, ...keyLines, ...etcd.endpoints];
    const leaks = [...logs, ...outputs].flatMap((text, i) =>
      secrets.filter((s) => text.includes(s)).map((s) => `output ${i} contains ${s}`),
    );
    expect(leaks).toEqual([]);
  }, 90_000);
});
