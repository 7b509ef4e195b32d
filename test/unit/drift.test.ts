import { describe, expect, it } from 'vitest';
import type { DesiredOverlay } from '../../lib/dataplane/desired';
import type { OverlayState } from '../../lib/dataplane/kernel';
import { overlayDrift } from '../../lib/dataplane/drift';
import { stateAfter } from '../../lib/dataplane/overlay-diff';
import { desiredVxlan } from '../helpers/fixtures';
import { compareTables, parseNftTable, renderedTables } from '../../lib/dataplane/nat-drift';

const want: DesiredOverlay = {
  vxlan: desiredVxlan(),
  routes: [
    { dst: '10.244.1.0/24', kind: 'blackhole' },
    { dst: '10.244.2.0/24', kind: 'vxlan', via: '10.244.2.1', dev: 'vxlan.tabby' },
  ],
  fdb: [{ mac: '66:00:00:00:00:02', dst: '192.168.10.12' }],
  neighbours: [{ ip: '10.244.2.1', mac: '66:00:00:00:00:02' }],
  nat: { allPools: ['10.244.0.0/16', '10.10.0.0/16'], natPools: ['10.244.0.0/16'], tunnelDevices: ['vxlan.tabby'] },
};
const EMPTY: OverlayState = { routes: [], foreign: [], neighbours: [], fdb: [] };
const synced = (): OverlayState => stateAfter(EMPTY, want);
const notInSync = (s: OverlayState) => overlayDrift(s, want).filter((i) => i.state !== 'in sync');

describe('overlayDrift', () => {
  it('finds every item in sync after an apply', () => {
    const items = overlayDrift(synced(), want);
    expect(items.map((i) => i.kind).sort()).toEqual(['address', 'device', 'fdb', 'neighbour', 'route', 'route']);
    expect(notInSync(synced())).toEqual([]);
  });

  it('reports a route, FDB entry and neighbour deleted by hand as missing', () => {
    const s = synced();
    s.routes = s.routes.filter((r) => r.dst !== '10.244.2.0/24');
    s.fdb = [];
    s.neighbours = [];
    expect(notInSync(s)).toEqual([
      { kind: 'route', what: '10.244.2.0/24 via 10.244.2.1 dev vxlan.tabby', state: 'missing' },
      { kind: 'fdb', what: '66:00:00:00:00:02 dst 192.168.10.12', state: 'missing' },
      { kind: 'neighbour', what: '10.244.2.1 lladdr 66:00:00:00:00:02', state: 'missing' },
    ]);
  });

  it("reports tabby's leftovers as foreign, a changed route as different, another program's route as foreign", () => {
    const s = synced();
    s.routes = [
      { dst: '10.244.1.0/24', blackhole: true },
      { dst: '10.244.9.0/24', blackhole: false, via: '10.244.9.1', dev: 'vxlan.tabby' },
    ];
    s.foreign = [{ dst: '10.244.2.0/24', protocol: 'static', dev: 'eth1' }];
    s.fdb.push({ mac: '66:00:00:00:00:09', dst: '192.168.10.19' });
    const items = notInSync(s);
    expect(items).toContainEqual(
      expect.objectContaining({ what: '10.244.9.0/24 via 10.244.9.1 dev vxlan.tabby', state: 'foreign' }),
    );
    expect(items).toContainEqual(
      expect.objectContaining({
        kind: 'route',
        state: 'foreign',
        detail: expect.stringMatching(/proto static dev eth1/),
      }),
    );
    expect(items).toContainEqual(
      expect.objectContaining({ kind: 'fdb', what: '66:00:00:00:00:09 dst 192.168.10.19', state: 'foreign' }),
    );
    const changed = synced();
    changed.routes[1] = { ...changed.routes[1], via: '10.244.2.9' };
    expect(notInSync(changed)).toEqual([
      expect.objectContaining({ kind: 'route', state: 'different', detail: 'is via 10.244.2.9 dev vxlan.tabby' }),
    ]);
  });

  it('a missing device: the device, its address and every entry on it are missing', () => {
    const s = synced();
    s.vxlan = undefined;
    const items = notInSync({ ...s, fdb: [], neighbours: [] });
    expect(items.map((i) => `${i.kind} ${i.state}`)).toEqual([
      'device missing',
      'address missing',
      'fdb missing',
      'neighbour missing',
    ]);
  });

  it('a device with another VNI is different, and a device no pool wants is foreign', () => {
    const s = synced();
    s.vxlan = { ...s.vxlan!, vni: 1 };
    expect(notInSync(s)[0]).toMatchObject({ kind: 'device', state: 'different', detail: 'VNI 1 ≠ 4096' });
    expect(overlayDrift(synced(), { ...want, vxlan: undefined, fdb: [], neighbours: [] })[0]).toMatchObject({
      kind: 'device',
      state: 'foreign',
    });
  });
});

describe('NAT drift', () => {
  it('reads the rendered tables: sets and rules', () => {
    const tables = renderedTables(want.nat);
    expect(tables).toHaveLength(1); // no IPv6 pool: no ip6 table
    const [v4] = tables;
    expect(v4).toEqual({
      family: 'ip',
      sets: { 'all-pools': ['10.244.0.0/16', '10.10.0.0/16'], 'nat-pools': ['10.244.0.0/16'] },
      rules: 4,
    });
  });

  it('compares them with what nft -j shows', () => {
    const [v4] = renderedTables(want.nat);
    const shown = (natElems: unknown[]) =>
      JSON.stringify({
        nftables: [
          { metainfo: {} },
          { table: { family: 'ip', name: 'tabby' } },
          {
            set: {
              name: 'all-pools',
              elem: [{ prefix: { addr: '10.244.0.0', len: 16 } }, { prefix: { addr: '10.10.0.0', len: 16 } }],
            },
          },
          { set: { name: 'nat-pools', elem: natElems } },
          ...[1, 2, 3, 4].map(() => ({ rule: { chain: 'postrouting' } })),
        ],
      });
    expect(compareTables(v4, parseNftTable('ip', shown([{ prefix: { addr: '10.244.0.0', len: 16 } }])))[0].state).toBe(
      'in sync',
    );
    expect(compareTables(v4, parseNftTable('ip', shown([])))[0]).toMatchObject({
      state: 'different',
      detail: 'set nat-pools lacks 10.244.0.0/16',
    });
    expect(compareTables(v4, undefined)[0]).toMatchObject({ what: 'table ip tabby', state: 'missing' });
  });
});
