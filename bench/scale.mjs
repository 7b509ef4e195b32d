// Cluster size: what `tabby agent` and ADD cost on one node of a cluster of N nodes, for several N side by
// side in one run (10, 1,000 and 5,000 by default), with ratios to the smallest N.
//   node bench/scale.mjs [--nodes 10,1000,5000] [--runs N]
//
// Per N: a namespace playing the real node, node-0 (eth0 is a veth to a "peer" namespace, 172.16.0.1/12,
// default route via 172.16.0.254), and a cluster file of N nodes in the flow-style YAML of
// test/helpers/cluster.ts: IPPool pool-a (10.0.0.0/8, blockSize 26, vxlanMode Always, natOutgoing), and
// per node i a Node (172.16.0.0/12 + i + 1) and a BlockAffinity of one /26. Measured:
//   1. the agent's first apply, on a fresh namespace: spawn -> /healthz 200 (a poller inside the namespace,
//      started beforehand), and its log's `full apply (start)`; --runs cold starts (default 3);
//   2. a one-node change (node N/2 moves between two addresses; the file is written beside and renamed
//      over): rename -> the kernel's FDB entry for that node pointing at the new address, seen by `bridge
//      monitor fdb` (every other change with nothing else running; the others also polled with `bridge fdb
//      get` every 2 ms, which competes with the agent for the CPU), and the agent's `incremental apply`;
//   3. a no-op resync: an agent restarted with `--resync 2`, its `full apply (periodic resync)` figures;
//   4. the agent's peak RSS (VmHWM) right before SIGTERM;
//   5. ADD (debug log: `done X ms after start`) with the agent running and its snapshot current, and ADD
//      started right after a one-node change (it waits for the agent's snapshot);
//   6. references: `node -e 0`, ADD with no agent after a change (the old path: plans the whole cluster),
//      ADD with no agent and nothing changed, and ptp + host-local ADD (on a node namespace of its own);
//   and what a full apply costs when an address is added to an interface that is not tabby's.
// The cold starts run one size after the other; every other phase takes one sample of each size in turn
// (rounds), so that whatever else the machine does falls on all sizes alike. The agents under measurement
// run with --resync 3600 (no periodic full resync in the middle of a phase); the resync is measured apart.
// Plain Node ESM, argument arrays (never a shell); namespaces, temp dirs and agents (their process
// groups, `ip monitor` included) are removed at the end, on failure and on Ctrl-C.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  cni,
  contenders,
  createNetns,
  createNode,
  deleteNetns,
  expectOk,
  fmtMs,
  fmtRatio,
  ip,
  IP,
  isMain,
  main,
  median,
  p90,
  printTable,
  run,
  TABBY_BIN,
  tmpdir,
} from './lib.mjs';

const BRIDGE = '/usr/sbin/bridge';
const argvOf = (bin) => (bin.endsWith('.js') ? [process.execPath, bin] : [bin]);
/** How tabby is run: TABBY_BIN, or (in scale()) a copy of it taken at the start. */
let TABBY_ARGV = argvOf(TABBY_BIN);
const VXLAN_DEV = 'vxlan.tabby';
const METRICS_PORT = 9099;
const NODE_ADDR = '172.16.0.1/12';
const GATEWAY = '172.16.0.254';

/** Samples per size (rounds); the cold starts are --runs. */
const COUNTS = {
  changes: 16,
  addSteady: 15,
  addWarmup: 2,
  changeAdd: 5,
  noAgentChange: 3,
  noAgentSteady: 5,
  resyncs: 3,
};

// ---------------------------------------------------------------------------------------------
// The cluster file (as test/helpers/big-cluster.ts writes it, vxlanMode Always).

const dotted = (v) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
const POOL_BASE = (10 << 24) >>> 0;
const NODE_BASE = ((172 << 24) | (16 << 16)) >>> 0;
/** Node i's underlay address: all of 172.16.0.0/12 (node-0 is 172.16.0.1, the namespace's eth0). */
export const nodeAddress = (i) => `${dotted(NODE_BASE + i + 1)}/12`;
/** Where the moved node goes and comes back from: 172.31.x.y, used by no other node. */
export const movedAddress = (i) => `172.31.${(i >> 8) & 255}.${i & 255}/12`;
const nodeBlock = (i) => `${dotted(POOL_BASE + i * 64)}/26`;
const nodeDoc = (i, address) =>
  `apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node-${i}}\nspec: {bgp: {ipv4Address: ${address}}}`;

