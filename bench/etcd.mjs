// The cluster in etcd: how fast a joining node's block reaches every peer, what a block claim costs,
// and ADD on etcd beside ADD on the cluster file, in one run.
//   node bench/etcd.mjs [--rounds N]
//
// Topology: a switch namespace with a bridge; an etcd host namespace (172.18.0.254, a real etcd with its
// own data dir, stopped at the end); four real nodes 172.18.0.1-4 (one L2 subnet, VXLAN Always pool), each
// with `tabby agent`. Measured:
//   1. convergence: from a node's block claim (the block record's affinity_claim_time, written by the
//      joining agent) until every running peer routes to that block (each peer's routes polled every
//      few ms), for the nodes joining one at a time; first with only the four, then with 100 more nodes
//      registered as records (Node + block, as a real node would write them);
//   2. a block claim: ADD on a node whose blocks are all full (a /30-block pool: one address per block,
//      so every ADD claims) beside ADD on the same node that claims nothing;
//   3. ADD (debug log: `done X ms after start`) on etcd and on the cluster file, both nodes with an agent
//      and a current snapshot, interleaved; and `node -e 0` as the floor.
// Plain Node ESM, argument arrays only; namespaces, processes and temp dirs are removed at the end.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { createNetns, fmtMs, ip, IP, isMain, main, median, printTable, run, TABBY_BIN, tmpdir } from './lib.mjs';

