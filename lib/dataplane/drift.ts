// What the kernel holds against what it should hold, item by item, for people: `tabby status` lists each
// device, address, route, FDB entry and neighbour as in sync, missing, different or foreign, and
// `tabby plan --diff` lists those a reconcile would change. Pure: the reads are the caller's.
import type { DesiredOverlay, DesiredRoute } from './desired';
import type { OverlayState, Route } from './kernel';
import { vxlanMismatch } from './overlay-diff';
import { IPIP_DEVICE, VXLAN_DEVICE } from './devices';

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
    const w = wanted ? `${wanted}/32` : undefined;
    if (w) out.push({ kind: 'address', what: `${w} on ${dev}`, state: haveAddrs.includes(w) ? 'in sync' : 'missing' });
    for (const a of haveAddrs.filter((a) => a !== w))
      out.push({ kind: 'address', what: `${a} on ${dev}`, state: 'foreign' });
  };
  const vx = want.vxlan;
  if (vx) {
    const cur = have.vxlan;
    const mismatch = cur && vxlanMismatch(cur, vx);
    if (!cur) device(VXLAN_DEVICE, 'missing');
    else if (mismatch) device(VXLAN_DEVICE, 'different', mismatch);
    else if (cur.mtu !== vx.mtu || !cur.up)
      device(
        VXLAN_DEVICE,
        'different',
        [cur.mtu !== vx.mtu && `mtu ${cur.mtu} ≠ ${vx.mtu}`, !cur.up && 'down'].filter(Boolean).join(', '),
      );
    else device(VXLAN_DEVICE, 'in sync');
    address(VXLAN_DEVICE, cur && !mismatch ? cur.addresses : [], vx.address);
  } else if (have.vxlan) {
    device(VXLAN_DEVICE, 'foreign', 'no pool uses VXLAN');
  }
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
  // entries on a device that is missing or recreated are all missing
  const usable = have.vxlan && want.vxlan && !vxlanMismatch(have.vxlan, want.vxlan);
  const compare = (kind: 'fdb' | 'neighbour', haveKeys: string[], wantKeys: string[]) => {
    const held = new Set(usable ? haveKeys : []);
    const wanted = new Set(wantKeys);
    for (const k of wantKeys) out.push({ kind, what: k, state: held.has(k) ? 'in sync' : 'missing' });
    for (const k of haveKeys)
      if (!wanted.has(k)) out.push({ kind, what: k, state: 'foreign', detail: 'not in the plan' });
  };
  compare(
    'fdb',
    have.fdb.map((f) => `${f.mac} dst ${f.dst}`),
    want.vxlan ? want.fdb.map((f) => `${f.mac} dst ${f.dst}`) : [],
  );
  compare(
    'neighbour',
    have.neighbours.map((n) => `${n.ip} lladdr ${n.mac}`),
    want.vxlan ? want.neighbours.map((n) => `${n.ip} lladdr ${n.mac}`) : [],
  );
  return out;
}