/** The documents of a cluster of n nodes; docs[1 + 2i] is node i's Node. */
export function clusterDocs(n) {
  if (n > 2 ** 18 || n >= 2 ** 20 - 2) throw new Error(`${n} nodes do not fit in 10.0.0.0/8 and 172.16.0.0/12`);
  const docs = [
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-a}\n' +
      'spec: {cidr: 10.0.0.0/8, blockSize: 26, vxlanMode: Always, natOutgoing: true}',
  ];
  for (let i = 0; i < n; i++) {
    const block = nodeBlock(i);
    docs.push(nodeDoc(i, nodeAddress(i)));
    docs.push(
      `apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: node-${i}-${block.replace(/[./]/g, '-')}}\n` +
        `spec: {node: node-${i}, cidr: ${block}}`,
    );
  }
  return docs;
}

/** The file with node i at `address` (one document differs). */
export function clusterYaml(docs, i, address) {
  const out = docs.slice();
  if (i !== undefined) out[1 + 2 * i] = nodeDoc(i, address);
  return out.join('\n---\n') + '\n';
}

/** Calico's VTEP MAC: 0x66 and the first five bytes of sha1(node name). */
export const vtepMac = (name) =>
  ['66', ...createHash('sha1').update(name).digest('hex').slice(0, 10).match(/../g)].join(':');

// ---------------------------------------------------------------------------------------------
// Long-lived children of ours (agents, pollers, monitors): killed as process groups on any exit.

const liveGroups = new Set();
function killGroups() {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
  liveGroups.clear();
}
process.on('exit', killGroups);
// Registered after lib.mjs's handlers, which yield before removing the namespaces: the agents go first.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, killGroups);

/** Spawns a long-lived program in its own process group (so that its children die with it). */
function spawnGroup(file, args, stdio = ['ignore', 'pipe', 'pipe']) {
  const child = spawn(file, args, { stdio, detached: true });
  if (child.pid) liveGroups.add(child.pid);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.exited.then(() => {
    // the leader is gone; its group may still hold a child (ip monitor) that SIGTERM did not reach
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* empty group */
    }
    liveGroups.delete(child.pid);
  });
  return child;
}

const now = () => process.hrtime.bigint();
const msSince = (t0, t1 = now()) => Number(t1 - t0) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)),
  );
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// A node: its namespace pair, its files, its agent.

export async function createSession(n, docs) {
  const [node] = await createNetns('n');
  const [peer] = await createNetns('peer');
  await ip(['-n', peer, '-batch', '-'], 'link set lo up\n');
  await ip(
    ['-n', node, '-batch', '-'],
    [
      'link set lo up',
      `link add eth0 type veth peer name p0 netns ${peer}`,
      `address add ${NODE_ADDR} dev eth0`,
      'link set eth0 up',
      `route add default via ${GATEWAY}`,
    ].join('\n') + '\n',
  );
  await ip(['-n', peer, '-batch', '-'], `address add ${GATEWAY}/12 dev p0\nlink set p0 up\n`);
  const dir = tmpdir();
  const cluster = path.join(dir, 'cluster.yaml');
  fs.writeFileSync(cluster, clusterYaml(docs));
  const plugin = {
    type: 'tabby',
    logFile: path.join(dir, 'agent.log'),
    logLevel: 'info',
    cluster,
    nodeName: 'node-0',
    stateDir: path.join(dir, 'state'),
    ipam: { type: 'tabby-ipam', dataDir: path.join(dir, 'ipam') },
  };
  const conflist = path.join(dir, 'tabby.conflist');
  fs.writeFileSync(conflist, JSON.stringify({ cniVersion: '1.1.0', name: 'tabbynet', plugins: [plugin] }, null, 2));
  const addLog = path.join(dir, 'add.log');
  // What a runtime passes to ADD: the plugin entry with the list's version and name; debug for `done X ms`.
  const tabby = {
    name: 'tabby',
    argv: TABBY_ARGV,
    conf: { cniVersion: '1.1.0', name: 'tabbynet', ...plugin, logLevel: 'debug', logFile: addLog },
  };
  return { n, node, peer, dir, cluster, conflist, addLog, tabby, docs, cid: 0 };
}

export async function destroySession(s) {
  await deleteNetns(s.node, s.peer);
  fs.rmSync(s.dir, { recursive: true, force: true });
}

/** Replaces the cluster file the way an editor or a ConfigMap update does: written beside, renamed over. */
export function stageClusterFile(s, text) {
  const tmp = `${s.cluster}.tmp`;
  fs.writeFileSync(tmp, text);
  return () => fs.renameSync(tmp, s.cluster);
}

