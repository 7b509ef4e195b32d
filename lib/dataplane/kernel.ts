// The overlay's kernel objects, typed: links, routes, neighbours and FDB entries. Each kind has a read
// (one `ip -j`/`bridge -j` process, normalised into these types) and write verbs that return the words
// of one batch line, so a whole change still goes out as one `ip -batch` and one `bridge -batch`.
import { execArgs, which } from '../exec';
import { ipJson, KernelError } from './iproute';
import { linkExists } from './links';
import { HOST_VETH_PREFIX } from './veth';
import { IPIP_DEVICE, ROUTE_PROTO, VXLAN_DEVICE, VXLAN_V6_DEVICE } from './devices';

/** A route as tabby sees it: a blackhole, or `dst via … dev …`. */
export interface Route {
  dst: string;
  blackhole: boolean;
  via?: string;
  dev?: string;
}

/** A route of another program (not ROUTE_PROTO), kept only to leave its destination alone. */
export interface ForeignRoute {
  dst: string;
  protocol: string;
  dev?: string;
}

export interface Neigh {
  ip: string;
  mac: string;
}

export interface FdbEntry {
  mac: string;
  dst: string;
}

export interface VxlanLink {
  vni?: number;
  port?: number;
  parent?: string;
  local?: string;
  mac?: string;
  learning?: boolean;
  /** `info_kind`: a device of tabby's name that is not a VXLAN device gets recreated. */
  kind?: string;
  mtu?: number;
  up: boolean;
  /** Its addresses as `address/len`: IPv4 ones (vxlan.tabby), or IPv6 ones less link-local (vxlan-v6.tabby). */
  addresses: string[];
}

export interface TunlLink {
  mtu?: number;
  up: boolean;
  addresses: string[];
}

/** What the kernel holds of tabby's overlay. */
export interface OverlayState {
  vxlan?: VxlanLink;
  tunl?: TunlLink;
  /** tabby's routes (ROUTE_PROTO), without the per-pod host routes on tab* veths. */
  routes: Route[];
  foreign: ForeignRoute[];
  /** Permanent neighbours on the VXLAN device. */
  neighbours: Neigh[];
  /** Permanent FDB entries with a destination on the VXLAN device. */
  fdb: FdbEntry[];
  /** The same of the IPv6 VXLAN device (vxlan-v6.tabby); absent where it was never read or planned. */
  vxlanV6?: VxlanLink;
  neighboursV6?: Neigh[];
  fdbV6?: FdbEntry[];
}

interface ShownAddr {
  family: string;
  local: string;
  prefixlen: number;
  scope?: string;
}
interface ShownLink {
  address?: string;
  mtu?: number;
  flags?: string[];
  linkinfo?: {
    info_kind?: string;
    info_data?: { id?: number; local?: string; link?: string; port?: number; learning?: boolean };
  };
  addr_info?: ShownAddr[];
}
interface ShownRoute {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
}
interface ShownNeigh {
  dst: string;
  lladdr?: string;
  state?: string[];
}
interface ShownFdb {
  mac: string;
  dst?: string;
  state?: string;
}

const BRIDGE_BIN = which('bridge');

const v4Addresses = (l: ShownLink): string[] =>
  (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);

