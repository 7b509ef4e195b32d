// Pod-to-pod throughput over VXLAN with the tunnel device's TX checksum offload on and off, beside a
// direct route, for IPv4 (vxlan.tabby) and IPv6 (vxlan-v6.tabby), in one run (tabby issue #11 §3).
//   node bench/offload.mjs [--runs 7] [--seconds 3] [--omit 1] [--out DIR] [--no-write] [--render offload.json]
//
// Why: Calico users see VXLAN throughput collapse on 6.12+ kernels until `ethtool -K vxlan.calico
// tx-checksum-ip-generic off` (projectcalico/calico#11435); Felix turns it off only on kernels <= 5.7
// unless told otherwise (FelixConfiguration `featureDetectOverride: "ChecksumOffloadBroken=true"`).
//
// Topology (all namespaces made here, removed at the end):
//   pod-a --veth-- node-a ==veth underlay 1500== node-b --veth-- pod-b
// Node underlay addresses 192.168.77.1-2/24 and fd00:77::1-2/64. Each pod is wired the way tabby wires
// one: /32 and /128 addresses, default routes via 169.254.1.1 (proxy ARP) and fe80::ecee:eeff:feee:eeee
// (the host end's link-local, MAC ee:ee:ee:ee:ee:ee), `<pod> dev <host end>` on the node.
// Each node has both tunnel devices the way tabby (v4) and Calico (v6) build them: VNI 4096, port 4789,
// nolearning, a VTEP MAC of 66 + sha1(name[+"-v6"])[0:5], the tunnel address on the device, and per remote
// node a permanent neighbour, a permanent FDB entry and `<block> via <tunnel addr> dev <vxlan> onlink`.
// A case switches the remote-block routes between the underlay (direct) and the tunnel, sets the pod MTU
// (host 1500 less 50 for v4 cases, less 70 for v6 cases; the direct baseline of a family gets the same MTU
// so the ratio isolates the encapsulation) and the offload on both nodes' tunnel devices.
// Cases run interleaved (round 1 of every case, then round 2, ...) so a load change on the shared cores
// hits every case alike. Every run also checks that the bytes went where the case says (the tunnel
// device's TX counter moves for VXLAN cases only) and counts checksum errors seen by the receivers.
// Plain Node ESM, argument arrays only.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { cleanup, createNetns, ip, IP, isMain, median, printTable, REPO, run } from './lib.mjs';
import {
  cpuSecondsPerGB,
  csumErrors,
  DEVICE,
  ethtoolFeature,
  existingNotes,
  gbit,
  HEADER,
  HOST_MTU,
  iperfResult,
  offloadLabel,
  report,
  tableRows,
  TX_CSUM_FEATURE,
  udpPayload,
  UDP_TNL_GSO,
  verdict,
  VNI,
  VXLAN_PORT,
  vtepMac,
  vxlanMtu,
} from './offload-figures.mjs';

const ETHTOOL = '/usr/sbin/ethtool';
const IPERF3 = '/usr/bin/iperf3';
const SYSCTL = '/usr/sbin/sysctl';
const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';
const GATEWAY_V4 = '169.254.1.1';
const GATEWAY_V6 = 'fe80::ecee:eeff:feee:eeee';

// ---------------------------------------------------------------------------------------------
// The two nodes and their pods.

const NODES = [
  {
    name: 'bench-node-a',
    under4: '192.168.77.1',
    under6: 'fd00:77::1',
    block4: '10.65.1.0/24',
    tunnel4: '10.65.1.1',
    pod4: '10.65.1.2',
    block6: 'fd65:0:0:1::/122',
    tunnel6: 'fd65:0:0:1::1',
    pod6: 'fd65:0:0:1::2',
  },
  {
    name: 'bench-node-b',
    under4: '192.168.77.2',
    under6: 'fd00:77::2',
    block4: '10.65.2.0/24',
    tunnel4: '10.65.2.1',
    pod4: '10.65.2.2',
    block6: 'fd65:0:0:2::/122',
    tunnel6: 'fd65:0:0:2::1',
    pod6: 'fd65:0:0:2::2',
  },
];

