// The figures of bench/offload.mjs and its report: pure functions only (no namespaces, no processes),
// so test/unit/offload-bench.test.ts can check them. Plain Node ESM.
import { createHash } from 'node:crypto';

export const HOST_MTU = 1500;
export const VNI = 4096;
export const VXLAN_PORT = 4789;
/** The feature that `ethtool -K <dev> tx off` and Felix's ETHTOOL_STXCSUM turn off on a vxlan device. */
export const TX_CSUM_FEATURE = 'tx-checksum-ip-generic';
/** The underlay's "segment after encapsulation" features (a NIC without VXLAN TSO lacks them). */
export const UDP_TNL_GSO = ['tx-udp_tnl-segmentation', 'tx-udp_tnl-csum-segmentation'];
/** tabby's names for the tunnel devices (Calico's vxlan.calico and vxlan-v6.calico). */
export const DEVICE = { 4: 'vxlan.tabby', 6: 'vxlan-v6.tabby' };
/** Bytes a VXLAN encapsulation adds: outer IP (20 or 40) + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const vxlanOverhead = (family) => (family === 4 ? 20 : 40) + 8 + 8 + 14;
/** The pod MTU a family's tunnel allows on a host MTU (Calico's VXLANMTU / VXLANMTUV6 defaults). */
export const vxlanMtu = (hostMtu, family) => hostMtu - vxlanOverhead(family);
/** The largest UDP payload that fits the MTU unfragmented. */
export const udpPayload = (mtu, family) => mtu - (family === 4 ? 20 : 40) - 8;

