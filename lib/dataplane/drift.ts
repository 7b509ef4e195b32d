// What the kernel holds against what it should hold, item by item, for people: `tabby status` lists each
// device, address, route, FDB entry and neighbour as in sync, missing, different or foreign, and
// `tabby plan --diff` lists those a reconcile would change. Pure: the reads are the caller's.
import type { DesiredOverlay, DesiredRoute, DesiredVxlan } from './desired';
import type { OverlayState, Route, VxlanLink } from './kernel';
import { vxlanMismatch } from './overlay-diff';
import { IPIP_DEVICE, VXLAN_DEVICE, VXLAN_V6_DEVICE } from './devices';

/**
 * `foreign`: in the kernel, of tabby's kind, and not in the plan (a reconcile removes it); or another
 * program's route to a destination tabby wants (left alone).
 */
export type DriftState = 'in sync' | 'missing' | 'different' | 'foreign';

export interface DriftItem {
  kind: 'device' | 'address' | 'route' | 'fdb' | 'neighbour' | 'nat';
  what: string;
  state: DriftState;
  detail?: string;
}

export const isDrift = (i: DriftItem): boolean => i.state !== 'in sync';

export function overlayDrift(have: OverlayState, want: DesiredOverlay): DriftItem[] {
  return [...deviceDrift(have, want), ...routeDrift(have, want.routes), ...entryDrift(have, want)];
}

function deviceDrift(have: OverlayState, want: DesiredOverlay): DriftItem[] {
  const out: DriftItem[] = [];
  const device = (what: string, state: DriftState, detail?: string) =>
    out.push({ kind: 'device', what, state, detail });
  const address = (dev: string, haveAddrs: string[], wanted: string | undefined) => {
    const w = wanted ? `${wanted}/${wanted.includes(':') ? 128 : 32}` : undefined;
    if (w) out.push({ kind: 'address', what: `${w} on ${dev}`, state: haveAddrs.includes(w) ? 'in sync' : 'missing' });
    for (const a of haveAddrs.filter((a) => a !== w))
      out.push({ kind: 'address', what: `${a} on ${dev}`, state: 'foreign' });
  };
  // the IPv4 VXLAN device and the IPv6 one alike
  const vxlanDrift = (name: string, cur: VxlanLink | undefined, vx: DesiredVxlan | undefined, unused: string) => {
    if (!vx) {
      if (cur) device(name, 'foreign', unused);
      return;
    }
    const mismatch = cur && vxlanMismatch(cur, vx);
    if (!cur) device(name, 'missing');
    else if (mismatch) device(name, 'different', mismatch);
    else if (cur.mtu !== vx.mtu || !cur.up)
      device(
        name,
        'different',
        [cur.mtu !== vx.mtu && `mtu ${cur.mtu} ≠ ${vx.mtu}`, !cur.up && 'down'].filter(Boolean).join(', '),
      );
    else device(name, 'in sync');
    address(name, cur && !mismatch ? cur.addresses : [], vx.address);
  };
  vxlanDrift(VXLAN_DEVICE, have.vxlan, want.vxlan, 'no pool uses VXLAN');
  vxlanDrift(VXLAN_V6_DEVICE, have.vxlanV6, want.vxlanV6, 'no IPv6 pool uses VXLAN');
  const ipip = want.ipip;
  if (ipip) {
    const cur = have.tunl;
    if (!cur) device(IPIP_DEVICE, 'missing');
    else if (cur.mtu !== ipip.mtu || !cur.up)
      device(
        IPIP_DEVICE,
        'different',
        [cur.mtu !== ipip.mtu && `mtu ${cur.mtu} ≠ ${ipip.mtu}`, !cur.up && 'down'].filter(Boolean).join(', '),
      );
    else device(IPIP_DEVICE, 'in sync');
    address(IPIP_DEVICE, cur?.addresses ?? [], ipip.address);
  } else if (have.tunl && have.tunl.addresses.length) {
    address(IPIP_DEVICE, have.tunl.addresses, undefined);
  }
  return out;
}

const describe = (r: Route | DesiredRoute): string =>
  ('blackhole' in r ? r.blackhole : r.kind === 'blackhole') ? 'blackhole' : `via ${r.via} dev ${r.dev}`;

function routeDrift(have: OverlayState, want: DesiredRoute[]): DriftItem[] {
  const out: DriftItem[] = [];
  const ours = new Map(have.routes.map((r) => [r.dst, r]));
  const foreign = new Map(have.foreign.map((r) => [r.dst, r]));
  const wanted = new Set<string>();
  for (const w of want) {
    wanted.add(w.dst);
    const what = `${w.dst} ${describe(w)}`;
    const cur = ours.get(w.dst);
    const other = foreign.get(w.dst);
    if (cur) {
      const same = w.kind === 'blackhole' ? cur.blackhole : !cur.blackhole && cur.via === w.via && cur.dev === w.dev;
      out.push({
        kind: 'route',
        what,
        state: same ? 'in sync' : 'different',
        detail: same ? undefined : `is ${describe(cur)}`,
      });
    } else if (other) {
      out.push({
        kind: 'route',
        what,
        state: 'foreign',
        detail: `another program routes it (proto ${other.protocol}${other.dev ? ` dev ${other.dev}` : ''}); left alone`,
      });
    } else {
      out.push({ kind: 'route', what, state: 'missing' });
    }
  }
  for (const r of have.routes) {
    if (!wanted.has(r.dst))
      out.push({ kind: 'route', what: `${r.dst} ${describe(r)}`, state: 'foreign', detail: 'not in the plan' });
  }
  return out;
}

function entryDrift(have: OverlayState, want: DesiredOverlay): DriftItem[] {
  const out: DriftItem[] = [];
  // one VXLAN device's entries; those on a device that is missing or recreated are all missing
  const device = (
    cur: VxlanLink | undefined,
    vx: DesiredVxlan | undefined,
    held: { fdb?: OverlayState['fdb']; neighbours?: OverlayState['neighbours'] },
    wanted: { fdb?: DesiredOverlay['fdb']; neighbours?: DesiredOverlay['neighbours'] },
  ) => {
    const usable = cur && vx && !vxlanMismatch(cur, vx);
    const compare = (kind: 'fdb' | 'neighbour', haveKeys: string[], wantKeys: string[]) => {
      const heldKeys = new Set(usable ? haveKeys : []);
      const wantSet = new Set(wantKeys);
      for (const k of wantKeys) out.push({ kind, what: k, state: heldKeys.has(k) ? 'in sync' : 'missing' });
      for (const k of haveKeys)
        if (!wantSet.has(k)) out.push({ kind, what: k, state: 'foreign', detail: 'not in the plan' });
    };
    compare(
      'fdb',
      (held.fdb ?? []).map((f) => `${f.mac} dst ${f.dst}`),
      vx ? (wanted.fdb ?? []).map((f) => `${f.mac} dst ${f.dst}`) : [],
    );
    compare(
      'neighbour',
      (held.neighbours ?? []).map((n) => `${n.ip} lladdr ${n.mac}`),
      vx ? (wanted.neighbours ?? []).map((n) => `${n.ip} lladdr ${n.mac}`) : [],
    );
  };
  device(have.vxlan, want.vxlan, have, want);
  device(
    have.vxlanV6,
    want.vxlanV6,
    { fdb: have.fdbV6, neighbours: have.neighboursV6 },
    { fdb: want.fdbV6, neighbours: want.neighboursV6 },
  );
  return out;
}