const batch = (ns, lines) => ip(['-n', ns, '-batch', '-'], lines.map((l) => l.join(' ')).join('\n') + '\n');
const inNs = (ns, file, args, opts) => run(IP, ['netns', 'exec', ns, file, ...args], opts);
async function mustInNs(ns, file, args) {
  const r = await inNs(ns, file, args);
  if (r.code !== 0)
    throw new Error(`${path.basename(file)} ${args.join(' ')} in ${ns}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}
const sysctls = (ns, pairs) => mustInNs(ns, SYSCTL, ['-q', '-w', ...pairs]);

export async function buildTopology() {
  const [na, nb, pa, pb] = await createNetns('o', 4);
  const nodes = NODES.map((n, i) => ({ ...n, ns: [na, nb][i], podNs: [pa, pb][i] }));
  for (const ns of [na, nb, pa, pb]) {
    await sysctls(ns, ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
  }
  await ip([
    'link',
    'add',
    'eth0',
    'netns',
    na,
    'mtu',
    String(HOST_MTU),
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    nb,
  ]);
  for (const [i, n] of nodes.entries()) {
    const peer = nodes[1 - i];
    await sysctls(n.ns, ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    // The pod's veth, created inside the node so the host end is born there.
    await batch(n.ns, [
      ['link', 'set', 'lo', 'up'],
      ['address', 'add', `${n.under4}/24`, 'dev', 'eth0'],
      ['address', 'add', `${n.under6}/64`, 'dev', 'eth0', 'nodad'],
      ['link', 'set', 'eth0', 'up'],
      // Proxy ARP answers for 169.254.1.1 only when the node has a route to it elsewhere, as real nodes do.
      ['route', 'add', 'default', 'via', peer.under4, 'dev', 'eth0'],
      ['link', 'add', 'tabpod', 'address', HOST_VETH_MAC, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.podNs],
      ['link', 'set', 'tabpod', 'up'],
      ['route', 'add', `${n.pod4}/32`, 'dev', 'tabpod', 'scope', 'link'],
      ['route', 'add', `${n.pod6}/128`, 'dev', 'tabpod'],
      // The two tunnel devices with their tunnel addresses.
      ...[4, 6].flatMap((f) => [
        [
          'link',
          'add',
          DEVICE[f],
          'address',
          vtepMac(n.name, f),
          'mtu',
          String(vxlanMtu(HOST_MTU, f)),
          'type',
          'vxlan',
          'id',
          String(VNI),
          'local',
          f === 4 ? n.under4 : n.under6,
          'dev',
          'eth0',
          'dstport',
          String(VXLAN_PORT),
          'nolearning',
        ],
        ['address', 'add', f === 4 ? `${n.tunnel4}/32` : `${n.tunnel6}/128`, 'dev', DEVICE[f]],
        ['link', 'set', DEVICE[f], 'up'],
        // Per remote node: neighbour and FDB entry (the route is set by the case).
        // (ip -batch lines take no -6: the family comes from the addresses.)
        [
          'neigh',
          'replace',
          f === 4 ? peer.tunnel4 : peer.tunnel6,
          'lladdr',
          vtepMac(peer.name, f),
          'dev',
          DEVICE[f],
          'nud',
          'permanent',
        ],
      ]),
    ]);
    await sysctls(n.ns, ['net.ipv4.conf.tabpod.proxy_arp=1']);
    for (const f of [4, 6]) {
      const dst = f === 4 ? peer.under4 : peer.under6;
      const r = await run('/usr/sbin/bridge', [
        '-n',
        n.ns,
        'fdb',
        'append',
        vtepMac(peer.name, f),
        'dev',
        DEVICE[f],
        'dst',
        dst,
        'self',
        'permanent',
      ]);
      if (r.code !== 0) throw new Error(`bridge fdb append in ${n.ns}: ${r.stderr.trim()}`);
    }
    await batch(n.podNs, [
      ['link', 'set', 'lo', 'up'],
      ['address', 'add', `${n.pod4}/32`, 'dev', 'eth0'],
      ['address', 'add', `${n.pod6}/128`, 'dev', 'eth0', 'nodad'],
      ['link', 'set', 'eth0', 'up'],
      ['route', 'add', GATEWAY_V4, 'dev', 'eth0', 'scope', 'link'],
      ['route', 'add', 'default', 'via', GATEWAY_V4, 'dev', 'eth0'],
      ['route', 'add', '::/0', 'via', GATEWAY_V6, 'dev', 'eth0'],
    ]);
  }
  return nodes;
}

// ---------------------------------------------------------------------------------------------
// Cases: what the dataplane looks like while one is measured, applied only where it differs.

/**
 * The state a case needs: remote-block routes per family, the pod MTU (the family's VXLAN MTU, also for
 * its direct baseline), offload on the tunnel devices, the underlay's tunnel GSO, the sending pod's TSO/GSO.
 */
function wanted(c) {
  return {
    path4: c.family === 4 ? c.path : 'direct',
    path6: c.family === 6 ? c.path : 'direct',
    mtu: vxlanMtu(HOST_MTU, c.family),
    offload4: c.family === 4 && c.offload !== undefined ? c.offload : true,
    offload6: c.family === 6 && c.offload !== undefined ? c.offload : true,
    underlayTnlGso: c.underlayTnlGso ?? true,
    podGso: c.podGso ?? true,
  };
}

async function setOffload(nodes, family, on) {
  for (const n of nodes) {
    await mustInNs(n.ns, ETHTOOL, ['-K', DEVICE[family], TX_CSUM_FEATURE, on ? 'on' : 'off']);
    const text = await mustInNs(n.ns, ETHTOOL, ['-k', DEVICE[family]]);
    const st = ethtoolFeature(text, TX_CSUM_FEATURE);
    if (st?.on !== on) throw new Error(`${DEVICE[family]} in ${n.ns}: ${TX_CSUM_FEATURE} is not ${on ? 'on' : 'off'}`);
  }
}

async function setRoutes(nodes, family, p) {
  for (const [i, n] of nodes.entries()) {
    const peer = nodes[1 - i];
    const block = family === 4 ? peer.block4 : peer.block6;
    const v = family === 4 ? [] : ['-6'];
    if (p === 'direct') {
      await ip([
        '-n',
        n.ns,
        ...v,
        'route',
        'replace',
        block,
        'via',
        family === 4 ? peer.under4 : peer.under6,
        'dev',
        'eth0',
      ]);
    } else {
      // Delete, then add: for IPv6 the kernel refuses an onlink gateway that an existing non-default
      // route on another device covers ("Nexthop has invalid gateway or device mismatch"), and the direct
      // route to the block covers the remote tunnel address, so `route replace` fails on 6.18.
      await ip(['-n', n.ns, ...v, 'route', 'del', block]).catch(() => undefined);
      const gw = family === 4 ? peer.tunnel4 : peer.tunnel6;
      await ip(['-n', n.ns, ...v, 'route', 'add', block, 'via', gw, 'dev', DEVICE[family], 'onlink']);
    }
  }
}

async function setPodMtu(nodes, mtu) {
  for (const n of nodes) {
    await ip(['-n', n.ns, 'link', 'set', 'dev', 'tabpod', 'mtu', String(mtu)]);
    await ip(['-n', n.podNs, 'link', 'set', 'dev', 'eth0', 'mtu', String(mtu)]);
  }
}

async function setUnderlayTnlGso(nodes, on) {
  for (const n of nodes) {
    await mustInNs(n.ns, ETHTOOL, ['-K', 'eth0', ...UDP_TNL_GSO.flatMap((f) => [f, on ? 'on' : 'off'])]);
  }
}

export /** TSO and GSO of the sending pod's eth0: off, TCP hands the stack MSS-sized packets, never super-packets. */
async function setPodGso(nodes, on) {
  await mustInNs(nodes[0].podNs, ETHTOOL, ['-K', 'eth0', 'tso', on ? 'on' : 'off', 'gso', on ? 'on' : 'off']);
}

export function makeApplier(nodes) {
  let cur = {};
  return async (c) => {
    const w = wanted(c);
    if (w.path4 !== cur.path4) await setRoutes(nodes, 4, w.path4);
    if (w.path6 !== cur.path6) await setRoutes(nodes, 6, w.path6);
    if (w.mtu !== cur.mtu) await setPodMtu(nodes, w.mtu);
    if (w.offload4 !== cur.offload4) await setOffload(nodes, 4, w.offload4);
    if (w.offload6 !== cur.offload6) await setOffload(nodes, 6, w.offload6);
    if (w.underlayTnlGso !== cur.underlayTnlGso) await setUnderlayTnlGso(nodes, w.underlayTnlGso);
    if (w.podGso !== cur.podGso) await setPodGso(nodes, w.podGso);
    cur = w;
    return w;
  };
}

// ---------------------------------------------------------------------------------------------
// Measuring.

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The device's TX counters: `{ bytes, packets }` (a GSO super-packet counts as one). */
async function txStats(ns, dev) {
  const [l] = JSON.parse(await ip(['-n', ns, '-s', '-j', 'link', 'show', 'dev', dev]));
  return { bytes: l.stats64.tx.bytes, packets: l.stats64.tx.packets };
}

async function nsCsumErrors(ns) {
  const snmp = await mustInNs(ns, '/usr/bin/cat', ['/proc/net/snmp']);
  const snmp6 = await mustInNs(ns, '/usr/bin/cat', ['/proc/net/snmp6']);
  return csumErrors(snmp, snmp6);
}

/** Starts iperf3 -s in pod b and waits (with a deadline) until it listens. */
async function startServer(podNs) {
  const child = spawn(IP, ['netns', 'exec', podNs, IPERF3, '-s'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b) => (stderr += b));
  process.on('exit', () => child.kill('SIGKILL'));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await inNs(podNs, '/usr/bin/ss', ['-Hltn', 'sport', '=', ':5201']);
    if (r.stdout.trim()) return child;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`iperf3 -s did not start: ${stderr.trim()}`);
    await sleep(20);
  }
}

/** One iperf3 run of case `c` from pod a to pod b. */
async function measure(nodes, c, w, { seconds, omit }) {
  const [a, b] = nodes;
  const dst = c.family === 4 ? b.pod4 : b.pod6;
  const args = ['-c', dst, '-t', String(seconds), '-O', String(c.udp ? 0 : omit), '-J', '--connect-timeout', '5000'];
  if (c.streams > 1) args.push('-P', String(c.streams));
  if (c.udp) args.push('-u', '-b', '0', '-l', String(udpPayload(w.mtu, c.family)));
  const dev = DEVICE[c.family];
  const tx0 = await txStats(a.ns, dev);
  const err0 = (await nsCsumErrors(b.podNs)) + (await nsCsumErrors(b.ns)) + (await nsCsumErrors(a.podNs));
  const r = await inNs(a.podNs, IPERF3, args, { timeoutMs: (seconds + omit + 30) * 1000 });
  let json;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new Error(`${c.id}: iperf3 exit ${r.code}: ${r.stderr.trim() || r.stdout.slice(0, 300)}`);
  }
  const res = iperfResult(json);
  const tx1 = await txStats(a.ns, dev);
  const tunnelBytes = tx1.bytes - tx0.bytes;
  const err1 = (await nsCsumErrors(b.podNs)) + (await nsCsumErrors(b.ns)) + (await nsCsumErrors(a.podNs));
  // The bytes must have gone where the case says: through the tunnel for VXLAN, not at all for direct.
  const sentBytes = (res.bps / 8) * seconds;
  if (c.path === 'vxlan' && tunnelBytes < sentBytes * 0.5)
    throw new Error(`${c.id}: only ${tunnelBytes} bytes left through ${dev} (expected about ${Math.round(sentBytes)})`);
  if (c.path === 'direct' && tunnelBytes > 1_000_000)
    throw new Error(`${c.id}: ${tunnelBytes} bytes went through ${dev}`);
  // Bytes per packet the tunnel device sent: tens of KB while super-packets cross it whole, the MTU once
  // they are segmented before it.
  const tunnelPacketBytes = c.path === 'vxlan' ? tunnelBytes / (tx1.packets - tx0.packets) : undefined;
  return { ...res, csumErrors: err1 - err0, tunnelPacketBytes };
}

/** Ping both ways at the full pod MTU with don't-fragment: proves the case's path and MTU before measuring. */
async function checkPath(nodes, c, w) {
  for (const [i, n] of nodes.entries()) {
    const peer = nodes[1 - i];
    const dst = c.family === 4 ? peer.pod4 : peer.pod6;
    const size = w.mtu - (c.family === 4 ? 28 : 48);
    // Retried until a deadline: the first packet waits for proxy ARP / neighbour discovery.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await inNs(n.podNs, '/usr/bin/ping', [
        '-n',
        '-q',
        '-M',
        'do',
        '-s',
        String(size),
        '-c',
        '1',
        '-W',
        '1',
        dst,
      ]);
      if (r.code === 0) break;
      if (Date.now() > deadline)
        throw new Error(`${c.id}: ping ${dst} -s ${size} from ${n.name}'s pod failed: ${r.stdout}${r.stderr}`);
    }
  }
}

