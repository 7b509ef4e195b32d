import { describe, expect, it } from 'vitest';
import { DesiredOverlay } from '../../lib/dataplane/desired';
import { OverlayState, VxlanLink } from '../../lib/dataplane/kernel';
import { diffOverlay, stateAfter, vxlanMismatch } from '../../lib/dataplane/overlay-diff';
import { desiredVxlan } from '../helpers/fixtures';

const NAT = { allPools: ['10.244.0.0/16'], natPools: ['10.244.0.0/16'], tunnelDevices: ['vxlan.tabby'] };

const vxlan = desiredVxlan;

/** Node a with peers b (VXLAN) and c (direct), as the planner would ask. */
function desired(extra: Partial<DesiredOverlay> = {}): DesiredOverlay {
  return {
    vxlan: vxlan(),
    routes: [
      { dst: '10.244.1.0/24', kind: 'blackhole' },
      { dst: '10.244.2.0/24', kind: 'vxlan', via: '10.244.2.1', dev: 'vxlan.tabby' },
      { dst: '10.244.3.0/24', kind: 'direct', via: '192.168.10.13', dev: 'eth0' },
    ],
    fdb: [{ mac: '66:00:00:00:00:02', dst: '192.168.10.12' }],
    neighbours: [{ ip: '10.244.2.1', mac: '66:00:00:00:00:02' }],
    nat: NAT,
    ...extra,
  };
}

const EMPTY: OverlayState = { routes: [], foreign: [], neighbours: [], fdb: [] };
const lines = (l: string[][]) => l.map((w) => w.join(' '));

/** What the kernel holds after `want` was applied to an empty node. */
const applied = (want = desired()): OverlayState => stateAfter(EMPTY, want);

