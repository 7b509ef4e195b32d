import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ClusterResources, NodeRecord } from '../../conf/calico';
import { formatIP, parseIP } from '../../lib/net/addr';
import {
  autodetectAddress,
  blocksOf,
  derivedTunnelAddr,
  HostAddress,
  ipipTunnelAddr,
  vtepMac,
  vtepMacFor,
  vtepMacV6,
  vtepMacV6For,
  vxlanTunnelAddr,
  vxlanV6TunnelAddr,
} from '../../lib/cluster/identity';
import { validAutodetectMethod } from '../../conf/autodetect';
import { aff, cidr, pool } from '../helpers/fixtures';

/** Calico's derivation, written out independently: 0x66, then the first five bytes of sha1(name). */
function calicoMac(name: string): string {
  const h = createHash('sha1').update(name, 'utf8').digest('hex');
  return ['66', h.slice(0, 2), h.slice(2, 4), h.slice(4, 6), h.slice(6, 8), h.slice(8, 10)].join(':');
}

const show = (a: ReturnType<typeof derivedTunnelAddr>) => (a ? formatIP(a) : undefined);

describe('vtepMacFor', () => {
  it.each(['node-a', 'node-b', 'ip-10-0-0-5.ec2.internal', 'k8s-worker-01', 'a', 'ünïcödé-node'])(
    'matches Calico for %s',
    (name) => {
      expect(vtepMacFor(name)).toBe(calicoMac(name));
    },
  );

  it('gives known values', () => {
    // printf node-a | sha1sum = 0702c1cc60ff9e13...
    expect(vtepMacFor('node-a')).toBe('66:07:02:c1:cc:60');
    expect(vtepMacFor('ip-10-0-0-5.ec2.internal')).toBe('66:c5:b1:66:26:a8');
  });

  it('is a locally administered unicast MAC in lower case', () => {
    const m = vtepMacFor('node-x');
    expect(m).toMatch(/^66(:[0-9a-f]{2}){5}$/);
    const first = parseInt(m.slice(0, 2), 16);
    expect(first & 0x02).toBe(0x02); // locally administered
    expect(first & 0x01).toBe(0); // unicast
  });

  it('is what vtepMac gives unless the node record sets a MAC', () => {
    expect(vtepMac({ name: 'node-a' })).toBe(calicoMac('node-a'));
    expect(vtepMac({ name: 'node-a', vxlanTunnelMACAddr: '66:aa:bb:cc:dd:ee' })).toBe('66:aa:bb:cc:dd:ee');
  });
});

describe('tunnel addresses', () => {
  const r: ClusterResources = {
    pools: [
      pool('plain', '10.10.0.0/16', { blockSize: 24 }),
      pool('vx', '10.20.0.0/16', { blockSize: 24, vxlanMode: 'CrossSubnet' }),
      pool('ip', '10.30.0.0/16', { blockSize: 24, ipipMode: 'Always' }),
      pool('vx6', 'fd00:20::/48', { vxlanMode: 'Always' }),
    ],
    nodes: [],
    affinities: [
      // listed out of order: the lowest block counts, not the first in the file
      aff('n1', '10.20.9.0/24'),
      aff('n1', 'fd00:20::/122'),
      aff('n1', '10.20.3.0/24'),
      aff('n1', '10.10.1.0/24'),
      aff('n1', '10.30.7.0/24'),
      aff('n1', '10.30.5.0/24'),
      aff('n2', '10.10.2.0/24'),
      aff('n3', '10.20.4.0/24'),
    ],
  };

  it("orders a node's blocks lowest first, and only its own", () => {
    expect(
      blocksOf(r, 'n1').map((b) => (b.cidr.ip.family === 4 ? `${formatIP(b.cidr.ip)}/${b.cidr.prefix}` : 'v6')),
    ).toEqual(['10.10.1.0/24', '10.20.3.0/24', '10.20.9.0/24', '10.30.5.0/24', '10.30.7.0/24', 'v6']);
    expect(blocksOf(r, 'n2')).toHaveLength(1);
    expect(blocksOf(r, 'nobody')).toEqual([]);
  });

  it('derives the first address after the network address of the lowest block in a pool of that encapsulation', () => {
    expect(show(derivedTunnelAddr(r, 'n1', 'vxlan'))).toBe('10.20.3.1');
    expect(show(derivedTunnelAddr(r, 'n1', 'ipip'))).toBe('10.30.5.1');
    expect(show(derivedTunnelAddr(r, 'n3', 'vxlan'))).toBe('10.20.4.1');
  });

  it('derives none without a block in such a pool (IPv6 blocks do not count)', () => {
    expect(derivedTunnelAddr(r, 'n2', 'vxlan')).toBeUndefined();
    expect(derivedTunnelAddr(r, 'n2', 'ipip')).toBeUndefined();
    expect(derivedTunnelAddr(r, 'n3', 'ipip')).toBeUndefined();
    const v6only: ClusterResources = { ...r, affinities: [aff('n6', 'fd00:20::40/122')] };
    expect(derivedTunnelAddr(v6only, 'n6', 'vxlan')).toBeUndefined();
  });

  it("derives the IPv6 VXLAN tunnel address from the lowest v6 block of a v6 VXLAN pool, or takes the record's", () => {
    expect(show(derivedTunnelAddr(r, 'n1', 'vxlan', 6))).toBe('fd00:20::1');
    const two: ClusterResources = { ...r, affinities: [aff('n6', 'fd00:20::80/122'), aff('n6', 'fd00:20::40/122')] };
    expect(show(vxlanV6TunnelAddr(two, { name: 'n6' }))).toBe('fd00:20::41');
    expect(show(vxlanV6TunnelAddr(two, { name: 'n6', ipv6VXLANTunnelAddr: parseIP('fd00:20::99')! }))).toBe(
      'fd00:20::99',
    );
    expect(derivedTunnelAddr(r, 'n2', 'vxlan', 6)).toBeUndefined();
    const never: ClusterResources = { ...r, pools: r.pools.map((p) => ({ ...p, vxlanMode: 'Never' as const })) };
    expect(derivedTunnelAddr(never, 'n1', 'vxlan', 6)).toBeUndefined();
  });

  it('works for small blocks too', () => {
    const small: ClusterResources = {
      pools: [pool('p', '10.40.0.0/16', { vxlanMode: 'Always' })],
      nodes: [],
      affinities: [aff('n', '10.40.0.192/26'), aff('n', '10.40.1.0/26')],
    };
    expect(show(derivedTunnelAddr(small, 'n', 'vxlan'))).toBe('10.40.0.193');
  });

  it("prefers the Node record's addresses", () => {
    const n1: NodeRecord = {
      name: 'n1',
      ipv4VXLANTunnelAddr: parseIP('10.20.9.77')!,
      ipv4IPIPTunnelAddr: parseIP('10.30.7.77')!,
    };
    expect(show(vxlanTunnelAddr(r, n1))).toBe('10.20.9.77');
    expect(show(ipipTunnelAddr(r, n1))).toBe('10.30.7.77');
    expect(show(vxlanTunnelAddr(r, { name: 'n1' }))).toBe('10.20.3.1');
    expect(show(ipipTunnelAddr(r, { name: 'n1' }))).toBe('10.30.5.1');
  });
});