/** The cases of one section: direct, VXLAN offload on, VXLAN offload off, for both families. */
function section(title, extra, { withDirect = true } = {}) {
  const cases = [];
  for (const family of [4, 6]) {
    if (withDirect) cases.push({ family, path: 'direct', ...extra });
    for (const offload of [true, false]) cases.push({ family, path: 'vxlan', offload, ...extra });
  }
  for (const c of cases) {
    c.id = `${title}/${c.family === 4 ? 'v4' : 'v6'}/${c.path === 'direct' ? 'direct' : DEVICE[c.family]}/${offloadLabel(c)}`;
  }
  return { title, cases };
}

export const SECTIONS = [
  section('TCP, 1 stream', { streams: 1 }),
  section('TCP, 4 streams', { streams: 4 }),
  section('UDP, unlimited rate, MTU-sized datagrams', { udp: true }),
  section(
    'TCP, 1 stream, underlay without UDP-tunnel segmentation',
    { streams: 1, underlayTnlGso: false },
    { withDirect: false },
  ),
  section('TCP, 1 stream, sending pod without TSO/GSO', { streams: 1, podGso: false }),
];

async function offloadSideEffects(nodes) {
  // What else the kernel switches off with tx-checksum-ip-generic: read the device after turning it off.
  const n = nodes[0];
  await setOffload(nodes, 4, false);
  const text = await mustInNs(n.ns, ETHTOOL, ['-k', DEVICE[4]]);
  await setOffload(nodes, 4, true);
  return text
    .split('\n')
    .filter((l) => /\[requested on\]/.test(l))
    .map((l) => l.trim().split(':')[0]);
}

