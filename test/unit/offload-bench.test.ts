// The pure helpers of bench/offload.mjs (bench/offload-figures.mjs): the figures it reports and the default it derives from them.
import { describe, expect, it } from 'vitest';

// Plain JS without type declarations: imported by URL so TypeScript types it loosely.
const bench = await import(new URL('../../bench/offload-figures.mjs', import.meta.url).href);

const ETHTOOL_K = `Features for vxlan.tabby:
rx-checksumming: on
tx-checksumming: off
	tx-checksum-ipv4: off [fixed]
	tx-checksum-ip-generic: off
tcp-segmentation-offload: off
	tx-tcp-segmentation: off [requested on]
	tx-tcp6-segmentation: off [requested on]
tx-udp_tnl-segmentation: off [fixed]
`;

describe('bench/offload.mjs helpers', () => {
  it('reads one feature of ethtool -k, with [fixed] and [requested on]', () => {
    expect(bench.ethtoolFeature(ETHTOOL_K, 'tx-checksum-ip-generic')).toEqual({
      on: false,
      fixed: false,
      requested: undefined,
    });
    expect(bench.ethtoolFeature(ETHTOOL_K, 'tx-checksum-ipv4')).toEqual({
      on: false,
      fixed: true,
      requested: undefined,
    });
    expect(bench.ethtoolFeature(ETHTOOL_K, 'tx-tcp-segmentation')).toEqual({
      on: false,
      fixed: false,
      requested: 'on',
    });
    expect(bench.ethtoolFeature(ETHTOOL_K, 'rx-checksumming')).toEqual({
      on: true,
      fixed: false,
      requested: undefined,
    });
    expect(bench.ethtoolFeature(ETHTOOL_K, 'tx-checksum-sctp')).toBeUndefined();
  });

  it("derives Felix's VTEP MACs (test vectors of calico's states_for_test.go)", () => {
    expect(bench.vtepMac('remotehostname', 4)).toBe('66:3e:ca:a4:db:65');
    expect(bench.vtepMac('remotehostname', 6)).toBe('66:a0:68:c9:4c:79');
  });

  it('gives the VXLAN MTUs of a 1500 host: 1450 (v4), 1430 (v6), and the unfragmented UDP payload', () => {
    expect(bench.vxlanMtu(1500, 4)).toBe(1450);
    expect(bench.vxlanMtu(1500, 6)).toBe(1430);
    expect(bench.udpPayload(1450, 4)).toBe(1422);
    expect(bench.udpPayload(1430, 6)).toBe(1382);
  });

  it('sums the TCP, UDP and UDP6 receive checksum errors', () => {
    const snmp = [
      'Ip: Forwarding DefaultTTL',
      'Ip: 1 64',
      'Tcp: RtoAlgorithm InSegs InErrs InCsumErrors',
      'Tcp: 1 100 2 3',
      'Udp: InDatagrams InErrors InCsumErrors',
      'Udp: 10 1 4',
      'UdpLite: InDatagrams InCsumErrors',
      'UdpLite: 0 9',
    ].join('\n');
    expect(bench.csumErrors(snmp, 'Udp6InDatagrams 5\nUdp6InCsumErrors 5\nUdpLite6InCsumErrors 7\n')).toBe(12);
  });

  it('takes TCP and UDP figures from iperf3 -J output', () => {
    const tcp = {
      end: {
        sum_sent: { bits_per_second: 2e9, retransmits: 7 },
        sum_received: { bits_per_second: 1.9e9 },
        cpu_utilization_percent: { host_total: 50, remote_total: 25 },
      },
    };
    expect(bench.iperfResult(tcp)).toEqual({ bps: 1.9e9, retransmits: 7, cpuSender: 50, cpuReceiver: 25 });
    const udp = {
      end: {
        sum: { bits_per_second: 4e8, lost_percent: 150 },
        sum_sent: { bytes: 1000, bits_per_second: 4e8 },
        sum_received: { bytes: 250, bits_per_second: 1e8 },
      },
    };
    expect(bench.iperfResult(udp)).toMatchObject({ bps: 1e8, lostPercent: 75 });
    expect(() => bench.iperfResult({ error: 'the server is busy' })).toThrow(/busy/);
    expect(bench.cpuSecondsPerGB(100, 8e9)).toBe(1);
  });

  const result = (family: number, offload: boolean | undefined, gbps: number, section = 'TCP') => ({
    section,
    case: { family, path: offload === undefined ? 'direct' : 'vxlan', offload },
    bps: gbps * 1e9,
  });

  it('recommends offload off only when turning it off helps somewhere and hurts nowhere', () => {
    const offHelps = [
      result(4, undefined, 10),
      result(4, true, 1),
      result(4, false, 9),
      result(6, true, 5),
      result(6, false, 5.2),
    ];
    expect(bench.verdict(offHelps)).toMatchObject({ favoursOff: 1, favoursOn: 0, neither: 1, recommended: 'off' });

    const mixed = [...offHelps, result(4, true, 8, 'UDP'), result(4, false, 4, 'UDP')];
    expect(bench.verdict(mixed)).toMatchObject({ favoursOff: 1, favoursOn: 1, recommended: 'on' });

    const noDifference = [result(4, true, 5), result(4, false, 5.4)];
    expect(bench.verdict(noDifference)).toMatchObject({ neither: 1, recommended: 'on' });
    expect(bench.verdict(noDifference).pairs[0].offOverOn).toBeCloseTo(1.08);
  });

  it('gives each case its ratio to the direct route of its family and section', () => {
    const rs = bench.withRatios([
      result(4, undefined, 10),
      result(4, true, 5),
      result(6, true, 4),
      result(6, false, 2),
    ]);
    expect(rs.map((r: { ratio: number; baseIs: string }) => [r.ratio, r.baseIs])).toEqual([
      [1, 'direct'],
      [0.5, 'direct'],
      [1, 'offload on'],
      [0.5, 'offload on'],
    ]);
  });

  it('keeps the hand-written notes of a report written again', () => {
    const raw = {
      started: '2026-12-01T00:00:00Z',
      machine: { os: 'Debian', kernel: '6.18', cpus: '2', iperf: 'iperf 3.12', ethtool: 'ethtool 6.1', load: '1' },
      loadAfter: '1',
      runs: 1,
      seconds: 1,
      omit: 0,
      sideEffects: ['tx-tcp-segmentation'],
      header: ['a'],
      rows: [['1']],
      results: [result(4, true, 5), result(4, false, 1)],
    };
    const first = bench.report(raw, undefined);
    expect(first).toContain('Measured default: offload on');
    const again = bench.report(
      raw,
      bench.existingNotes(first.replace('_(analysis and recommendation: to be written)_', 'MY NOTES')),
    );
    expect(again).toContain('MY NOTES');
    expect(again).not.toContain('to be written');
  });
});