describe('autodetectAddress', () => {
  const ha = (ifname: string, c: string): HostAddress => ({ ifname, cidr: cidr(c) });
  const addrs = [
    ha('lo', '127.0.0.1/8'),
    ha('docker0', '172.17.0.1/16'),
    ha('eth0', 'fd00:1::5/64'),
    ha('eth0', '192.168.10.11/24'),
    ha('ens4', '10.0.0.5/24'),
    ha('ens5', '10.1.0.5/24'),
  ];
  const noRoute = () => undefined;
  /** `defDev` null: no default route. */
  const found = (
    m: string | undefined,
    defDev: string | null = 'eth0',
    routeTo: (ip: string) => string | undefined = noRoute,
  ) => {
    const a = autodetectAddress(m, addrs, defDev ?? undefined, routeTo);
    return a && `${a.ifname} ${formatIP(a.cidr.ip)}/${a.cidr.prefix}`;
  };

  it("first-found (the default) takes the IPv4 address of the default route's interface, with its prefix", () => {
    expect(found(undefined)).toBe('eth0 192.168.10.11/24');
    expect(found('first-found')).toBe('eth0 192.168.10.11/24');
    expect(found('first-found', 'ens5')).toBe('ens5 10.1.0.5/24');
  });

  it('first-found without a default route takes the first IPv4 address not on a bridge, veth, tunnel or lo (as Calico)', () => {
    expect(found(undefined, null)).toBe('eth0 192.168.10.11/24');
    const skipped = [
      'lo',
      'docker0',
      'cbr0',
      'virbr0',
      'veth1a2b',
      'cali12345',
      'tunl0',
      'vxlan.calico',
      'vxlan.tabby',
      'flannel.1',
      'cni0',
      'kube-ipvs0',
      'nodelocaldns',
    ].map((n, i) => ha(n, `10.9.${i}.1/32`));
    expect(autodetectAddress(undefined, skipped, undefined, noRoute)).toBeUndefined();
    const a = autodetectAddress('first-found', [...skipped, ha('enp0s3', '192.168.56.10/24')], undefined, noRoute);
    expect(a?.ifname).toBe('enp0s3');
  });

  it('default-route does not fall back', () => {
    expect(found('default-route')).toBe('eth0 192.168.10.11/24');
    expect(found('default-route', null)).toBeUndefined();
  });

  it('interface=REGEX takes the first IPv4 address of a matching interface', () => {
    expect(found('interface=ens.*')).toBe('ens4 10.0.0.5/24');
    expect(found('interface=ens5')).toBe('ens5 10.1.0.5/24');
    expect(found('interface=eth0|ens5')).toBe('eth0 192.168.10.11/24');
    expect(found('interface=wlan.*')).toBeUndefined();
  });

  it('can-reach=IP takes the address of the interface the route to IP leaves by', () => {
    const asked: string[] = [];
    const routeTo = (ip: string) => {
      asked.push(ip);
      return ip === '10.1.0.1' ? 'ens5' : 'eth0';
    };
    expect(found('can-reach=10.1.0.1', 'eth0', routeTo)).toBe('ens5 10.1.0.5/24');
    expect(asked).toEqual(['10.1.0.1']);
    expect(found('can-reach=8.8.8.8', 'eth0', routeTo)).toBe('eth0 192.168.10.11/24');
    expect(found('can-reach=8.8.8.8', 'eth0', noRoute)).toBeUndefined();
  });

  it('cidrs= takes the first IPv4 address inside one of the CIDRs', () => {
    expect(found('cidrs=10.1.0.0/16')).toBe('ens5 10.1.0.5/24');
    expect(found('cidrs=10.0.0.0/8')).toBe('ens4 10.0.0.5/24');
    expect(found('cidrs=10.1.0.0/16, 192.168.0.0/16')).toBe('eth0 192.168.10.11/24');
    expect(found('cidrs=203.0.113.0/24')).toBeUndefined();
  });

  it('never returns an IPv6 address', () => {
    const v6 = [ha('eth0', 'fd00:1::5/64')];
    expect(autodetectAddress(undefined, v6, 'eth0', noRoute)).toBeUndefined();
    expect(autodetectAddress('interface=eth0', v6, 'eth0', noRoute)).toBeUndefined();
    expect(autodetectAddress('cidrs=fd00::/8', v6, 'eth0', noRoute)).toBeUndefined();
  });
});