/** Starts `tabby agent` in the node (`argv`: how tabby is run, e.g. node with --cpu-prof and the bundle). */
export function startAgent(s, extra = [], argv = TABBY_ARGV) {
  const child = spawnGroup(
    IP,
    [
      'netns',
      'exec',
      s.node,
      ...argv,
      'agent',
      '--config',
      s.conflist,
      '--metrics-addr',
      `127.0.0.1:${METRICS_PORT}`,
      ...extra,
    ],
    ['ignore', 'ignore', 'pipe'],
  );
  let text = '';
  const waiters = new Set();
  child.stderr.setEncoding('utf8').on('data', (d) => {
    text += d;
    for (const w of waiters) w();
  });
  const agent = {
    child,
    pid: child.pid,
    log: () => text,
    matches: (re) => [...text.matchAll(new RegExp(re.source, 'gm'))],
    /**
     * Resolves with the `count`-th match of `re` (a global regex is made of it) that `accept`s, once the
     * log holds it.
     */
    waitLog(re, count = 1, timeoutMs = 120_000, accept = () => true) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = agent.matches(re).filter(accept);
          if (m.length >= count) {
            done();
            resolve(m[count - 1]);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for /${re.source}/ #${count} in the agent's log:\n${tail(text)}`,
            ),
          );
        }, timeoutMs);
        const onExit = ({ code, signal }) => {
          done();
          reject(new Error(`the agent exited (${code ?? signal}) while waiting for /${re.source}/:\n${tail(text)}`));
        };
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        child.exited.then(onExit);
        check();
      });
    },
  };
  return agent;
}

const tail = (text, lines = 15) =>
  text
    .trim()
    .split('\n')
    .slice(-lines)
    .map((l) => `    ${l.length > 400 ? `${l.slice(0, 400)} …` : l}`)
    .join('\n');

/** Peak and current RSS in MB, from /proc (the agent is the `ip netns exec` child itself: it execs). */
export function memory(pid) {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st)?.[1] ?? NaN);
  return { hwm: kb('VmHWM') / 1024, rss: kb('VmRSS') / 1024 };
}

export async function stopAgent(agent) {
  if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill('SIGTERM');
  let exit;
  try {
    exit = await withTimeout(agent.child.exited, 30_000, 'the agent to stop on SIGTERM');
  } catch (e) {
    agent.child.kill('SIGKILL');
    throw new Error(`${e.message}:\n${tail(agent.log())}`);
  }
  if (exit.code !== 0)
    throw new Error(`the agent exited with ${exit.code ?? exit.signal} on SIGTERM:\n${tail(agent.log())}`);
}

/**
 * A poller inside the namespace that fetches /healthz every 2 ms and prints `ok` at the first 200. It is
 * started (and its fetch loaded) before the agent, so that its own start costs nothing measured.
 */
async function startHealthPoller(ns) {
  const script =
    `const u='http://127.0.0.1:${METRICS_PORT}/healthz';let first=true;` +
    `const tick=()=>fetch(u).then(async(r)=>{await r.text();if(r.status===200){process.stdout.write('ok\\n');process.exit(0)}again()},again);` +
    `function again(){if(first){first=false;process.stdout.write('ready\\n')}setTimeout(tick,2)}` +
    `tick();setTimeout(()=>process.exit(2),180000);`;
  const child = spawnGroup(IP, ['netns', 'exec', ns, process.execPath, '-e', script], ['ignore', 'pipe', 'inherit']);
  let out = '';
  let onReady;
  let onOk;
  const ready = new Promise((r) => (onReady = r));
  const ok = new Promise((resolve, reject) => {
    onOk = resolve;
    child.exited.then(({ code }) =>
      code === 0 ? undefined : reject(new Error(`health poller exited ${code}: no /healthz 200 within 180 s`)),
    );
  });
  child.stdout.setEncoding('utf8').on('data', (d) => {
    out += d;
    if (out.includes('ready\n')) onReady();
    if (out.includes('ok\n')) onOk(now());
  });
  await ready;
  return { ok };
}

/** `bridge monitor fdb` in the namespace: resolves `expect(mac, dst)` with when that entry appeared. */
function startFdbMonitor(ns) {
  const child = spawnGroup(BRIDGE, ['-n', ns, 'monitor', 'fdb']);
  const waiting = [];
  let buf = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    const t = now();
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop();
    for (const l of lines) {
      if (l.startsWith('Deleted')) continue;
      for (const w of [...waiting]) {
        if (l.startsWith(`${w.mac} dev ${VXLAN_DEV} dst ${w.dst} `)) {
          waiting.splice(waiting.indexOf(w), 1);
          w.resolve(t);
        }
      }
    }
  });
  return {
    expect(mac, dst) {
      return new Promise((resolve) => waiting.push({ mac, dst, resolve }));
    },
    stop() {
      child.kill('SIGTERM');
      return child.exited;
    },
  };
}

/** Polls `bridge fdb get` every 2 ms until `mac` points at `dst`; resolves with when it first did. */
export async function pollFdb(ns, mac, dst, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await run(BRIDGE, ['-n', ns, '-j', 'fdb', 'get', mac, 'dev', VXLAN_DEV, 'self']);
    const t = now();
    if (r.code === 0) {
      try {
        if (JSON.parse(r.stdout)[0]?.dst === dst) return t;
      } catch {
        /* half an answer: ask again */
      }
    }
    if (Date.now() > deadline) throw new Error(`FDB entry ${mac} -> ${dst} not in ${ns} after ${timeoutMs} ms`);
    await sleep(2);
  }
}