/** Felix's VTEP MAC: 0x66 followed by the first five bytes of sha1(name), name + "-v6" for IPv6. */
export function vtepMac(nodeName, family) {
  const h = createHash('sha1')
    .update(family === 4 ? nodeName : `${nodeName}-v6`)
    .digest();
  return ['66', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/**
 * One feature's state from `ethtool -k` output: `{ on, fixed, requested }` (`requested` is what the
 * user asked for when the kernel holds the feature elsewhere, e.g. "off [requested on]"), or undefined.
 */
export function ethtoolFeature(text, name) {
  const line = text.split('\n').find((l) => l.trim().startsWith(`${name}:`));
  if (!line) return undefined;
  const m = /:\s*(on|off)(?:\s*\[(fixed|requested (?:on|off))\])?/.exec(line);
  if (!m) return undefined;
  return {
    on: m[1] === 'on',
    fixed: m[2] === 'fixed',
    requested: m[2]?.startsWith('requested') ? m[2].slice(10) : undefined,
  };
}

/** Sums the receive checksum-error counters of /proc/net/snmp and /proc/net/snmp6 text. */
export function csumErrors(snmp, snmp6) {
  let total = 0;
  const lines = snmp.split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    const [proto, ...names] = lines[i].trim().split(/\s+/);
    const [proto2, ...values] = lines[i + 1].trim().split(/\s+/);
    if (proto !== proto2 || !['Tcp:', 'Udp:'].includes(proto)) continue;
    const k = names.indexOf('InCsumErrors');
    if (k >= 0) total += Number(values[k]);
    i++;
  }
  for (const l of snmp6.split('\n')) {
    const [name, value] = l.trim().split(/\s+/);
    if (name === 'Udp6InCsumErrors') total += Number(value);
  }
  return total;
}

/**
 * CPU seconds both iperf3 processes spent per gigabyte delivered. The softirq work of the whole path
 * (forwarding, encapsulation, the veths) mostly runs in the sending task's context, so this is a fair
 * cost measure, and it holds up better than throughput when other work shares the cores.
 */
export const cpuSecondsPerGB = (cpuPercentTotal, bps) => ((cpuPercentTotal / 100) * 8e9) / bps;

/** Throughput from iperf3 -J output, in bit/s as the receiver saw it, plus what else is worth a column. */
export function iperfResult(json) {
  const end = json.end ?? {};
  if (json.error) throw new Error(`iperf3: ${json.error}`);
  if (end.sum_sent && end.sum_received && !end.sum) {
    // TCP
    return {
      bps: end.sum_received.bits_per_second,
      retransmits: end.sum_sent.retransmits ?? 0,
      cpuSender: end.cpu_utilization_percent?.host_total,
      cpuReceiver: end.cpu_utilization_percent?.remote_total,
    };
  }
  // UDP: what the receiver got; the loss from bytes sent and received (iperf3's own lost_percent goes
  // past 100 % when the first seconds are omitted, so UDP runs omit nothing).
  const sent = end.sum_sent ?? end.sum;
  const got = end.sum_received ?? end.sum;
  return {
    bps: got.bits_per_second,
    lostPercent: sent.bytes ? 100 * (1 - got.bytes / sent.bytes) : 0,
    cpuSender: end.cpu_utilization_percent?.host_total,
    cpuReceiver: end.cpu_utilization_percent?.remote_total,
  };
}

export const offloadLabel = (c) => (c.offload === undefined ? '-' : c.offload ? 'on' : 'off');

export const gbit = (bps) => (bps / 1e9).toFixed(2);

/** Each result's ratio to its section's direct baseline of the same family (or to offload on when there is none). */
export function withRatios(results) {
  return results.map((r) => {
    const base =
      results.find((b) => b.section === r.section && b.case.family === r.case.family && b.case.path === 'direct') ??
      results.find((b) => b.section === r.section && b.case.family === r.case.family && b.case.offload === true);
    return { ...r, ratio: r.bps / base.bps, baseIs: base.case.path === 'direct' ? 'direct' : 'offload on' };
  });
}

/** Rows for the table: section, family, path, offload, MTU, median Gbit/s, min-max, ratio, retrans/loss, csum errors. */
export function tableRows(results) {
  return withRatios(results).map((r) => [
    r.section,
    r.case.family === 4 ? 'IPv4' : 'IPv6',
    r.case.path === 'direct' ? 'direct route' : DEVICE[r.case.family],
    offloadLabel(r.case),
    String(r.mtu),
    gbit(r.bps),
    `${gbit(Math.min(...r.samples))}-${gbit(Math.max(...r.samples))}`,
    `${r.ratio.toFixed(2)}x${r.baseIs === 'direct' ? '' : ' (of on)'}`,
    r.case.udp ? `${r.lostPercent.toFixed(1)} % lost` : String(Math.round(r.retransmits)),
    Number.isFinite(r.cpuPerGB) ? r.cpuPerGB.toFixed(2) : '-',
    r.tunnelPacketBytes === undefined ? '-' : String(Math.round(r.tunnelPacketBytes)),
    String(r.csumErrors),
  ]);
}

export const HEADER = [
  'case',
  'family',
  'path',
  'tx csum offload',
  'pod MTU',
  'median Gbit/s',
  'min-max',
  'vs direct',
  'retrans / loss',
  'CPU s/GB',
  'B per tunnel packet',
  'csum errors',
];

export function markdownTable(header, rows) {
  const line = (r) => `| ${r.join(' | ')} |`;
  return [line(header), `|${header.map((_, i) => (i < 4 ? '---' : '---:')).join('|')}|`, ...rows.map(line)].join('\n');
}

/** A case favours one setting when the other is at least this much slower (the runs' noise is ~10 %). */
export const CLEAR_DIFFERENCE = 0.1;

/**
 * Offload off against offload on for every section and family, and the default that follows: `off` only
 * when turning it off helps somewhere and hurts nowhere; otherwise `on` (the kernel's own default).
 */
export function verdict(results) {
  const pairs = [];
  for (const on of results.filter((r) => r.case.path === 'vxlan' && r.case.offload === true)) {
    const off = results.find(
      (r) => r.section === on.section && r.case.family === on.case.family && r.case.offload === false,
    );
    if (!off) continue;
    const offOverOn = off.bps / on.bps;
    const favours = offOverOn >= 1 + CLEAR_DIFFERENCE ? 'off' : offOverOn <= 1 - CLEAR_DIFFERENCE ? 'on' : 'neither';
    const cpu = { cpuOn: on.cpuPerGB, cpuOff: off.cpuPerGB };
    pairs.push({ section: on.section, family: on.case.family, on: on.bps, off: off.bps, offOverOn, favours, ...cpu });
  }
  const count = (f) => pairs.filter((p) => p.favours === f).length;
  const recommended = count('off') > 0 && count('on') === 0 ? 'off' : 'on';
  return { pairs, favoursOn: count('on'), favoursOff: count('off'), neither: count('neither'), recommended };
}

const NOTES_BEGIN = '<!-- notes: kept when the report is written again -->';
const NOTES_END = '<!-- /notes -->';

/** The report as Markdown; `notes` (hand-written analysis) is carried over between runs. */
export function report(raw, notes) {
  const results = raw.results;
  const v = verdict(results);
  const m = raw.machine;
  const pct = (x) => `${x >= 1 ? '+' : ''}${((x - 1) * 100).toFixed(0)} %`;
  return `# VXLAN TX checksum offload: pod-to-pod throughput (tabby issue #11 §3)

Written by \`npm run bench:offload\` (bench/offload.mjs); the raw samples are in offload.json beside it.

- **Machine:** ${m.os}, kernel **${m.kernel}**, ${m.cpus} (shared with other work: load average ${m.load} at the start, ${raw.loadAfter} at the end)
- **Date:** ${raw.started}
- **Tools:** ${m.iperf}; ${m.ethtool}
- **Method:** iperf3 from pod a to pod b on two simulated nodes (network namespaces; underlay: one veth pair, MTU ${HOST_MTU}).
  ${raw.runs} runs × ${raw.seconds} s per case (TCP runs first omit ${raw.omit} s of slow start), all cases of a section interleaved
  round by round; the table gives the median and the range. Every run checks that the bytes took the case's path (the tunnel
  device's TX counter) and counts the receivers' checksum errors (\`InCsumErrors\`, \`Udp6InCsumErrors\`).
- **MTU:** host ${HOST_MTU}; pod MTU ${vxlanMtu(HOST_MTU, 4)} for IPv4 cases (${HOST_MTU} − ${vxlanOverhead(4)}), ${vxlanMtu(HOST_MTU, 6)} for IPv6 cases
  (${HOST_MTU} − ${vxlanOverhead(6)}); the direct baseline of a family uses the same pod MTU, so its ratio is the cost of encapsulation alone.
- **Devices:** \`vxlan.tabby\` / \`vxlan-v6.tabby\`: VNI ${VNI}, dstport ${VXLAN_PORT}, nolearning, local = the node's v4 / v6 underlay address,
  VTEP MAC 66 + sha1(node[+"-v6"])[0:5]; per remote node a permanent neighbour, a permanent FDB entry and
  \`<block> via <tunnel address> dev <device> onlink\`. Offload off = \`ethtool -K <device> ${TX_CSUM_FEATURE} off\` on both nodes;
  the kernel then also drops: ${raw.sideEffects.map((f) => `\`${f}\``).join(', ') || 'nothing else'}.