/** The IPv6 addresses tabby manages: the kernel's own link-local one is left out. */
const v6Addresses = (l: ShownLink): string[] =>
  (l.addr_info ?? []).filter((a) => a.family === 'inet6' && a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`);

/** `ip route` prints a host route without its length; tabby writes and compares prefixes. */
export const normaliseDst = (dst: string): string =>
  dst === 'default' ? '0.0.0.0/0' : dst.includes('/') ? dst : `${dst}/${dst.includes(':') ? 128 : 32}`;

export function toVxlanLink(l: ShownLink, family: 4 | 6 = 4): VxlanLink {
  const d = l.linkinfo?.info_data;
  return {
    kind: l.linkinfo?.info_kind,
    vni: d?.id,
    port: d?.port,
    parent: d?.link,
    local: d?.local,
    learning: d?.learning,
    mac: l.address,
    mtu: l.mtu,
    up: l.flags?.includes('UP') ?? false,
    addresses: family === 4 ? v4Addresses(l) : v6Addresses(l),
  };
}

export function toRoutes(shown: ShownRoute[]): { routes: Route[]; foreign: ForeignRoute[] } {
  const routes: Route[] = [];
  const foreign: ForeignRoute[] = [];
  for (const s of shown) {
    const dst = normaliseDst(s.dst);
    if (s.protocol !== ROUTE_PROTO) foreign.push({ dst, protocol: s.protocol ?? 'boot', dev: s.dev });
    else if (!s.dev?.startsWith(HOST_VETH_PREFIX)) {
      routes.push({ dst, blackhole: s.type === 'blackhole', via: s.gateway, dev: s.dev });
    }
  }
  return { routes, foreign };
}

/**
 * Reads everything the overlay diff needs: the routes of both families, and each VXLAN device that
 * exists with its neighbours and FDB entries (`ip -j` processes in parallel, one `bridge -j` per device).
 */
export async function readOverlayState(): Promise<OverlayState> {
  const vxExists = linkExists(VXLAN_DEVICE);
  const vx6Exists = linkExists(VXLAN_V6_DEVICE);
  const ipipExists = linkExists(IPIP_DEVICE);
  const [vx, vx6, shownRoutes, shownRoutes6, neighs, neighs6, tunl, fdb, fdb6] = await Promise.all([
    vxExists ? ipJson<ShownLink[]>(['-d', 'address', 'show', 'dev', VXLAN_DEVICE]) : [],
    vx6Exists ? ipJson<ShownLink[]>(['-d', 'address', 'show', 'dev', VXLAN_V6_DEVICE]) : [],
    ipJson<ShownRoute[]>(['route', 'show']),
    ipJson<ShownRoute[]>(['-6', 'route', 'show']),
    vxExists ? ipJson<ShownNeigh[]>(['neigh', 'show', 'dev', VXLAN_DEVICE]) : [],
    vx6Exists ? ipJson<ShownNeigh[]>(['-6', 'neigh', 'show', 'dev', VXLAN_V6_DEVICE]) : [],
    ipipExists ? ipJson<ShownLink[]>(['address', 'show', 'dev', IPIP_DEVICE]) : [],
    vxExists ? readFdb(VXLAN_DEVICE) : [],
    vx6Exists ? readFdb(VXLAN_V6_DEVICE) : [],
  ]);
  const routes4 = toRoutes(shownRoutes);
  const routes6 = toRoutes(shownRoutes6);
  return {
    vxlan: vx[0] && toVxlanLink(vx[0]),
    tunl: tunl[0] && { mtu: tunl[0].mtu, up: tunl[0].flags?.includes('UP') ?? false, addresses: v4Addresses(tunl[0]) },
    routes: [...routes4.routes, ...routes6.routes],
    foreign: [...routes4.foreign, ...routes6.foreign],
    neighbours: permanent(neighs),
    fdb,
    vxlanV6: vx6[0] && toVxlanLink(vx6[0], 6),
    neighboursV6: permanent(neighs6),
    fdbV6: fdb6,
  };
}

const permanent = (neighs: ShownNeigh[]): Neigh[] =>
  neighs.filter((n) => n.state?.includes('PERMANENT') && n.lladdr).map((n) => ({ ip: n.dst, mac: n.lladdr! }));

async function readFdb(dev: string): Promise<FdbEntry[]> {
  const res = await execArgs(BRIDGE_BIN, ['-j', 'fdb', 'show', 'dev', dev]);
  if (res.code !== 0 || !res.stdout.trim()) return [];
  return (JSON.parse(res.stdout) as ShownFdb[])
    .filter((f) => f.dst && f.state === 'permanent')
    .map((f) => ({ mac: f.mac, dst: f.dst! }));
}

// Write verbs: each returns the words of one `ip -batch` (or `bridge -batch`) line.

/** `ip route replace`: creates the route or changes it in place. */
export function routeReplace(r: Route): string[] {
  return r.blackhole
    ? ['route', 'replace', 'blackhole', r.dst, 'proto', ROUTE_PROTO]
    : ['route', 'replace', r.dst, 'via', r.via!, 'dev', r.dev!, 'onlink', 'proto', ROUTE_PROTO];
}

export function routeDel(r: Pick<Route, 'dst' | 'blackhole'>): string[] {
  return ['route', 'del', ...(r.blackhole ? ['blackhole'] : []), r.dst, 'proto', ROUTE_PROTO];
}

export const neighReplace = (n: Neigh, dev: string): string[] => [
  'neigh',
  'replace',
  n.ip,
  'lladdr',
  n.mac,
  'dev',
  dev,
  'nud',
  'permanent',
];
export const neighDel = (n: Neigh, dev: string): string[] => ['neigh', 'del', n.ip, 'dev', dev];

export const fdbReplace = (f: FdbEntry, dev: string): string[] => [
  'fdb',
  'replace',
  f.mac,
  'dev',
  dev,
  'dst',
  f.dst,
  'self',
  'permanent',
];
export const fdbDel = (f: FdbEntry, dev: string): string[] => ['fdb', 'del', f.mac, 'dev', dev, 'dst', f.dst, 'self'];

/** IPv6 addresses skip duplicate address detection: a tentative tunnel address could not be used at once. */
export const addrAdd = (cidr: string, dev: string): string[] => [
  'address',
  'add',
  cidr,
  'dev',
  dev,
  ...(cidr.includes(':') ? ['nodad'] : []),
];
export const addrDel = (cidr: string, dev: string): string[] => ['address', 'del', cidr, 'dev', dev];
export const linkUp = (dev: string): string[] => ['link', 'set', 'dev', dev, 'up'];
export const linkDown = (dev: string): string[] => ['link', 'set', 'dev', dev, 'down'];
export const linkMtu = (dev: string, mtu: number): string[] => ['link', 'set', 'dev', dev, 'mtu', String(mtu)];
export const linkDel = (dev: string): string[] => ['link', 'del', 'dev', dev];

export function vxlanAdd(v: {
  device: string;
  mac: string;
  mtu: number;
  vni: number;
  local: string;
  parent: string;
  port: number;
}): string[] {
  return [
    'link',
    'add',
    v.device,
    'address',
    v.mac,
    'mtu',
    String(v.mtu),
    'type',
    'vxlan',
    'id',
    String(v.vni),
    'local',
    v.local,
    'dev',
    v.parent,
    'dstport',
    String(v.port),
    'nolearning',
  ];
}

/** Runs `bridge -batch` over FDB lines. */
export async function runBridgeBatch(lines: string[][]): Promise<void> {
  if (!lines.length) return;
  const res = await execArgs(BRIDGE_BIN, ['-batch', '-'], { input: lines.map((l) => l.join(' ')).join('\n') + '\n' });
  if (res.code !== 0) throw new KernelError('bridge -batch (fdb)', res.stderr);
}