/** One ADD in a fresh pod namespace: wall time and the plugin's own `done X ms after start`; then DEL. */
export async function addPod(s, { before } = {}) {
  const [pod] = await createNetns('p');
  const cid = `scale-${s.n}-${s.cid++}`;
  try {
    const t0 = before ? before() : now();
    const r = expectOk(s.tabby, 'ADD', cid, await cni(s.node, s.tabby, 'ADD', cid, pod));
    const wall = msSince(t0);
    const m = new RegExp(`ADD ${cid}/eth0 done ([\\d.]+) ms after start`).exec(fs.readFileSync(s.addLog, 'utf8'));
    if (!m) throw new Error(`ADD ${cid}: no "done X ms after start" in ${s.addLog}`);
    const del = expectOk(s.tabby, 'DEL', cid, await cni(s.node, s.tabby, 'DEL', cid, pod));
    return {
      done: Number(m[1]),
      wall,
      exec: r.ms,
      del: del.ms,
      warn: /WARN .*ADD .*/.test(r.stderr) ? r.stderr.trim() : undefined,
    };
  } finally {
    await deleteNetns(pod);
  }
}

const FULL_START = /full apply \(start\): (\d+) change\(s\) in ([\d.]+) ms/;
/** Any apply; [1] its kind, [2] its reasons, [3] changes, [4] ms. */
const APPLY = /(incremental|full) apply \(([^)]*)\): (\d+) change\(s\) in ([\d.]+) ms/;
const forFileChange = (m) => m[2].split(', ').includes('cluster file changed');
const RESYNC = /full apply \(periodic resync\): (\d+) change\(s\) in ([\d.]+) ms/;
const REPAIRED = /resync \(periodic resync\) repaired (\d+) drifted/;

/** Checks that the kernel holds the whole cluster: a route per remote block and the own blackhole, an FDB entry per peer. */
async function checkApplied(s) {
  const routes = JSON.parse((await ip(['-n', s.node, '-j', 'route', 'show', 'proto', '117'])) || '[]');
  const fdb = JSON.parse(
    (await run(BRIDGE, ['-n', s.node, '-j', 'fdb', 'show', 'dev', VXLAN_DEV])).stdout || '[]',
  ).filter((f) => f.state === 'permanent' && f.dst);
  if (routes.length !== s.n || fdb.length !== s.n - 1) {
    throw new Error(
      `N=${s.n}: after the first apply the kernel holds ${routes.length} tabby routes (want ${s.n}) and ${fdb.length} FDB entries (want ${s.n - 1})`,
    );
  }
  return fdb;
}

// ---------------------------------------------------------------------------------------------
// The measurements. The cold starts run one cluster size after the other; everything else runs in
// rounds that take one sample of each size in turn (the order reversed every other round), so that
// whatever else the machine is doing meanwhile falls on all sizes alike.

/** Runs `fn(r, i)` for round i = 0..count-1 and every size r, alternating the order of the sizes. */
async function rounds(results, count, fn) {
  for (let i = 0; i < count; i++) {
    for (const r of i % 2 === 0 ? results : [...results].reverse()) await fn(r, i);
  }
}

/** A cluster size: its file, then its node, agent and samples. */
function newResult(n) {
  const docs = clusterDocs(n);
  const k = Math.floor(n / 2); // the node that moves
  return {
    n,
    docs,
    k,
    fileKB: Buffer.byteLength(clusterYaml(docs)) / 1024,
    mac: vtepMac(`node-${k}`),
    /** The moved node's address after its c-th move: away, back, away, ... */
    addrOf: (c) => (c % 2 === 0 ? movedAddress(k) : nodeAddress(k)),
    moves: 0,
    coldHealth: [],
    coldApply: [],
    coldChanges: [],
    addSteady: [],
    addSteadyWall: [],
    nodeE0: [],
    ptp: [],
    changePoll: [],
    changeMon: [],
    changeQuiet: [],
    changeLog: [],
    changeLogSeen: [],
    changeCount: [],
    changeFull: [],
    addAfterChange: [],
    addAfterChangeWall: [],
    addAfterChangeWarn: 0,
    addrEvent: [],
    addNoAgentChange: [],
    addNoAgentChangeWall: [],
    addNoAgentSteady: [],
  };
}

/** --resync for the agents under measurement: no periodic full resync lands in the middle of a phase. */
const MAIN_AGENT_FLAGS = ['--resync', '3600'];

