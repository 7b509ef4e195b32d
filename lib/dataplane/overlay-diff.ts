// The overlay diff, pure: from what the kernel holds and what it should hold, the batch lines that get
// it there and one human line per change. The agent's incremental apply (what it applied last time) and
// a full resync (what it reads back from the kernel) are this one function over different inputs.
import type { DesiredIpip, DesiredOverlay, DesiredRoute, DesiredVxlan } from './desired';
import {
  addrAdd,
  addrDel,
  fdbDel,
  fdbReplace,
  linkDel,
  linkDown,
  linkMtu,
  linkUp,
  neighDel,
  neighReplace,
  OverlayState,
  Route,
  routeDel,
  routeReplace,
  TunlLink,
  vxlanAdd,
  VxlanLink,
} from './kernel';
import { IPIP_DEVICE, VXLAN_DEVICE, VXLAN_V6_DEVICE } from './devices';

export interface OverlayDiff {
  /** tunl0 is created first and alone, so a kernel without ipip fails before anything else changed. */
  createTunl: boolean;
  /** `ip -batch` lines, in order. */
  ip: string[][];
  /** `bridge -batch` lines, run after the ip batch (a fresh VXLAN device must exist first). */
  fdb: string[][];
  /** One line per change, for the log. */
  changes: string[];
  /** Destinations left to another program's route. */
  leftAlone: string[];
  /** Tunnel devices this diff creates or recreates: they start with the kernel's defaults (offload on). */
  fresh: string[];
}

/** Why the VXLAN device must be recreated ("VNI 1 ≠ 4096"), or undefined when it can stay. */
export function vxlanMismatch(cur: VxlanLink, want: DesiredVxlan): string | undefined {
  if (cur.kind !== 'vxlan') return `kind ${cur.kind ?? '?'} ≠ vxlan`;
  const diffs: [string, unknown, unknown][] = [
    ['VNI', cur.vni, want.vni],
    ['local', cur.local, want.local],
    ['parent', cur.parent, want.parent],
    ['port', cur.port, want.port],
    ['learning', cur.learning, false],
    ['MAC', cur.mac, want.mac],
  ];
  const differing = diffs.filter(([, a, b]) => a !== b).map(([what, a, b]) => `${what} ${a ?? '-'} ≠ ${b}`);
  return differing.length ? differing.join(', ') : undefined;
}

interface DeviceStep {
  lines: string[][];
  changes: string[];
  /** Created or recreated by this diff: it starts with no routes, neighbours or FDB entries. */
  fresh: boolean;
  /** Deleted or taken down by this diff: the kernel drops the routes through it. */
  gone: boolean;
}

/** A tunnel address as the kernel lists it: /32, or /128 for IPv6. */
const hostPrefix = (a: string): string => `${a}/${a.includes(':') ? 128 : 32}`;

function addressLines(dev: string, have: string[], want: string | undefined, changes: string[]): string[][] {
  const wanted = want ? [hostPrefix(want)] : [];
  const lines: string[][] = [];
  for (const a of have) {
    if (wanted.includes(a)) continue;
    lines.push(addrDel(a, dev));
    changes.push(`${dev}: remove ${a}`);
  }
  for (const a of wanted) {
    if (have.includes(a)) continue;
    lines.push(addrAdd(a, dev));
    changes.push(`${dev}: address ${a}`);
  }
  return lines;
}

/** One VXLAN device: vxlan.tabby, or `device` vxlan-v6.tabby for IPv6 pools. */
export function syncVxlanDevice(
  cur: VxlanLink | undefined,
  want: DesiredVxlan | undefined,
  device = VXLAN_DEVICE,
): DeviceStep {
  const step: DeviceStep = { lines: [], changes: [], fresh: false, gone: false };
  if (!want) {
    if (cur) {
      step.lines.push(linkDel(device));
      step.changes.push(`delete ${device} (no ${device === VXLAN_V6_DEVICE ? 'IPv6 ' : ''}pool uses VXLAN)`);
      step.gone = true;
    }
    return step;
  }
  const mismatch = cur && vxlanMismatch(cur, want);
  if (!cur || mismatch) {
    if (cur) step.lines.push(linkDel(want.device));
    step.lines.push(vxlanAdd(want));
    step.changes.push(
      cur
        ? `recreate ${want.device}: ${mismatch}`
        : `create ${want.device} (VNI ${want.vni}, local ${want.local}, parent ${want.parent}, MAC ${want.mac})`,
    );
    step.fresh = true;
  } else if (cur.mtu !== want.mtu) {
    step.lines.push(linkMtu(want.device, want.mtu));
    step.changes.push(`${want.device} mtu ${cur.mtu} → ${want.mtu}`);
  }
  step.lines.push(...addressLines(want.device, step.fresh ? [] : cur!.addresses, want.address, step.changes));
  if (step.fresh || !cur!.up) step.lines.push(linkUp(want.device));
  if (!step.fresh && cur && !cur.up) step.changes.push(`${want.device}: up`);
  return step;
}

