import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_DATA_DIR, parseIpamConf, parseResolvConf } from '../../ipam/config';
import { parseCniArgs } from '../../lib/cni/args';
import { CniEnv } from '../../lib/cni/env';
import { formatIP } from '../../lib/net/addr';
import { describeRangeSet } from '../../ipam/range';
import { expectCniError } from './cni-error';

const env = (args = ''): CniEnv => ({
  command: 'ADD',
  containerId: 'c1',
  netns: '/var/run/netns/c1',
  ifname: 'eth0',
  args: parseCniArgs(args),
  path: [],
});
const conf = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}, args = '') =>
  parseIpamConf(
    { cniVersion: '1.0.0', name: 'net1', type: 'tabby', ipam: { type: 'tabby-ipam', ...ipam }, ...extra },
    env(args),
  );
const sets = (c: ReturnType<typeof conf>) => c.rangeSets.map(describeRangeSet);
const bad = (ipam: Record<string, unknown>, msg: RegExp | string, extra: Record<string, unknown> = {}, args = '') =>
  expectCniError(() => conf(ipam, extra, args), 7, msg);

describe('parseIpamConf', () => {
  it('resolves a dual-stack config', () => {
    const c = conf({
      ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/120', gateway: 'fd00::fe' }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::fe' }],
      dataDir: '/tmp/x',
    });
    expect(c.type).toBe('tabby-ipam');
    expect(c.network).toBe('net1');
    expect(c.dataDir).toBe('/tmp/x');
    expect(sets(c)).toEqual(['10.0.0.1-10.0.0.254', 'fd00::1-fd00::ff']);
    expect(formatIP(c.rangeSets[1][0].gateway!)).toBe('fd00::fe');
    expect(c.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::fe' }]);
    expect(c.dns).toBeUndefined();
    expect(c.requested).toEqual([]);
  });

  it("defaults dataDir to host-local's and rejects a relative one", () => {
    expect(conf({ ranges: [[{ subnet: '10.0.0.0/24' }]] }).dataDir).toBe(DEFAULT_DATA_DIR);
    expect(DEFAULT_DATA_DIR).toBe('/var/lib/cni/networks');
    bad({ ranges: [[{ subnet: '10.0.0.0/24' }]], dataDir: 'rel/dir' }, /ipam\.dataDir/);
  });

  it('requires ipam and ipam.type', () => {
    expectCniError(() => parseIpamConf({ name: 'n' }, env()), 7, /^invalid config: ipam: is required/);
    expectCniError(() => parseIpamConf({ name: 'n', ipam: { ranges: [] } }, env()), 7, /ipam\.type: is required/);
  });

  it.each([
    [{ ranges: [[{}]] }, 'ipam.ranges[0][0].subnet: is required'],
    [{ ranges: [[{ subnet: 'nope' }]] }, 'ipam.ranges[0][0].subnet: "nope" is not a CIDR'],
    [{ ranges: [[{ subnet: 10 }]] }, 'ipam.ranges[0][0].subnet: must be a string'],
    [{ ranges: [[{ subnet: '10.0.0.1/24' }]] }, 'ipam.ranges[0][0]: network has host bits set'],
    [{ ranges: [[{ subnet: '10.0.0.0/31' }]] }, 'ipam.ranges[0][0]: network 10.0.0.0/31 too small'],
    [
      { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/24', gateway: 'x' }]] },
      'ipam.ranges[1][0].gateway: "x" is not an IP',
    ],
    [
      { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }]] },
      'ipam.ranges[0][0]: rangeStart 10.0.1.5 not in network',
    ],
    [{ ranges: [[]] }, 'ipam.ranges[0]: must be a non-empty list'],
    [{ ranges: [{ subnet: '10.0.0.0/24' }] }, 'ipam.ranges[0]: must be a non-empty list'],
    [{ ranges: 'x' }, 'ipam.ranges: must be a list'],
    [
      { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] },
      'ipam.ranges[0]: ranges in one rangeset must share',
    ],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.0.0/25' }]] }, 'ipam.ranges[0][1]: overlaps range 0'],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], routes: [{ dst: '10.0.0.0' }] }, 'ipam.routes[0].dst'],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], routes: [{ dst: '10.0.0.0/8', gw: 'x' }] }, 'ipam.routes[0].gw'],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], routes: [{}] }, 'ipam.routes[0].dst: is required'],
  ])('names the field: %j', (ipam, msg) => {
    bad(ipam, `invalid config: ${msg}`);
  });

  it('accepts two ranges in one set sharing a subnet without overlapping', () => {
    const c = conf({
      ranges: [
        [
          { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.19' },
          { subnet: '10.0.0.0/24', rangeStart: '10.0.0.20', rangeEnd: '10.0.0.29' },
        ],
      ],
    });
    expect(sets(c)).toEqual(['10.0.0.10-10.0.0.19,10.0.0.20-10.0.0.29']);
  });

  it('rejects overlapping rangesets', () => {
    bad(
      { ranges: [[{ subnet: '10.0.0.0/16' }], [{ subnet: '10.0.5.0/24' }]] },
      /^invalid config: ipam\.ranges: rangeset .* overlaps rangeset/,
    );
    bad({ subnet: '10.0.0.0/24', ranges: [[{ subnet: '10.0.0.0/24' }]] }, /ipam\.ranges: .*overlaps/);
  });

  it('puts a legacy top-level subnet first, with its own fields', () => {
    const c = conf({
      subnet: '10.9.0.0/24',
      rangeStart: '10.9.0.100',
      rangeEnd: '10.9.0.200',
      gateway: '10.9.0.254',
      ranges: [[{ subnet: '10.0.0.0/24' }]],
    });
    expect(sets(c)).toEqual(['10.9.0.100-10.9.0.200', '10.0.0.1-10.0.0.254']);
    expect(formatIP(c.rangeSets[0][0].gateway!)).toBe('10.9.0.254');
    bad({ subnet: 'x' }, 'invalid config: ipam.subnet');
  });

  it('prepends runtimeConfig.ipRanges before the legacy range and ranges', () => {
    const c = conf(
      { subnet: '10.9.0.0/24', ranges: [[{ subnet: '10.0.0.0/24' }]] },
      { runtimeConfig: { ipRanges: [[{ subnet: '10.7.0.0/24' }], [{ subnet: 'fd07::/64' }]] } },
    );
    expect(sets(c)).toEqual([
      '10.7.0.1-10.7.0.254',
      'fd07::1-fd07::ffff:ffff:ffff:ffff',
      '10.9.0.1-10.9.0.254',
      '10.0.0.1-10.0.0.254',
    ]);
    bad({}, 'invalid config: runtimeConfig.ipRanges[0][0].subnet', {
      runtimeConfig: { ipRanges: [[{ subnet: 'x' }]] },
    });
  });

  it('collects requested IPs from CNI_ARGS, args.cni.ips and runtimeConfig.ips, without duplicates', () => {
    const c = conf(
      { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] },
      { args: { cni: { ips: ['10.0.0.6/24', '10.0.0.5'] } }, runtimeConfig: { ips: ['fd00::5/64'] } },
      'IP=10.0.0.5;K8S_POD_NAME=p',
    );
    expect(c.requested.map(formatIP)).toEqual(['10.0.0.5', '10.0.0.6', 'fd00::5']);
  });

  it('accepts a comma-separated CNI_ARGS IP list', () => {
    const c = conf({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] }, {}, 'IP=10.0.0.5,fd00::5');
    expect(c.requested.map(formatIP)).toEqual(['10.0.0.5', 'fd00::5']);
  });

  it('names the source of a bad requested IP', () => {
    const ranges = [[{ subnet: '10.0.0.0/24' }]];
    bad({ ranges }, 'CNI_ARGS IP: "nope" is not an IP address', {}, 'IP=nope');
    bad({ ranges }, 'args.cni.ips[1]: "x" is not an IP address', { args: { cni: { ips: ['10.0.0.5', 'x'] } } });
    bad({ ranges }, 'runtimeConfig.ips[0]: must be a string', { runtimeConfig: { ips: [5] } });
    bad({ ranges }, 'args.cni.ips: must be a list', { args: { cni: { ips: '10.0.0.5' } } });
  });
});

