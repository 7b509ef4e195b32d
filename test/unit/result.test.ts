import { describe, expect, it } from 'vitest';
import { appendResult, fromAny, Result, toVersion } from '../../lib/cni/result';
import { CniError } from '../../lib/cni/errors';
import { expectCniError } from './cni-error';

const full: Result = {
  interfaces: [
    { name: 'tab0123456789ab', mac: 'ee:ee:ee:ee:ee:ee', mtu: 1450 },
    {
      name: 'eth0',
      mac: '02:00:00:00:00:01',
      mtu: 1450,
      sandbox: '/var/run/netns/c1',
      socketPath: '/s',
      pciID: '0000:00:01.0',
    },
  ],
  ips: [
    { interface: 1, address: '10.0.0.2/24', gateway: '10.0.0.1' },
    { interface: 1, address: 'fd00::2/64', gateway: 'fd00::1' },
    { interface: 1, address: '10.0.1.2/24' },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '169.254.1.1', mtu: 1400, priority: 5 },
    { dst: '::/0', gw: 'fe80::1' },
    { dst: '10.96.0.0/12' },
  ],
  dns: { nameservers: ['10.96.0.10'], search: ['svc.local'] },
};

describe('toVersion', () => {
  it('1.1.0 keeps every field', () => {
    const out = toVersion(full, '1.1.0');
    expect(out.cniVersion).toBe('1.1.0');
    expect(out.interfaces).toEqual(full.interfaces);
    expect(out.ips).toEqual(full.ips);
    expect(out.routes).toEqual(full.routes);
    expect(out.dns).toEqual(full.dns);
  });

  it('1.0.0 drops interface mtu/socketPath/pciID and 1.1 route fields, no ips[].version', () => {
    const out = toVersion(full, '1.0.0') as { interfaces: object[]; ips: object[]; routes: object[] };
    expect(out.interfaces[0]).toEqual({ name: 'tab0123456789ab', mac: 'ee:ee:ee:ee:ee:ee' });
    expect(out.interfaces[1]).toEqual({ name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/c1' });
    expect(out.ips).toEqual(full.ips);
    for (const ip of out.ips) expect(ip).not.toHaveProperty('version');
    expect(out.routes[0]).toEqual({ dst: '0.0.0.0/0', gw: '169.254.1.1' });
    expect(out.routes[2]).toEqual({ dst: '10.96.0.0/12' });
  });

  it.each(['0.3.0', '0.3.1', '0.4.0'])('%s adds ips[].version and drops mtu', (v) => {
    const out = toVersion(full, v) as { cniVersion: string; interfaces: object[]; ips: { version: string }[] };
    expect(out.cniVersion).toBe(v);
    expect(out.ips.map((i) => i.version)).toEqual(['4', '6', '4']);
    expect(out.ips[0]).toEqual({ version: '4', interface: 1, address: '10.0.0.2/24', gateway: '10.0.0.1' });
    for (const i of out.interfaces) expect(i).not.toHaveProperty('mtu');
  });

  it.each(['0.1.0', '0.2.0'])('%s uses ip4/ip6 with routes split by family', (v) => {
    const out = toVersion(full, v);
    expect(out).toEqual({
      cniVersion: v,
      ip4: {
        ip: '10.0.0.2/24',
        gateway: '10.0.0.1',
        routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }, { dst: '10.96.0.0/12' }],
      },
      ip6: { ip: 'fd00::2/64', gateway: 'fd00::1', routes: [{ dst: '::/0', gw: 'fe80::1' }] },
      dns: full.dns,
    });
  });

  it('0.2.0 with a single family omits the other and its routes', () => {
    const out = toVersion({ ips: [{ address: '10.0.0.2/24' }], routes: [{ dst: '::/0' }] }, '0.2.0');
    expect(out).toEqual({ cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24' }, dns: {} });
  });

  it('0.2.0 without any IP cannot be converted', () => {
    const err = expectCniError(() => toVersion({ interfaces: [{ name: 'eth0' }] }, '0.2.0'), 1);
    expect(err.message).toBe('cannot convert: no valid IP addresses');
  });

  it('omits empty dns and empty lists at 1.x', () => {
    expect(toVersion({ ips: [{ address: '10.0.0.2/24' }], routes: [], dns: {} }, '1.1.0')).toEqual({
      cniVersion: '1.1.0',
      ips: [{ address: '10.0.0.2/24' }],
    });
  });
});

describe('fromAny', () => {
  it('reads 0.4.0 and drops ips[].version', () => {
    const r = fromAny(toVersion(full, '0.4.0'));
    expect(r.ips).toEqual(full.ips);
    expect(toVersion(r, '1.0.0')).toEqual(toVersion(full, '1.0.0'));
  });

  it('reads 0.2.0 ip4/ip6 into ips and concatenated routes', () => {
    const r = fromAny({
      cniVersion: '0.2.0',
      ip4: { ip: '10.0.0.2/24', gateway: '10.0.0.1', routes: [{ dst: '0.0.0.0/0' }] },
      ip6: { ip: 'fd00::2/64', routes: [{ dst: '::/0', gw: 'fd00::1' }] },
      dns: {},
    });
    expect(r.ips).toEqual([{ address: '10.0.0.2/24', gateway: '10.0.0.1' }, { address: 'fd00::2/64' }]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::1' }]);
    const v04 = toVersion(r, '0.4.0') as { ips: { version: string }[] };
    expect(v04.ips.map((i) => i.version)).toEqual(['4', '6']);
  });

  it('round-trips 1.1.0', () => {
    expect(toVersion(fromAny(toVersion(full, '1.1.0')), '1.1.0')).toEqual(toVersion(full, '1.1.0'));
  });

  it('rejects malformed results with code 6 naming the field', () => {
    expectCniError(() => fromAny('x'), 6, /prevResult: not a JSON object/);
    expectCniError(() => fromAny([]), 6);
    expectCniError(() => fromAny({ ips: [{ gateway: '1.2.3.4' }] }), 6, /prevResult\.ips\[0\]\.address/);
    expectCniError(() => fromAny({ interfaces: [{}] }, 'delegate'), 6, /delegate\.interfaces\[0\]\.name/);
    expectCniError(() => fromAny({ routes: 'x' }), 6, /prevResult\.routes/);
    expectCniError(() => fromAny({ ip4: {} }), 6, /prevResult\.ip4\.ip/);
  });
});

describe('appendResult', () => {
  it('returns the addition when there is no previous result', () => {
    const add: Result = { ips: [{ address: '10.0.0.2/24' }] };
    expect(appendResult(undefined, add)).toBe(add);
  });

  it("re-indexes the addition's interfaces after the previous ones", () => {
    const prev: Result = {
      interfaces: [{ name: 'a' }, { name: 'b', sandbox: '/ns' }],
      ips: [{ interface: 1, address: '10.1.0.2/24' }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
      dns: { nameservers: ['1.1.1.1'] },
    };
    const add: Result = {
      interfaces: [{ name: 'tabx' }, { name: 'eth1', sandbox: '/ns' }],
      ips: [{ interface: 1, address: '10.2.0.2/24' }, { address: '10.3.0.2/24' }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '10.96.0.0/12' }],
      dns: { nameservers: ['8.8.8.8'] },
    };
    const r = appendResult(prev, add);
    expect(r.interfaces!.map((i) => i.name)).toEqual(['a', 'b', 'tabx', 'eth1']);
    expect(r.ips).toEqual([
      { interface: 1, address: '10.1.0.2/24' },
      { interface: 3, address: '10.2.0.2/24' },
      { address: '10.3.0.2/24' },
    ]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '10.96.0.0/12' }]);
    expect(r.dns).toEqual({ nameservers: ['1.1.1.1'] });
    expect(add.ips![0].interface).toBe(1); // input not mutated
  });

  it("takes the addition's dns when the previous has none", () => {
    expect(appendResult({ dns: {} }, { dns: { search: ['x'] } }).dns).toEqual({ search: ['x'] });
  });
});

it('CniError serialises with cniVersion, code, msg and optional details', () => {
  expect(new CniError(7, 'bad', 'more').toJSON('1.0.0')).toEqual({
    cniVersion: '1.0.0',
    code: 7,
    msg: 'bad',
    details: 'more',
  });
  expect(new CniError(7, 'bad').toJSON('1.0.0')).toEqual({ cniVersion: '1.0.0', code: 7, msg: 'bad' });
});