/** tunl0 is the ipip module's fallback device: it cannot be deleted, only stripped and taken down. */
export function syncIpipDevice(
  cur: TunlLink | undefined,
  want: DesiredIpip | undefined,
): DeviceStep & { create: boolean } {
  const step = { lines: [] as string[][], changes: [] as string[], fresh: false, gone: false, create: false };
  if (!want) {
    if (cur && cur.addresses.length > 0) {
      step.lines.push(['address', 'flush', 'dev', IPIP_DEVICE], linkDown(IPIP_DEVICE));
      step.changes.push(`${IPIP_DEVICE}: flushed and down (no pool uses IPIP)`);
      step.gone = true;
    }
    return step;
  }
  if (!cur) {
    step.create = true;
    step.fresh = true;
    step.changes.push(`create ${want.device}`);
  }
  if (!cur || cur.mtu !== want.mtu) step.lines.push(linkMtu(want.device, want.mtu));
  step.lines.push(...addressLines(want.device, cur?.addresses ?? [], want.address, step.changes));
  if (!cur?.up) step.lines.push(linkUp(want.device));
  return step;
}

export const toRoute = (r: DesiredRoute): Route =>
  r.kind === 'blackhole' ? { dst: r.dst, blackhole: true } : { dst: r.dst, blackhole: false, via: r.via, dev: r.dev };

const sameRoute = (a: Route, b: Route): boolean =>
  a.blackhole === b.blackhole && (a.blackhole || (a.via === b.via && a.dev === b.dev));

const sameAsWanted = (h: Route, w: DesiredRoute): boolean =>
  h.dst === w.dst && (w.kind === 'blackhole' ? h.blackhole : !h.blackhole && h.via === w.via && h.dev === w.dev);

const describeRoute = (r: Route): string => (r.blackhole ? 'blackhole' : `via ${r.via} dev ${r.dev}`);

/**
 * tabby's routes: removes its own that are no longer wanted, writes the missing and changed ones, and
 * leaves a destination alone when another program routes it. `emptied` devices lost their routes
 * already (deleted, recreated or taken down in this diff).
 */
export function syncRoutes(have: OverlayState, wantAll: DesiredRoute[], emptied: Set<string>) {
  const lines: string[][] = [];
  const changes: string[] = [];
  const leftAlone: string[] = [];
  const [haveRoutes, want] = emptied.size ? [have.routes, wantAll] : trimCommon(have.routes, wantAll, sameAsWanted);
  const wanted = new Map(want.map((r) => [r.dst, toRoute(r)]));
  const ours = new Map(haveRoutes.map((r) => [r.dst, r]));
  const foreign = new Map(have.foreign.map((r) => [r.dst, r]));
  for (const cur of haveRoutes) {
    const w = wanted.get(cur.dst);
    if (w && sameRoute(cur, w)) continue;
    if (!(cur.dev && emptied.has(cur.dev))) lines.push(routeDel(cur)); // changed ones are written anew below
    if (!w) changes.push(`route ${cur.dst}: removed`);
  }
  for (const w of wanted.values()) {
    const other = foreign.get(w.dst);
    if (other) {
      leftAlone.push(
        `route ${w.dst}: left alone, another route to it exists (proto ${other.protocol}${other.dev ? ` dev ${other.dev}` : ''})`,
      );
      continue;
    }
    const cur = ours.get(w.dst);
    if (cur && sameRoute(cur, w) && !(w.dev && emptied.has(w.dev))) continue;
    lines.push(routeReplace(w));
    changes.push(
      `route ${w.dst} ${describeRoute(w)}${cur && !sameRoute(cur, w) ? ` (was ${describeRoute(cur)})` : ''}`,
    );
  }
  return { lines, changes, leftAlone };
}

/**
 * The two lists less the entries they share at their start and at their end, in the same order. An
 * incremental apply diffs against the previous plan, which lists peers in the same order: a change to
 * one peer then leaves a middle of a few entries, and the diff costs comparisons, not maps of the cluster.
 * Keys are unique in each list, so an entry stripped here cannot be needed in the middle.
 */
export function trimCommon<A, B>(have: A[], want: B[], same: (a: A, b: B) => boolean): [A[], B[]] {
  let start = 0;
  while (start < have.length && start < want.length && same(have[start], want[start])) start++;
  let end = 0;
  while (
    end < have.length - start &&
    end < want.length - start &&
    same(have[have.length - 1 - end], want[want.length - 1 - end])
  ) {
    end++;
  }
  return [have.slice(start, have.length - end), want.slice(start, want.length - end)];
}

/** Generic permanent-entry sync for neighbours and FDB entries, keyed by what identifies them. */
function syncEntries<T>(
  haveAll: T[],
  wantAll: T[],
  same: (a: T, b: T) => boolean,
  key: (t: T) => string,
  del: (t: T) => string[],
  put: (t: T) => string[],
  describe: (t: T) => string,
) {
  const lines: string[][] = [];
  const changes: string[] = [];
  const [have, want] = trimCommon(haveAll, wantAll, same);
  const wanted = new Set(want.map(key));
  const held = new Set(have.map(key));
  for (const h of have) {
    if (wanted.has(key(h))) continue;
    lines.push(del(h));
    changes.push(`${describe(h)}: removed`);
  }
  for (const w of want) {
    if (held.has(key(w))) continue;
    lines.push(put(w));
    changes.push(describe(w));
  }
  return { lines, changes };
}