/** 1. `runs` agents started on fresh nodes; the last node and its agent stay for what follows. */
async function coldStarts(r, runs, say) {
  for (let i = 0; i < runs; i++) {
    if (r.s) {
      await stopAgent(r.agent);
      r.agent = undefined;
      await destroySession(r.s);
      r.s = undefined;
    }
    r.s = await createSession(r.n, r.docs);
    const poller = await startHealthPoller(r.s.node);
    const t0 = now();
    const agent = (r.agent = startAgent(r.s, MAIN_AGENT_FLAGS));
    const exited = agent.child.exited.then((e) => {
      throw new Error(`the agent exited (${e.code ?? e.signal}) before /healthz said 200:\n${tail(agent.log())}`);
    });
    r.coldHealth.push(msSince(t0, await Promise.race([poller.ok, exited])));
    const line = await agent.waitLog(FULL_START);
    r.coldChanges.push(Number(line[1]));
    r.coldApply.push(Number(line[2]));
    say(
      `cold start ${i + 1}/${runs}: /healthz 200 after ${fmtMs(r.coldHealth.at(-1))} ms, its full apply: ${line[1]} change(s) in ${line[2]} ms`,
    );
  }
  const fdb = await checkApplied(r.s);
  const home = nodeAddress(r.k).split('/')[0];
  if (!fdb.some((f) => f.mac === r.mac && f.dst === home))
    throw new Error(`N=${r.n}: no FDB entry ${r.mac} -> ${home} for node-${r.k}`);
  r.afterFirstApply = memory(r.agent.pid);
}

/** 2. One move of node K: rename -> the kernel's FDB entry (polled, and as `bridge monitor` saw it), and the agent's log. */
async function oneNodeChange(r) {
  const { s, agent } = r;
  const to = r.addrOf(r.moves++);
  const rename = stageClusterFile(s, clusterYaml(r.docs, r.k, to));
  const dst = to.split('/')[0];
  const seen = r.monitor.expect(r.mac, dst);
  const before = agent.matches(APPLY).filter(forFileChange).length;
  // Every other change is timed by the monitor alone: a poller spawning `bridge` every 2 ms takes a good
  // part of a core from the agent on a 2-core machine, and so slows what it measures.
  const polling = r.moves % 2 === 0;
  const t0 = now();
  rename();
  const polled = polling ? await pollFdb(s.node, r.mac, dst) : undefined;
  const line = await agent.waitLog(APPLY, before + 1, 60_000, forFileChange);
  const tLog = now();
  const monitored = msSince(t0, await withTimeout(seen, 10_000, `bridge monitor to show ${r.mac} -> ${dst}`));
  if (polling) {
    r.changePoll.push(msSince(t0, polled));
    r.changeMon.push(monitored);
  } else {
    r.changeQuiet.push(monitored);
  }
  r.changeLogSeen.push(msSince(t0, tLog));
  if (line[1] === 'incremental') {
    r.changeCount.push(Number(line[3]));
    r.changeLog.push(Number(line[4]));
  } else {
    r.changeFull.push(line[2]);
  }
  await sleep(30);
}

/** 5b. ADD started right after a one-node change: it waits for the agent's snapshot. */
async function addAfterChange(r) {
  const rename = stageClusterFile(r.s, clusterYaml(r.docs, r.k, r.addrOf(r.moves++)));
  const before = r.agent.matches(APPLY).filter(forFileChange).length;
  const a = await addPod(r.s, {
    before: () => {
      const t0 = now();
      rename();
      return t0;
    },
  });
  await r.agent.waitLog(APPLY, before + 1, 60_000, forFileChange);
  r.addAfterChange.push(a.done);
  r.addAfterChangeWall.push(a.wall);
  if (a.warn) r.addAfterChangeWarn++;
  await sleep(30);
}

/**
 * An address added to an interface that is not tabby's (one end of a veth pair here: this kernel may
 * lack dummy; on a real node kube-ipvs0, docker0, another plugin's veth) wakes the agent's kernel watcher.
 */
async function unrelatedAddress(r, i) {
  const isThis = (x) => x[2].includes('address added to xtr0');
  const before = r.agent.matches(APPLY).filter(isThis).length;
  await ip(['-n', r.s.node, 'address', 'add', `192.0.2.${i + 1}/32`, 'dev', 'xtr0']);
  const line = await r.agent.waitLog(APPLY, before + 1, 60_000, isThis);
  r.addrEvent.push(Number(line[4]));
  await sleep(30);
}