describe('autodetectAddress for IPv6 (ipAutodetectionMethodV6)', () => {
  const ha = (ifname: string, c: string): HostAddress => ({ ifname, cidr: cidr(c) });
  const addrs = [
    ha('eth0', 'fe80::1/64'),
    ha('eth0', '192.168.10.11/24'),
    ha('vxlan-v6.tabby', 'fd00:10::1/128'),
    ha('eth0', '2001:db8:10::11/64'),
    ha('ens5', '2001:db8:99::5/64'),
  ];
  const found = (m: string | undefined, dev = 'eth0', route?: string) =>
    ((a) => a && `${a.ifname} ${formatIP(a.cidr.ip)}/${a.cidr.prefix}`)(
      autodetectAddress(m, addrs, dev, () => route, 6),
    );
  it('takes global IPv6 addresses only, never link-local ones or the tunnel device', () => {
    expect(found(undefined)).toBe('eth0 2001:db8:10::11/64');
    expect(found('first-found', 'none')).toBe('eth0 2001:db8:10::11/64');
    expect(found('interface=ens.*')).toBe('ens5 2001:db8:99::5/64');
    expect(found('can-reach=2001:db8:99::1', 'eth0', 'ens5')).toBe('ens5 2001:db8:99::5/64');
    expect(found('cidrs=2001:db8:99::/48')).toBe('ens5 2001:db8:99::5/64');
    expect(found('cidrs=fe80::/10')).toBeUndefined();
  });
});

describe('the IPv6 VTEP MAC', () => {
  it("is 66 and the first five bytes of sha1(name + '-v6') (Felix's test vector), or the record's", () => {
    expect(vtepMacV6For('remotehostname')).toBe('66:a0:68:c9:4c:79');
    expect(vtepMacV6For('node-a')).toBe(calicoMac('node-a-v6'));
    expect(vtepMacV6({ name: 'x', vxlanTunnelMACAddrV6: '66:00:00:00:00:06' })).toBe('66:00:00:00:00:06');
    expect(vtepMacV6({ name: 'x' })).not.toBe(vtepMac({ name: 'x' }));
  });
});

describe('validAutodetectMethod', () => {
  it.each([
    'first-found',
    'default-route',
    'interface=eth.*',
    'interface=eth0|ens5',
    'can-reach=8.8.8.8',
    'can-reach=fd00::1',
    'cidrs=10.0.0.0/8',
    'cidrs=10.0.0.0/8, 192.168.0.0/16',
  ])('accepts %s', (m) => {
    expect(validAutodetectMethod(m)).toBeUndefined();
  });

  it.each([
    ['interface=', /needs a regular expression/],
    ['interface', /needs a regular expression/],
    ['interface=eth[', /interface=eth\[: not a regular expression/],
    ['can-reach=', /not an IP address/],
    ['can-reach=example.com', /can-reach=example\.com: not an IP address/],
    ['cidrs=', /not a list of CIDRs/],
    ['cidrs=10.0.0.0/8,bogus', /cidrs=10\.0\.0\.0\/8,bogus: not a list of CIDRs/],
    ['first_found', /unknown method "first_found".*first-found, interface=REGEX, can-reach=IP or cidrs=CIDR/],
    ['kubernetes-internal-ip', /unknown method/],
    ['=eth0', /unknown method/],
  ])('rejects %s', (m, msg) => {
    expect(validAutodetectMethod(m)).toMatch(msg);
  });
});