export async function offload({ runs = 7, seconds = 3, omit = 1 } = {}) {
  const nodes = await buildTopology();
  const server = await startServer(nodes[1].podNs);
  const apply = makeApplier(nodes);
  const sideEffects = await offloadSideEffects(nodes);
  const results = [];
  try {
    for (const s of SECTIONS) {
      console.log(`== ${s.title}: ${runs} x ${seconds} s (+${omit} s omitted) per case, interleaved`);
      const samples = new Map(s.cases.map((c) => [c.id, []]));
      for (const c of s.cases) await checkPath(nodes, c, await apply(c));
      for (let r = 0; r < runs; r++) {
        for (const c of s.cases) {
          const w = await apply(c);
          const m = await measure(nodes, c, w, { seconds, omit });
          samples.get(c.id).push(m);
          process.stdout.write(`  round ${r + 1} ${c.id}: ${gbit(m.bps)} Gbit/s\n`);
        }
      }
      for (const c of s.cases) {
        const ms = samples.get(c.id);
        results.push({
          section: s.title,
          case: c,
          mtu: wanted(c).mtu,
          bps: median(ms.map((m) => m.bps)),
          samples: ms.map((m) => m.bps),
          retransmits: c.udp ? undefined : median(ms.map((m) => m.retransmits)),
          lostPercent: c.udp ? median(ms.map((m) => m.lostPercent)) : undefined,
          cpuSender: median(ms.map((m) => m.cpuSender ?? NaN)),
          cpuPerGB: median(ms.map((m) => cpuSecondsPerGB((m.cpuSender ?? NaN) + (m.cpuReceiver ?? NaN), m.bps))),
          csumErrors: ms.reduce((t, m) => t + m.csumErrors, 0),
          tunnelPacketBytes: c.path === 'vxlan' ? median(ms.map((m) => m.tunnelPacketBytes)) : undefined,
        });
      }
    }
  } finally {
    server.kill('SIGTERM');
  }
  return { results, sideEffects, nodes };
}