describe('diffOverlay', () => {
  it('a fresh node: creates the device, then its address, routes and neighbours; FDB goes to bridge', () => {
    const d = diffOverlay(EMPTY, desired());
    expect(lines(d.ip)).toEqual([
      'link add vxlan.tabby address 66:aa:bb:cc:dd:ee mtu 1450 type vxlan id 4096 local 192.168.10.11 dev eth0 dstport 4789 nolearning',
      'address add 10.244.1.1/32 dev vxlan.tabby',
      'link set dev vxlan.tabby up',
      'route replace blackhole 10.244.1.0/24 proto 117',
      'route replace 10.244.2.0/24 via 10.244.2.1 dev vxlan.tabby onlink proto 117',
      'route replace 10.244.3.0/24 via 192.168.10.13 dev eth0 onlink proto 117',
      'neigh replace 10.244.2.1 lladdr 66:00:00:00:00:02 dev vxlan.tabby nud permanent',
    ]);
    expect(lines(d.fdb)).toEqual(['fdb replace 66:00:00:00:00:02 dev vxlan.tabby dst 192.168.10.12 self permanent']);
    expect(d.createTunl).toBe(false);
    expect(d.changes[0]).toMatch(/^create vxlan.tabby \(VNI 4096/);
  });

  it('lists the devices it creates or recreates as fresh (they start with offload on)', () => {
    expect(diffOverlay(EMPTY, desired()).fresh).toEqual(['vxlan.tabby']);
    expect(diffOverlay(applied(), desired()).fresh).toEqual([]);
    expect(diffOverlay(applied(), desired({ vxlan: vxlan({ vni: 1 }) })).fresh).toEqual(['vxlan.tabby']);
  });

  it('nothing to do when the kernel holds what is wanted', () => {
    const d = diffOverlay(applied(), desired());
    expect(d.ip).toEqual([]);
    expect(d.fdb).toEqual([]);
    expect(d.changes).toEqual([]);
  });

  it('a changed VNI recreates the device, names the attribute, and rewrites what went with it', () => {
    const have = applied();
    have.vxlan = { ...have.vxlan!, vni: 1 };
    const d = diffOverlay(have, desired());
    expect(d.changes[0]).toBe('recreate vxlan.tabby: VNI 1 ≠ 4096');
    expect(lines(d.ip)[0]).toBe('link del dev vxlan.tabby');
    // the routes through the old device went with it: no `route del`, but written again
    expect(lines(d.ip)).not.toContain('route del 10.244.2.0/24 proto 117');
    expect(lines(d.ip)).toContain('route replace 10.244.2.0/24 via 10.244.2.1 dev vxlan.tabby onlink proto 117');
    expect(lines(d.ip)).not.toContain('route replace blackhole 10.244.1.0/24 proto 117');
    expect(lines(d.ip)).toContain('neigh replace 10.244.2.1 lladdr 66:00:00:00:00:02 dev vxlan.tabby nud permanent');
    expect(d.fdb).toHaveLength(1);
  });

  it('a route of another program to a wanted destination is left alone, and said so', () => {
    const have: OverlayState = { ...applied(), foreign: [{ dst: '10.244.3.0/24', protocol: 'bgp', dev: 'eth1' }] };
    have.routes = have.routes.filter((r) => r.dst !== '10.244.3.0/24');
    const d = diffOverlay(have, desired());
    expect(d.ip).toEqual([]);
    expect(d.leftAlone).toEqual(['route 10.244.3.0/24: left alone, another route to it exists (proto bgp dev eth1)']);
  });

  it('a stale neighbour and FDB entry are removed; the wanted ones stay', () => {
    const have = applied();
    have.neighbours.push({ ip: '10.244.9.1', mac: '66:00:00:00:00:09' });
    have.fdb.push({ mac: '66:00:00:00:00:09', dst: '192.168.10.19' });
    const d = diffOverlay(have, desired());
    expect(lines(d.ip)).toEqual(['neigh del 10.244.9.1 dev vxlan.tabby']);
    expect(lines(d.fdb)).toEqual(['fdb del 66:00:00:00:00:09 dev vxlan.tabby dst 192.168.10.19 self']);
    expect(d.changes).toEqual([
      'neighbour 10.244.9.1 66:00:00:00:00:09: removed',
      'fdb 66:00:00:00:00:09 -> 192.168.10.19: removed',
    ]);
  });

  it('a peer that moved gets its route rewritten, saying what it was', () => {
    const want = desired();
    want.routes[2] = { dst: '10.244.3.0/24', kind: 'vxlan', via: '10.244.3.1', dev: 'vxlan.tabby' };
    const d = diffOverlay(applied(), want);
    expect(lines(d.ip)).toEqual([
      'route del 10.244.3.0/24 proto 117',
      'route replace 10.244.3.0/24 via 10.244.3.1 dev vxlan.tabby onlink proto 117',
    ]);
    expect(d.changes).toEqual(['route 10.244.3.0/24 via 10.244.3.1 dev vxlan.tabby (was via 192.168.10.13 dev eth0)']);
  });

  it('a removed peer loses its route, FDB entry and neighbour', () => {
    const want = desired({ fdb: [], neighbours: [] });
    want.routes = want.routes.filter((r) => r.dst !== '10.244.2.0/24');
    const d = diffOverlay(applied(), want);
    expect(lines(d.ip)).toEqual(['route del 10.244.2.0/24 proto 117', 'neigh del 10.244.2.1 dev vxlan.tabby']);
    expect(lines(d.fdb)).toEqual(['fdb del 66:00:00:00:00:02 dev vxlan.tabby dst 192.168.10.12 self']);
  });

  it('an MTU change is set in place, and a device found down is brought up', () => {
    const have = applied();
    have.vxlan = { ...have.vxlan!, mtu: 1500, up: false };
    const d = diffOverlay(have, desired());
    expect(lines(d.ip)).toEqual(['link set dev vxlan.tabby mtu 1450', 'link set dev vxlan.tabby up']);
  });

  it('no VXLAN pool left: the device is deleted and its routes are not deleted one by one', () => {
    const want = desired({ vxlan: undefined, fdb: [], neighbours: [] });
    want.routes = want.routes.filter((r) => r.kind !== 'vxlan');
    const d = diffOverlay(applied(), want);
    expect(lines(d.ip)).toEqual(['link del dev vxlan.tabby']);
    expect(d.fdb).toEqual([]);
  });

  it('IPIP: tunl0 is created alone first; unused, it is flushed and taken down', () => {
    const want = desired({
      vxlan: undefined,
      fdb: [],
      neighbours: [],
      ipip: { device: 'tunl0', address: '10.244.1.1', mtu: 1480 },
    });
    want.routes = [{ dst: '10.244.2.0/24', kind: 'ipip', via: '192.168.10.12', dev: 'tunl0' }];
    const d = diffOverlay(EMPTY, want);
    expect(d.createTunl).toBe(true);
    expect(lines(d.ip).slice(0, 3)).toEqual([
      'link set dev tunl0 mtu 1480',
      'address add 10.244.1.1/32 dev tunl0',
      'link set dev tunl0 up',
    ]);
    const off = diffOverlay(
      stateAfter(EMPTY, want),
      desired({ vxlan: undefined, fdb: [], neighbours: [], routes: [] }),
    );
    expect(lines(off.ip)).toEqual(['address flush dev tunl0', 'link set dev tunl0 down']);
  });

  it('an incremental diff against the last applied state equals a diff against the kernel holding it', () => {
    const before = desired();
    const after = desired();
    after.routes.push({ dst: '10.244.4.0/24', kind: 'vxlan', via: '10.244.4.1', dev: 'vxlan.tabby' });
    after.neighbours.push({ ip: '10.244.4.1', mac: '66:00:00:00:00:04' });
    after.fdb.push({ mac: '66:00:00:00:00:04', dst: '192.168.20.14' });
    const d = diffOverlay(stateAfter(EMPTY, before), after);
    expect(lines(d.ip)).toEqual([
      'route replace 10.244.4.0/24 via 10.244.4.1 dev vxlan.tabby onlink proto 117',
      'neigh replace 10.244.4.1 lladdr 66:00:00:00:00:04 dev vxlan.tabby nud permanent',
    ]);
    expect(lines(d.fdb)).toEqual(['fdb replace 66:00:00:00:00:04 dev vxlan.tabby dst 192.168.20.14 self permanent']);
  });
});

describe('vxlanMismatch', () => {
  const link = (extra: Partial<VxlanLink> = {}): VxlanLink => ({
    kind: 'vxlan',
    vni: 4096,
    port: 4789,
    parent: 'eth0',
    local: '192.168.10.11',
    mac: '66:aa:bb:cc:dd:ee',
    learning: false,
    mtu: 1450,
    up: true,
    addresses: [],
    ...extra,
  });
  it.each([
    [{}, undefined],
    [{ vni: 1 }, 'VNI 1 ≠ 4096'],
    [{ local: '192.168.10.99', parent: 'eth1' }, 'local 192.168.10.99 ≠ 192.168.10.11, parent eth1 ≠ eth0'],
    [{ learning: true }, 'learning true ≠ false'],
    [{ mac: '66:00:00:00:00:01' }, 'MAC 66:00:00:00:00:01 ≠ 66:aa:bb:cc:dd:ee'],
    [{ kind: 'dummy' }, 'kind dummy ≠ vxlan'],
    [{ mtu: 9000 }, undefined], // an MTU is changed in place, not by recreating
  ] as [Partial<VxlanLink>, string | undefined][])('%j -> %s', (extra, why) => {
    expect(vxlanMismatch(link(extra), vxlan())).toBe(why);
  });
});

describe('diffOverlay, IPv6 VXLAN (vxlan-v6.tabby)', () => {
  const v6 = (): DesiredOverlay =>
    desired({
      vxlanV6: vxlan({
        device: 'vxlan-v6.tabby',
        local: '2001:db8:10::11',
        mac: '66:aa:bb:cc:dd:06',
        address: 'fd00:10::1',
        mtu: 1430,
      }),
      routes: [
        ...desired().routes,
        { dst: 'fd00:10::/122', kind: 'blackhole' },
        { dst: 'fd00:10::40/122', kind: 'vxlan', via: 'fd00:10::41', dev: 'vxlan-v6.tabby' },
      ],
      fdbV6: [{ mac: '66:00:00:00:06:02', dst: '2001:db8:10::12' }],
      neighboursV6: [{ ip: 'fd00:10::41', mac: '66:00:00:00:06:02' }],
    });

  it('creates the second device beside the first, its /128 address without DAD, its routes, neighbour and FDB entry', () => {
    const d = diffOverlay(applied(), v6());
    expect(lines(d.ip)).toEqual([
      'link add vxlan-v6.tabby address 66:aa:bb:cc:dd:06 mtu 1430 type vxlan id 4096 local 2001:db8:10::11 dev eth0 dstport 4789 nolearning',
      'address add fd00:10::1/128 dev vxlan-v6.tabby nodad',
      'link set dev vxlan-v6.tabby up',
      'route replace blackhole fd00:10::/122 proto 117',
      'route replace fd00:10::40/122 via fd00:10::41 dev vxlan-v6.tabby onlink proto 117',
      'neigh replace fd00:10::41 lladdr 66:00:00:00:06:02 dev vxlan-v6.tabby nud permanent',
    ]);
    expect(lines(d.fdb)).toEqual([
      'fdb replace 66:00:00:00:06:02 dev vxlan-v6.tabby dst 2001:db8:10::12 self permanent',
    ]);
    expect(diffOverlay(stateAfter(applied(), v6()), v6()).ip).toEqual([]);
  });

  it('a v6 pool switched to Never deletes vxlan-v6.tabby (its routes go with it) and leaves vxlan.tabby alone', () => {
    const d = diffOverlay(stateAfter(EMPTY, v6()), desired());
    expect(lines(d.ip)).toEqual(['link del dev vxlan-v6.tabby', 'route del blackhole fd00:10::/122 proto 117']);
    expect(d.changes).toContain('delete vxlan-v6.tabby (no IPv6 pool uses VXLAN)');
    expect(d.fdb).toEqual([]);
  });

  it('a changed v6 local address recreates only the v6 device, and names it', () => {
    const have = stateAfter(EMPTY, v6());
    have.vxlanV6 = { ...have.vxlanV6!, local: '2001:db8:10::99' };
    const d = diffOverlay(have, v6());
    expect(d.changes[0]).toBe('recreate vxlan-v6.tabby: local 2001:db8:10::99 ≠ 2001:db8:10::11');
    expect(lines(d.ip).filter((l) => l.includes('vxlan.tabby'))).toEqual([]);
    expect(lines(d.fdb)).toHaveLength(1);
  });
});