/** The permanent neighbours and FDB entries of one VXLAN device. */
function syncVteps(
  dev: string,
  fresh: boolean,
  have: { neighbours?: OverlayState['neighbours']; fdb?: OverlayState['fdb'] },
  want: { neighbours?: DesiredOverlay['neighbours']; fdb?: DesiredOverlay['fdb'] },
) {
  const neigh = syncEntries(
    fresh ? [] : (have.neighbours ?? []),
    want.neighbours ?? [],
    (a, b) => a.ip === b.ip && a.mac === b.mac,
    (n) => `${n.ip} ${n.mac}`,
    (n) => neighDel(n, dev),
    (n) => neighReplace(n, dev),
    (n) => `neighbour ${n.ip} ${n.mac}`,
  );
  const entries = syncEntries(
    fresh ? [] : (have.fdb ?? []),
    want.fdb ?? [],
    (a, b) => a.mac === b.mac && a.dst === b.dst,
    (f) => `${f.mac} ${f.dst}`,
    (f) => fdbDel(f, dev),
    (f) => fdbReplace(f, dev),
    (f) => `fdb ${f.mac} -> ${f.dst}`,
  );
  return { ip: neigh.lines, fdb: entries.lines, changes: [...neigh.changes, ...entries.changes] };
}

export function diffOverlay(have: OverlayState, want: DesiredOverlay): OverlayDiff {
  const vx = syncVxlanDevice(have.vxlan, want.vxlan);
  const vx6 = syncVxlanDevice(have.vxlanV6, want.vxlanV6, VXLAN_V6_DEVICE);
  const ipip = syncIpipDevice(have.tunl, want.ipip);
  const emptied = new Set<string>();
  if (vx.fresh || vx.gone) emptied.add(VXLAN_DEVICE);
  if (vx6.fresh || vx6.gone) emptied.add(VXLAN_V6_DEVICE);
  if (ipip.gone) emptied.add(IPIP_DEVICE);
  const routes = syncRoutes(have, want.routes, emptied);
  const ip = [...vx.lines, ...vx6.lines, ...ipip.lines, ...routes.lines];
  const changes = [...vx.changes, ...vx6.changes, ...ipip.changes, ...routes.changes];
  const fdb: string[][] = [];
  if (want.vxlan) {
    const v = syncVteps(want.vxlan.device, vx.fresh, have, want);
    ip.push(...v.ip);
    fdb.push(...v.fdb);
    changes.push(...v.changes);
  }
  if (want.vxlanV6) {
    const v = syncVteps(
      want.vxlanV6.device,
      vx6.fresh,
      { neighbours: have.neighboursV6, fdb: have.fdbV6 },
      { neighbours: want.neighboursV6, fdb: want.fdbV6 },
    );
    ip.push(...v.ip);
    fdb.push(...v.fdb);
    changes.push(...v.changes);
  }
  const fresh = [
    ...(vx.fresh ? [VXLAN_DEVICE] : []),
    ...(vx6.fresh ? [VXLAN_V6_DEVICE] : []),
    ...(ipip.fresh ? [IPIP_DEVICE] : []),
  ];
  return { createTunl: ipip.create, ip, fdb, changes, leftAlone: routes.leftAlone, fresh };
}

/**
 * What the kernel holds once `want` is applied over `have`: the agent keeps this, so that its next
 * change is diffed against it without reading the kernel back.
 */
export function stateAfter(have: OverlayState, want: DesiredOverlay): OverlayState {
  const foreign = new Set(have.foreign.map((r) => r.dst));
  const vx = want.vxlan;
  const vx6 = want.vxlanV6;
  const link = (v: DesiredVxlan): VxlanLink => ({
    kind: 'vxlan',
    vni: v.vni,
    port: v.port,
    parent: v.parent,
    local: v.local,
    mac: v.mac,
    learning: false,
    mtu: v.mtu,
    up: true,
    addresses: v.address ? [hostPrefix(v.address)] : [],
  });
  return {
    vxlan: vx && link(vx),
    tunl: want.ipip
      ? { mtu: want.ipip.mtu, up: true, addresses: want.ipip.address ? [`${want.ipip.address}/32`] : [] }
      : have.tunl && { ...have.tunl, up: have.tunl.addresses.length ? false : have.tunl.up, addresses: [] },
    routes: want.routes.filter((r) => !foreign.has(r.dst)).map(toRoute),
    foreign: have.foreign,
    neighbours: vx ? want.neighbours.map(({ ip, mac }) => ({ ip, mac })) : [],
    fdb: vx ? want.fdb.map(({ mac, dst }) => ({ mac, dst })) : [],
    vxlanV6: vx6 && link(vx6),
    neighboursV6: vx6 ? (want.neighboursV6 ?? []).map(({ ip, mac }) => ({ ip, mac })) : [],
    fdbV6: vx6 ? (want.fdbV6 ?? []).map(({ mac, dst }) => ({ mac, dst })) : [],
  };
}