/** 1b, 3 and 4: the agent under measurement stopped; one restarted over its state with a resync every 2 s. */
async function restartWithResync(r, say) {
  r.mainMem = memory(r.agent.pid);
  await stopAgent(r.agent);
  r.agent = startAgent(r.s, ['--resync', '2']);
  const restart = await r.agent.waitLog(FULL_START);
  r.warmApply = Number(restart[2]);
  r.warmChanges = Number(restart[1]);
  await r.agent.waitLog(RESYNC, COUNTS.resyncs, 60_000);
  r.resync = r.agent.matches(RESYNC).map((x) => Number(x[2]));
  r.resyncChanges = r.agent.matches(RESYNC).map((x) => Number(x[1]));
  r.resyncRepairs = r.agent.matches(REPAIRED).length;
  r.resyncMem = memory(r.agent.pid);
  await stopAgent(r.agent);
  r.agent = undefined;
  say(
    `restart over applied state: full apply in ${fmtMs(r.warmApply)} ms; no-op resync ${fmtMs(median(r.resync))} ms (${r.resync.length} resyncs); ` +
      `peak RSS ${r.mainMem.hwm.toFixed(1)} MB, ${r.resyncMem.hwm.toFixed(1)} MB with resyncs`,
  );
}

async function measureAll(results, { runs }) {
  const say = (r, msg) => console.log(`  [N=${r.n}] ${msg}`);
  const phase = (msg) => console.log(`  -- ${msg}`);
  let refNode;
  try {
    for (const r of results) await coldStarts(r, runs, (m) => say(r, m));

    // 5a + 6a + 6c: ADD with the agent running and its snapshot current; node -e 0; ptp + host-local,
    // on a node namespace of its own (ptp puts an IPv4 address on its host veth, and an address added
    // to any interface makes tabby's agent resync in full)
    phase(`ADD with the agent running, node -e 0, ptp + host-local: ${COUNTS.addWarmup} + ${COUNTS.addSteady} rounds`);
    refNode = await createNode();
    const ptp = contenders()[1];
    await rounds(results, COUNTS.addWarmup + COUNTS.addSteady, async (r, i) => {
      const a = await addPod(r.s);
      const e0 = await run(process.execPath, ['-e', '0']);
      const [pod] = await createNetns('p');
      let ref;
      try {
        const cid = `scale-ptp-${r.n}-${i}`;
        ref = expectOk(ptp, 'ADD', cid, await cni(refNode, ptp, 'ADD', cid, pod));
        expectOk(ptp, 'DEL', cid, await cni(refNode, ptp, 'DEL', cid, pod));
      } finally {
        await deleteNetns(pod);
      }
      if (i < COUNTS.addWarmup) return;
      r.addSteady.push(a.done);
      r.addSteadyWall.push(a.wall);
      r.nodeE0.push(e0.ms);
      r.ptp.push(ref.ms);
    });
    for (const r of results)
      say(
        r,
        `ADD, agent running: ${fmtMs(median(r.addSteady))} ms after start; node -e 0 ${fmtMs(median(r.nodeE0))} ms; ptp ${fmtMs(median(r.ptp))} ms`,
      );

    phase(`one-node changes: ${COUNTS.changes} rounds`);
    for (const r of results) r.monitor = startFdbMonitor(r.s.node);
    await sleep(200); // the monitors' netlink sockets are open before the first change
    await rounds(results, COUNTS.changes, oneNodeChange);
    for (const r of results) {
      await r.monitor.stop();
      r.monitor = undefined;
      say(
        r,
        `one-node change: in the kernel after ${fmtMs(median(r.changeQuiet))} ms (monitor alone), ` +
          `${fmtMs(median(r.changePoll))} ms (poll), ${fmtMs(median(r.changeMon))} ms (monitor beside the poll); ` +
          `the agent's apply ${fmtMs(median(r.changeLog))} ms`,
      );
    }

    phase(`ADD right after a one-node change: ${COUNTS.changeAdd} rounds`);
    await rounds(results, COUNTS.changeAdd, addAfterChange);
    for (const r of results) say(r, `ADD right after a change: ${fmtMs(median(r.addAfterChange))} ms after start`);

    phase('an address added to an unrelated interface: 3 rounds');
    for (const r of results)
      await ip(['-n', r.s.node, '-batch', '-'], 'link add xtr0 type veth peer name xtr1\nlink set xtr0 up\n');
    await rounds(results, 3, unrelatedAddress);

    phase('agents restarted with --resync 2, one size at a time');
    for (const r of results) await restartWithResync(r, (m) => say(r, m));

    // 6b: no agent: ADD after a change applies it itself (the old path), then ADD with nothing changed
    phase(
      `ADD with no agent: ${COUNTS.noAgentChange} rounds after a change, ${COUNTS.noAgentSteady} with nothing changed`,
    );
    await rounds(results, COUNTS.noAgentChange, async (r) => {
      stageClusterFile(r.s, clusterYaml(r.docs, r.k, r.addrOf(r.moves++)))();
      const a = await addPod(r.s);
      r.addNoAgentChange.push(a.done);
      r.addNoAgentChangeWall.push(a.wall);
    });
    await rounds(results, 1 + COUNTS.noAgentSteady, async (r, i) => {
      const a = await addPod(r.s);
      if (i > 0) r.addNoAgentSteady.push(a.done);
    });
    for (const r of results)
      say(
        r,
        `ADD, no agent: ${fmtMs(median(r.addNoAgentChange))} ms after a change, ${fmtMs(median(r.addNoAgentSteady))} ms with nothing changed`,
      );
  } catch (e) {
    for (const r of results)
      if (r.agent) e.message += `\n  N=${r.n}: the agent's log (tail):\n${tail(r.agent.log(), 8)}`;
    throw e;
  } finally {
    for (const r of results) {
      if (r.monitor) await r.monitor.stop();
      if (r.agent) {
        r.agent.child.kill('SIGKILL');
        await r.agent.child.exited;
      }
      if (r.s) await destroySession(r.s);
    }
    if (refNode) await deleteNetns(refNode);
  }
}