const ETCD = '/usr/bin/etcd';
const ETCDCTL = '/usr/bin/etcdctl';
const DB_IP = '172.18.0.254';
const ENDPOINT = `http://${DB_IP}:2379`;
const PREFIX = '/tabby';
const TABBY = TABBY_BIN.endsWith('.js') ? [process.execPath, TABBY_BIN] : [TABBY_BIN];
const children = new Set();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function daemon(ns, argv, logFile) {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(IP, ['netns', 'exec', ns, ...argv], { stdio: ['ignore', out, out] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

async function until(what, cond, timeoutMs = 20_000, everyMs = 5) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

const etcdctl = (ns, ...args) =>
  run(IP, ['netns', 'exec', ns, ETCDCTL, `--endpoints=${ENDPOINT}`, ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
  });

async function topology(dir, names) {
  const [sw, db, ...nodes] = await createNetns('e', 2 + names.length);
  const batch = (ns, lines) =>
    ip([...(ns ? ['-n', ns] : []), '-batch', '-'], lines.map((l) => l.join(' ')).join('\n') + '\n');
  const hosts = [db, ...nodes];
  await batch(
    undefined,
    hosts.map((ns, i) => ['link', 'add', `p${i}`, 'netns', sw, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]),
  );
  await batch(sw, [
    ['link', 'add', 'br0', 'type', 'bridge'],
    ['link', 'set', 'br0', 'up'],
    ...hosts.flatMap((_, i) => [
      ['link', 'set', `p${i}`, 'master', 'br0'],
      ['link', 'set', `p${i}`, 'up'],
    ]),
  ]);
  for (const [i, ns] of hosts.entries()) {
    const addr = i === 0 ? `${DB_IP}/24` : `172.18.0.${i}/24`;
    await batch(ns, [
      ['link', 'set', 'lo', 'up'],
      ['address', 'add', addr, 'dev', 'eth0'],
      ['link', 'set', 'eth0', 'up'],
      ...(i === 0 ? [] : [['route', 'add', 'default', 'via', DB_IP]]),
    ]);
  }
  daemon(
    db,
    [
      ETCD,
      '--name',
      'bench',
      '--data-dir',
      path.join(dir, 'etcd'),
      '--listen-client-urls',
      ENDPOINT,
      '--advertise-client-urls',
      ENDPOINT,
      '--listen-peer-urls',
      'http://127.0.0.1:23800',
      '--initial-advertise-peer-urls',
      'http://127.0.0.1:23800',
      '--initial-cluster',
      'bench=http://127.0.0.1:23800',
    ],
    path.join(dir, 'etcd.log'),
  );
  await until('etcd', async () => (await etcdctl(db, 'endpoint', 'health')).code === 0, 20_000, 100);
  return { db, nodes };
}

function conflist(dir, name, datastore) {
  const file = path.join(dir, `${name}.conflist`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'benchnet',
      plugins: [
        {
          type: 'tabby',
          nodeName: name,
          ...datastore,
          stateDir: path.join(dir, name, 'state'),
          logFile: path.join(dir, name, 'tabby.log'),
          logLevel: 'debug',
          ipam: { type: 'tabby-ipam', dataDir: path.join(dir, name, 'ipam') },
        },
      ],
    }),
  );
  return file;
}
const etcdStore = { datastore: { type: 'etcd', endpoints: [ENDPOINT], prefix: PREFIX } };

async function startAgent(dir, ns, name, config, labels = '') {
  fs.mkdirSync(path.join(dir, name), { recursive: true });
  const log = path.join(dir, name, 'agent.log');
  const child = daemon(
    ns,
    [...TABBY, 'agent', '--config', config, '--resync', '3600', ...(labels ? ['--node-labels', labels] : [])],
    log,
  );
  await until(
    `${name}'s first apply`,
    () => fs.existsSync(log) && /full apply \(start\)/.test(fs.readFileSync(log, 'utf8')),
    30_000,
    20,
  );
  return child;
}

const routesOf = async (ns) => JSON.parse((await ip(['-n', ns, '-j', 'route', 'show', 'proto', '117'])) || '[]');

async function blockOf(db, node) {
  const r = await etcdctl(db, 'get', '--prefix', `${PREFIX}/ipam/v2/assignment/`, '--print-value-only');
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((b) => b.affinity === `host:${node}`);
}

/** Nodes join one at a time; for each, claim -> every running peer routes its block. */
async function joinRound(dir, env, round) {
  const up = [];
  const samples = [];
  for (const [i, ns] of env.nodes.entries()) {
    const name = `r${round}-n${i + 1}`;
    const agent = await startAgent(dir, ns, name, conflist(dir, name, etcdStore));
    const block = await until(`${name}'s block`, () => blockOf(env.db, name), 10_000, 20);
    const claimed = Date.parse(block.affinity_claim_time);
    await Promise.all(
      up.map(({ ns: peer }) =>
        until(`${block.cidr} on a peer`, async () => (await routesOf(peer)).some((r) => r.dst === block.cidr)),
      ),
    );
    if (up.length) samples.push(Date.now() - claimed);
    up.push({ ns, name, agent });
  }
  for (const u of up) {
    u.agent.kill('SIGTERM');
    await run(IP, [
      'netns',
      'exec',
      u.ns,
      ...TABBY,
      'delete',
      '--config',
      path.join(dir, `${u.name}.conflist`),
      'node',
      u.name,
    ]);
  }
  return samples;
}

/** 100 more nodes as records, the way their agents would have written them. */
async function registerRecords(env, count) {
  const puts = [];
  for (let i = 0; i < count; i++) {
    const name = `rec-${i}`;
    const node = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name },
      spec: { bgp: { ipv4Address: `172.18.${1 + (i >> 8)}.${i & 255}/16` } },
    };
    const cidr = `10.97.${i}.0/26`;
    puts.push([`${PREFIX}/resources/v3/projectcalico.org/nodes/${name}`, JSON.stringify(node)]);
    puts.push([
      `${PREFIX}/ipam/v2/assignment/ipv4/block/${cidr.replace('/', '-')}`,
      JSON.stringify({ cidr, affinity: `host:${name}`, affinity_claim_time: new Date().toISOString() }),
    ]);
  }
  for (const [k, v] of puts) {
    const r = await etcdctl(env.db, 'put', k, v);
    if (r.code !== 0) throw new Error(`etcdctl put: ${r.stderr}`);
  }
}

const doneMs = (log) =>
  [...fs.readFileSync(log, 'utf8').matchAll(/ADD (\S+) done ([\d.]+) ms after start/g)].map((m) => ({
    id: m[1],
    ms: Number(m[2]),
  }));