- **The GSO checks:** "underlay without UDP-tunnel segmentation" turns ${UDP_TNL_GSO.map((f) => `\`${f}\``).join(' and ')}
  off on the underlay veths, so an encapsulated TCP super-packet is segmented in software after encapsulation (as on a NIC
  without VXLAN TSO) instead of crossing the veth whole. "sending pod without TSO/GSO" turns \`tso\` and \`gso\` off on the
  sending pod's eth0, so no super-packet reaches the tunnel at all: what is left between on and off is the checksum alone.
- **Columns:** retransmits (TCP) or the share of bytes sent but not received (UDP), medians; \`CPU s/GB\` is the CPU time of
  both iperf3 processes per GB delivered (the forwarding and tunnel work mostly runs in the sender's softirq context), a cost
  figure that suffers less than throughput when other work shares the cores; \`B per tunnel packet\` is the tunnel device's TX
  bytes over its TX packets (a GSO super-packet counts once); \`csum errors\` is the total over all runs.

${markdownTable(raw.header, raw.rows)}

## Offload off against offload on

${markdownTable(
  ['case', 'family', 'on, Gbit/s', 'off, Gbit/s', 'off vs on', 'favours', 'CPU s/GB on', 'CPU s/GB off'],
  v.pairs.map((p) => [
    p.section,
    `IPv${p.family}`,
    gbit(p.on),
    gbit(p.off),
    pct(p.offOverOn),
    p.favours,
    Number.isFinite(p.cpuOn) ? p.cpuOn.toFixed(2) : '-',
    Number.isFinite(p.cpuOff) ? p.cpuOff.toFixed(2) : '-',
  ]),
)}

Rule (\`verdict()\` in bench/offload-figures.mjs): a case favours a setting when the other is at least ${CLEAR_DIFFERENCE * 100} % slower;
the default is \`off\` only if turning offload off helps somewhere and hurts nowhere.
Here: ${v.favoursOn} case(s) favour **on**, ${v.favoursOff} favour **off**, ${v.neither} show no clear difference.
**Measured default: offload ${v.recommended}.**

${NOTES_BEGIN}
${(notes ?? '').trim() || '_(analysis and recommendation: to be written)_'}
${NOTES_END}
`;
}

/** The hand-written notes of an existing report, if any. */
export function existingNotes(md) {
  const a = md.indexOf(NOTES_BEGIN);
  const b = md.indexOf(NOTES_END);
  return a >= 0 && b > a ? md.slice(a + NOTES_BEGIN.length, b) : undefined;
}