function report(results) {
  const base = results[0];
  const header = ['ms unless noted (median)'];
  for (const r of results) {
    header.push(`N=${r.n.toLocaleString('en-US')}`);
    if (r !== base) header.push(`vs ${base.n.toLocaleString('en-US')}`);
  }
  const rows = [];
  const row = (label, get, { fmt = fmtMs, ratio = true } = {}) => {
    const out = [label];
    const b = get(base);
    for (const r of results) {
      const v = get(r);
      out.push(v === undefined || Number.isNaN(v) ? '-' : fmt(v));
      if (r !== base) out.push(ratio && b > 0 && v !== undefined ? fmtRatio(v / b) : '');
    }
    rows.push(out);
  };
  const med = (k) => (r) => median(r[k]);
  const int = (v) => String(Math.round(v));
  const mb = (v) => v.toFixed(1);
  row('cluster file size (KB)', (r) => r.fileKB, { fmt: int, ratio: false });
  row(`agent first apply: spawn -> /healthz 200 (n=${base.coldHealth.length})`, med('coldHealth'));
  row('  its log: full apply (start)', med('coldApply'));
  row('  kernel changes in it (count)', med('coldChanges'), { fmt: int, ratio: false });
  row('agent restart over applied state: full apply (start)', (r) => r.warmApply);
  row(`one-node change: rename -> kernel FDB, bridge monitor alone (n=${base.changeQuiet.length})`, med('changeQuiet'));
  row('  p90', (r) => p90(r.changeQuiet));
  row(`  rename -> kernel FDB, poll 2 ms alongside (n=${base.changePoll.length})`, med('changePoll'));
  row('  rename -> kernel FDB, bridge monitor, with that poller', med('changeMon'));
  row('  rename -> agent log line read', med('changeLogSeen'));
  row('  its log: incremental apply', med('changeLog'));
  row('  kernel changes in it (count)', med('changeCount'), { fmt: int, ratio: false });
  row(`no-op resync: full apply (periodic resync) (n>=${COUNTS.resyncs})`, med('resync'));
  row('address added to an unrelated interface: full apply (n=3)', med('addrEvent'));
  row('agent peak RSS, VmHWM after first apply (MB)', (r) => r.afterFirstApply.hwm, { fmt: mb });
  row('agent peak RSS, VmHWM at SIGTERM (MB)', (r) => r.mainMem.hwm, { fmt: mb });
  row('  agent with --resync 2, VmHWM at SIGTERM (MB)', (r) => r.resyncMem.hwm, { fmt: mb });
  row(`ADD, agent, snapshot current: done after start (n=${base.addSteady.length})`, med('addSteady'));
  row('  p90', (r) => p90(r.addSteady));
  row('  wall (ip netns exec + exec + exit)', med('addSteadyWall'));
  row(
    `ADD right after a one-node change, agent: done after start (n=${base.addAfterChange.length})`,
    med('addAfterChange'),
  );
  row('  rename -> ADD exited', med('addAfterChangeWall'));
  row(
    `ADD, no agent, after a change (before): done after start (n=${base.addNoAgentChange.length})`,
    med('addNoAgentChange'),
  );
  row('  wall', med('addNoAgentChangeWall'));
  row(`ADD, no agent, nothing changed: done after start (n=${base.addNoAgentSteady.length})`, med('addNoAgentSteady'));
  row(`reference: node -e 0 wall (n=${base.nodeE0.length}, same rounds)`, med('nodeE0'));
  row(`reference: ptp + host-local ADD wall (n=${base.ptp.length}, same rounds)`, med('ptp'));
  console.log();
  printTable(header, rows);

  // The goals, judged at the largest N.
  const big = results.at(-1);
  const goals = [
    [`first apply at N=${big.n} <= 3000 ms (spawn -> /healthz 200)`, median(big.coldHealth), 3000],
    [`one-node change at N=${big.n} <= 100 ms (rename -> kernel, bridge monitor)`, median(big.changeQuiet), 100],
    [`agent peak RSS at N=${big.n} <= 150 MB`, Math.max(big.mainMem.hwm, big.resyncMem.hwm), 150],
    [
      `ADD at N=${big.n} <= 1.10x ADD at N=${base.n} (done after start)`,
      median(big.addSteady) / median(base.addSteady),
      1.1,
    ],
  ];
  console.log('\ngoals:');
  for (const [what, v, limit] of goals) {
    console.log(`  ${v <= limit ? 'met   ' : 'MISSED'} ${what}: ${limit < 10 ? fmtRatio(v) : v.toFixed(1)}`);
  }
  const notes = [];
  for (const r of results) {
    if (r.resyncRepairs) notes.push(`N=${r.n}: ${r.resyncRepairs} periodic resync(s) repaired drift on a quiet node`);
    if (r.resyncChanges.some((c) => c !== 0))
      notes.push(`N=${r.n}: a no-op resync reported changes: ${r.resyncChanges.join(', ')}`);
    if (r.warmChanges !== 0)
      notes.push(`N=${r.n}: the restarted agent applied ${r.warmChanges} change(s) over an applied state`);
    if (r.changeFull.length)
      notes.push(
        `N=${r.n}: ${r.changeFull.length} one-node change(s) were applied by a full apply (${r.changeFull.join(' | ')})`,
      );
    if (r.addAfterChangeWarn)
      notes.push(`N=${r.n}: ${r.addAfterChangeWarn} ADD(s) after a change gave up waiting for the agent`);
  }
  if (notes.length) console.log(`\nnotes:\n  ${notes.join('\n  ')}`);
}