/** ADD (then DEL, unless `keep`: a kept pod keeps its address, so the next ADD needs another). */
async function addDel(dir, ns, name, config, id, keep = false) {
  const [pod] = await createNetns('p');
  const plugin = JSON.parse(fs.readFileSync(config, 'utf8'));
  const input = JSON.stringify({ cniVersion: plugin.cniVersion, name: plugin.name, ...plugin.plugins[0] });
  const env = {
    PATH: process.env.PATH,
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: id,
    CNI_NETNS: `/var/run/netns/${pod}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
  };
  const add = await run(IP, ['netns', 'exec', ns, ...TABBY], { env, input });
  if (add.code !== 0) throw new Error(`ADD on ${name}: ${add.stdout} ${add.stderr}`);
  if (!keep) {
    await run(IP, ['netns', 'exec', ns, ...TABBY], { env: { ...env, CNI_COMMAND: 'DEL' }, input });
    await ip(['netns', 'del', pod]);
  }
  const mine = doneMs(path.join(dir, name, 'tabby.log')).filter((d) => d.id === `${id}/eth0`);
  return mine[mine.length - 1].ms;
}

async function bench({ rounds }) {
  const dir = tmpdir();
  const env = await topology(dir, ['n1', 'n2', 'n3', 'n4', 'claimer', 'filenode']);
  const [n1, n2, n3, n4, claimerNs, fileNs] = env.nodes;
  env.nodes = [n1, n2, n3, n4];
  const pool = (name, cidr, blockSize, selector) => ({
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name },
    spec: { cidr, blockSize, vxlanMode: 'Always', natOutgoing: true, nodeSelector: selector },
  });
  const manifest = path.join(dir, 'pools.json');
  fs.writeFileSync(
    manifest,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        pool('pool-a', '10.96.0.0/14', 26, '!has(claimbench)'),
        pool('pool-claim', '10.200.0.0/16', 30, "claimbench == 'yes'"),
        {
          apiVersion: 'projectcalico.org/v3',
          kind: 'IPAMConfiguration',
          metadata: { name: 'default' },
          spec: { maxBlocksPerHost: 10000 },
        },
      ],
    }),
  );
  const applied = await run(IP, [
    'netns',
    'exec',
    n1,
    ...TABBY,
    'apply',
    '--config',
    conflist(dir, 'apply', etcdStore),
    '-f',
    manifest,
  ]);
  if (applied.code !== 0) throw new Error(`tabby apply: ${applied.stderr}`);

  console.log('convergence: nodes join one at a time (4 real nodes)...');
  const plain = [];
  for (let r = 0; r < rounds; r++) plain.push(...(await joinRound(dir, env, `a${r}`)));
  console.log('convergence: the same, with 100 more nodes registered as records...');
  await registerRecords(env, 100);
  const loaded = [];
  for (let r = 0; r < rounds; r++) loaded.push(...(await joinRound(dir, env, `b${r}`)));

  console.log('block claims and ADD on etcd vs the cluster file...');
  const claimerConf = conflist(dir, 'claimer', etcdStore);
  const claimer = await startAgent(dir, claimerNs, 'claimer', claimerConf, 'claimbench=yes');
  const steadyNode = 'steady';
  const steadyConf = conflist(dir, steadyNode, etcdStore);
  const steady = await startAgent(dir, n1, steadyNode, steadyConf);
  // the same cluster as a file (pools, the 100 records and this node's block), with its own agent
  const r = await etcdctl(env.db, 'get', '--prefix', `${PREFIX}/`, '--print-value-only');
  const values = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const docs = values
    .filter((v) => v.kind === 'IPPool' || (v.kind === 'Node' && v.metadata.name.startsWith('rec-')))
    .map((v) => JSON.stringify(v));
  docs.push(
    JSON.stringify({
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name: 'filenode' },
      spec: { bgp: { ipv4Address: '172.18.0.6/24' } },
    }),
  );
  for (const v of values.filter((x) => x.affinity?.startsWith('host:rec-'))) {
    docs.push(
      JSON.stringify({
        apiVersion: 'projectcalico.org/v3',
        kind: 'BlockAffinity',
        metadata: { name: v.cidr.replace(/[./]/g, '-') },
        spec: { node: v.affinity.slice(5), cidr: v.cidr },
      }),
    );
  }
  docs.push(
    JSON.stringify({
      apiVersion: 'projectcalico.org/v3',
      kind: 'BlockAffinity',
      metadata: { name: 'filenode-b' },
      spec: { node: 'filenode', cidr: '10.99.0.0/26' },
    }),
  );
  const clusterFile = path.join(dir, 'cluster.yaml');
  fs.writeFileSync(clusterFile, docs.join('\n---\n') + '\n');
  const fileConf = conflist(dir, 'filenode', { cluster: clusterFile });
  const fileAgent = await startAgent(dir, fileNs, 'filenode', fileConf);

  const claims = [];
  const noClaims = [];
  const onEtcd = [];
  const onFile = [];
  for (let i = 0; i < 15; i++) {
    // a /30 block holds one pod address, and the pods stay: every one of these ADDs claims a block
    claims.push(await addDel(dir, claimerNs, 'claimer', claimerConf, `claim${i}`, true));
    noClaims.push(await addDel(dir, n1, steadyNode, steadyConf, `steady${i}`));
    onEtcd.push(await addDel(dir, n1, steadyNode, steadyConf, `etcd${i}`));
    onFile.push(await addDel(dir, fileNs, 'filenode', fileConf, `file${i}`));
  }
  const floor = [];
  for (let i = 0; i < 10; i++) floor.push((await run(process.execPath, ['-e', '0'])).ms);
  for (const a of [claimer, steady, fileAgent]) a.kill('SIGTERM');
  const claimed = (await etcdctl(env.db, 'get', '--prefix', `${PREFIX}/ipam/`, '--print-value-only')).stdout;
  const claimerBlocks = claimed.split('\n').filter((l) => l.includes('host:claimer')).length;
  if (claimerBlocks < claims.length)
    throw new Error(`the claimer holds ${claimerBlocks} blocks after ${claims.length} ADDs`);

  const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  console.log('');
  printTable(
    ['measure', 'samples', 'p50 (ms)', 'max (ms)', 'goal'],
    [
      ['convergence, 4 nodes', plain.length, fmtMs(median(plain)), fmtMs(Math.max(...plain)), 'p50 < 1000, max < 2000'],
      [
        'convergence, 4 nodes + 100 records',
        loaded.length,
        fmtMs(median(loaded)),
        fmtMs(Math.max(...loaded)),
        'p50 < 1000, max < 2000',
      ],
      ['ADD that claims a block', claims.length, fmtMs(median(claims)), fmtMs(Math.max(...claims)), ''],
      [
        'ADD that claims nothing (same run)',
        noClaims.length,
        fmtMs(median(noClaims)),
        fmtMs(Math.max(...noClaims)),
        '',
      ],
      ['  so a block claim costs', '', fmtMs(median(claims) - median(noClaims)), '', ''],
      [
        'ADD, etcd datastore',
        onEtcd.length,
        fmtMs(median(onEtcd)),
        fmtMs(pct(onEtcd, 0.9)) + ' (p90)',
        'within 5% of the file',
      ],
      ['ADD, cluster file', onFile.length, fmtMs(median(onFile)), fmtMs(pct(onFile, 0.9)) + ' (p90)', ''],
      ['  etcd / file', '', (median(onEtcd) / median(onFile)).toFixed(3) + 'x', '', '<= 1.05x'],
      ['node -e 0 (the floor)', floor.length, fmtMs(median(floor)), fmtMs(Math.max(...floor)), ''],
    ],
  );
  console.log(
    '\nADD times are from process start (the debug log); convergence from the block claim to the last peer route.',
  );
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '2' } } });
  main(() => bench({ rounds: Number(values.rounds) }));
}