describe('resolvConf', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const write = (text: string): string => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-resolv-'));
    const f = path.join(dir, 'resolv.conf');
    fs.writeFileSync(f, text);
    return f;
  };

  it('is parsed into dns as host-local does', () => {
    const f = write(
      [
        '# comment',
        '; other comment',
        '',
        'nameserver 10.96.0.10',
        '  nameserver   fd00::10  ',
        'domain cluster.local',
        'search svc.cluster.local cluster.local',
        'search extra',
        'options ndots:5 edns0',
        'nameserver',
        'sortlist 10.0.0.0',
      ].join('\n'),
    );
    const expected = {
      nameservers: ['10.96.0.10', 'fd00::10'],
      domain: 'cluster.local',
      search: ['svc.cluster.local', 'cluster.local', 'extra'],
      options: ['ndots:5', 'edns0'],
    };
    expect(parseResolvConf(f)).toEqual(expected);
    expect(conf({ ranges: [[{ subnet: '10.0.0.0/24' }]], resolvConf: f }).dns).toEqual(expected);
  });

  it('handles CRLF line endings', () => {
    expect(parseResolvConf(write('nameserver 1.1.1.1\r\nsearch a b\r\n'))).toEqual({
      nameservers: ['1.1.1.1'],
      search: ['a', 'b'],
    });
  });

  it('an unreadable file is a config error naming ipam.resolvConf', () => {
    expectCniError(
      () => parseResolvConf('/nonexistent/resolv.conf'),
      7,
      /ipam\.resolvConf: cannot read \/nonexistent\/resolv\.conf/,
    );
  });
});