/**
 * A private copy of TABBY_BIN for the whole run: every size is measured with the same build even when
 * someone rebuilds dist/ meanwhile (a build rewrites the file in place). Taken once the file has not
 * changed for 2 s, and checked to answer VERSION.
 */
async function snapshotTabby() {
  for (let attempt = 0; attempt < 60; attempt++) {
    const st = fs.statSync(TABBY_BIN);
    if (Date.now() - st.mtimeMs >= 2000) {
      const copy = path.join(tmpdir(), path.basename(TABBY_BIN));
      fs.copyFileSync(TABBY_BIN, copy);
      fs.chmodSync(copy, 0o755);
      const after = fs.statSync(TABBY_BIN);
      const argv = argvOf(copy);
      const r = await run(argv[0], argv.slice(1), {
        env: { ...process.env, CNI_COMMAND: 'VERSION' },
        input: '{"cniVersion":"1.0.0"}',
      });
      if (
        after.mtimeMs === st.mtimeMs &&
        fs.statSync(copy).size === st.size &&
        r.code === 0 &&
        r.stdout.includes('supportedVersions')
      ) {
        return { argv, mtime: st.mtime };
      }
    }
    await sleep(1000);
  }
  throw new Error(`${TABBY_BIN} kept changing (or does not answer VERSION) for a minute: is a build running?`);
}

export const scaleOptions = { nodes: { type: 'string' }, runs: { type: 'string' } };

export async function scale({ nodes = [10, 1000, 5000], runs = 3 } = {}) {
  const snap = await snapshotTabby();
  TABBY_ARGV = snap.argv;
  console.log(
    `== scale: tabby agent and ADD on node-0 of clusters of ${nodes.join(', ')} nodes (VXLAN Always, natOutgoing, /26 blocks)\n` +
      `   tabby: ${TABBY_BIN} of ${snap.mtime.toISOString()} (run from a copy taken at the start); node ${process.version}; ${os.cpus().length} CPUs, load average ${os.loadavg()[0].toFixed(2)}`,
  );
  const t0 = Date.now();
  const results = nodes.map(newResult);
  try {
    await measureAll(results, { runs });
  } finally {
    killGroups(); // whatever is left of ours (nothing, unless a measurement failed half-way)
  }
  report(results);
  console.log(`\n(${((Date.now() - t0) / 1000).toFixed(0)} s in all)`);
  return results;
}

function toScaleOpts(v) {
  const opts = {};
  if (v.nodes !== undefined) {
    const list = v.nodes.split(',').map((x) => Number(x.trim().replace(/_/g, '')));
    if (!list.length || list.some((x) => !Number.isInteger(x) || x < 2))
      throw new Error(`--nodes: a comma-separated list of integers >= 2, got "${v.nodes}"`);
    opts.nodes = list;
  }
  if (v.runs !== undefined) {
    const r = Number(v.runs);
    if (!Number.isInteger(r) || r < 1) throw new Error(`--runs must be an integer >= 1, got "${v.runs}"`);
    opts.runs = r;
  }
  return opts;
}

if (isMain(import.meta.url)) {
  await main(async () => {
    const { values } = parseArgs({ options: scaleOptions });
    await scale(toScaleOpts(values));
  });
}