// ---------------------------------------------------------------------------------------------
// The table and the report.

async function machine() {
  const os_ = fs.existsSync('/etc/debian_version')
    ? `Debian ${fs.readFileSync('/etc/debian_version', 'utf8').trim()}`
    : os.type();
  const iperf = (await run(IPERF3, ['--version'])).stdout.split('\n')[0];
  const ethtool = (await run(ETHTOOL, ['--version'])).stdout.trim();
  return {
    os: os_,
    kernel: os.release(),
    cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`,
    iperf,
    ethtool,
    load: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}

function writeReport(raw, mdPath) {
  const old = fs.existsSync(mdPath) ? existingNotes(fs.readFileSync(mdPath, 'utf8')) : undefined;
  fs.writeFileSync(mdPath, report(raw, old));
}

if (isMain(import.meta.url)) {
  const RESULTS = path.join(REPO, 'bench/results');
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '7' },
      seconds: { type: 'string', default: '3' },
      omit: { type: 'string', default: '1' },
      out: { type: 'string', default: RESULTS },
      'no-write': { type: 'boolean', default: false },
      render: { type: 'string' }, // re-write the report from a saved offload.json, measuring nothing
    },
  });
  const jsonPath = path.join(values.out, 'offload.json');
  const mdPath = path.join(values.out, 'offload.md');
  try {
    if (values.render) {
      writeReport(JSON.parse(fs.readFileSync(values.render, 'utf8')), mdPath);
      console.log(`wrote ${path.relative(REPO, mdPath)}`);
    } else {
      if (process.getuid?.() !== 0) throw new Error('must run as root (network namespaces)');
      for (const f of [IPERF3, ETHTOOL]) if (!fs.existsSync(f)) throw new Error(`${f} not found: run test/setup.sh`);
      const before = await machine();
      const started = new Date();
      const opts = { runs: Number(values.runs), seconds: Number(values.seconds), omit: Number(values.omit) };
      const res = await offload(opts);
      const after = await machine();
      console.log();
      console.log(
        `${before.os}, kernel ${before.kernel}, ${before.cpus}, ${before.iperf}; load ${before.load} -> ${after.load}`,
      );
      console.log(`turning ${TX_CSUM_FEATURE} off also turned off: ${res.sideEffects.join(', ') || 'nothing else'}\n`);
      const rows = tableRows(res.results);
      printTable(HEADER, rows);
      const v = verdict(res.results);
      console.log(
        `\noffload off vs on: ${v.favoursOn} case(s) favour on, ${v.favoursOff} off, ${v.neither} neither: default ${v.recommended}`,
      );
      if (!values['no-write']) {
        const raw = {
          started: started.toISOString(),
          machine: before,
          loadAfter: after.load,
          ...opts,
          sideEffects: res.sideEffects,
          header: HEADER,
          rows,
          results: res.results,
        };
        fs.mkdirSync(values.out, { recursive: true });
        fs.writeFileSync(jsonPath, JSON.stringify(raw, null, 2) + '\n');
        writeReport(raw, mdPath);
        console.log(`wrote ${path.relative(REPO, jsonPath)} and ${path.relative(REPO, mdPath)}`);
      }
    }
  } catch (e) {
    console.error(`\nBENCHMARK FAILED: ${e.message}`);
    process.exitCode = 1;
  } finally {
    await cleanup().catch((e) => console.error(`cleanup: ${e.message}`));
  }
}
