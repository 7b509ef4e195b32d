import { sha1Hex } from '../sha1';
import { CniError, Code } from '../cni/errors';
import { IpBatch, ip, ipCommand, ipJson, KernelError } from './iproute';
import { execArgs } from '../exec';
import { readSysctl, setSysctls } from './sysctl';
import { ROUTE_PROTO } from './devices';

/**
 * Calico-style pod wiring: a veth pair, the pod's addresses as /32 and /128, a link-local gateway
 * that the host end answers by proxy ARP (IPv4) or owns as its link-local address (IPv6), and one
 * host route per pod address.
 */

export const HOST_VETH_PREFIX = 'tab';
export const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';
export const GATEWAY_V4 = '169.254.1.1';
/** The EUI-64 link-local address of HOST_VETH_MAC: the host end owns it, so pods use it as their IPv6 gateway. */
export const GATEWAY_V6 = 'fe80::ecee:eeff:feee:eeee';

/**
 * The host end's name: the prefix and 12 hex digits of sha1(containerID/ifname). Unlike Calico (which
 * hashes the pod's name) it depends only on the attachment, so DEL and GC can find it with nothing but
 * the attachment's identity, and two interfaces of one pod never collide.
 */
export function hostVethName(containerId: string, ifname: string): string {
  return HOST_VETH_PREFIX + sha1Hex(`${containerId}/${ifname}`).slice(0, 12);
}

export interface PodAddress {
  ip: string; // bare address
  family: 4 | 6;
}

export interface PodWiring {
  netns: string;
  ifname: string;
  hostVeth: string;
  /** Written as the host end's alias, so GC can tell which network and attachment a veth belongs to. */
  owner: VethOwner;
  mtu: number;
  addresses: PodAddress[];
  /** Extra destinations (besides the default routes) to send through the gateway. */
  routes: string[];
}

export interface VethOwner {
  network: string;
  containerId: string;
  ifname: string;
}

const ALIAS_PREFIX = 'tabby:';
export const vethAlias = (o: VethOwner): string => `${ALIAS_PREFIX}${o.network}:${o.containerId}:${o.ifname}`;

export function parseVethAlias(alias: string | undefined): VethOwner | undefined {
  if (!alias?.startsWith(ALIAS_PREFIX)) return undefined;
  const [network, containerId, ifname] = alias.slice(ALIAS_PREFIX.length).split(':');
  return network && containerId && ifname ? { network, containerId, ifname } : undefined;
}

/** Host ends of pod veths in tabby's namespace, with the owner their alias names. */
export async function listHostVeths(): Promise<{ name: string; owner?: VethOwner }[]> {
  const links = await ipJson<{ ifname: string; ifalias?: string }[]>(['link', 'show', 'type', 'veth']);
  return links
    .filter((l) => l.ifname.startsWith(HOST_VETH_PREFIX))
    .map((l) => ({ name: l.ifname, owner: parseVethAlias(l.ifalias) }));
}

export interface WiredPod {
  hostMac: string;
  podMac: string;
}

const hostPrefix = (a: PodAddress): string => `${a.ip}/${a.family === 4 ? 32 : 128}`;
export const gatewayFor = (family: 4 | 6): string => (family === 4 ? GATEWAY_V4 : GATEWAY_V6);
export const defaultDst = (family: 4 | 6): string => (family === 4 ? '0.0.0.0/0' : '::/0');

/** The pod routes tabby installs: the default route per family, plus configured destinations. */
export function podRoutes(w: Pick<PodWiring, 'addresses' | 'routes'>): { dst: string; gw: string }[] {
  const families = [...new Set(w.addresses.map((a) => a.family))];
  const out = families.map((f) => ({ dst: defaultDst(f), gw: gatewayFor(f) }));
  for (const dst of w.routes) {
    const f = dst.includes(':') ? 6 : 4;
    if (!families.includes(f) || out.some((r) => r.dst === dst)) continue;
    out.push({ dst, gw: gatewayFor(f) });
  }
  return out;
}

function macOf(shown: unknown, name: string): string {
  const link = Array.isArray(shown) ? (shown[0] as { address?: string } | undefined) : undefined;
  if (!link?.address) throw new CniError(Code.KernelOperationFailed, `cannot read the MAC address of ${name}`);
  return link.address;
}

/** Whether `ifname` exists in the pod's namespace (asked only on the rare path of a name clash). */
async function podHasLink(netns: string, ifname: string): Promise<boolean> {
  const [file, argv] = ipCommand(['link', 'show', 'dev', ifname], netns);
  return (await execArgs(file, argv)).code === 0;
}

/** Creates and configures the pair. On failure, whatever this call created is removed before the error is thrown. */
export async function wirePod(w: PodWiring): Promise<WiredPod> {
  const hasV6 = w.addresses.some((a) => a.family === 6);
  // A host with IPv6 off by default needs it on for the veth before its link-local address goes on:
  // then the link is made alone first (rare; otherwise one batch does the whole host side).
  const v6Off = hasV6 && readSysctl('net.ipv6.conf.default.disable_ipv6') === '1';
  const create = [
    'link',
    'add',
    w.hostVeth,
    'mtu',
    String(w.mtu),
    'address',
    HOST_VETH_MAC,
    'type',
    'veth',
    'peer',
    'name',
    w.ifname,
    'mtu',
    String(w.mtu),
    'netns',
    w.netns,
  ];
  const host = new IpBatch();
  if (!v6Off) host.add(...create);
  host.add('link', 'set', 'dev', w.hostVeth, 'alias', vethAlias(w.owner));
  if (hasV6) {
    // the link-local gateway address, without waiting for duplicate address detection
    host.add('link', 'set', 'dev', w.hostVeth, 'addrgenmode', 'none');
    host.add('address', 'add', `${GATEWAY_V6}/64`, 'dev', w.hostVeth, 'nodad');
  }
  host.add('link', 'set', 'dev', w.hostVeth, 'up');
  // `add`, not `replace`: a host route that already sends this address to another pod's veth means two
  // IPAM stores hand out one block (a renamed network, a changed dataDir); it is refused, never taken over.
  for (const a of w.addresses)
    host.add('route', 'add', hostPrefix(a), 'dev', w.hostVeth, 'scope', 'link', 'proto', ROUTE_PROTO);
  host.add('link', 'show', 'dev', w.hostVeth);

  let created = false; // from here on, a host veth of this name is this call's to remove on failure
  try {
    let hostShown: unknown;
    for (let attempt = 0; ; attempt++) {
      try {
        if (v6Off) {
          await new IpBatch().add(...create).run();
          created = true;
          setSysctls({ [`net.ipv6.conf.${w.hostVeth}.disable_ipv6`]: '0' });
        }
        created = true;
        [hostShown] = await host.run();
        break;
      } catch (e) {
        if (e instanceof KernelError && /File exists/.test(e.stderr) && e.message.startsWith('ip route add')) {
          throw await routedElsewhere(e.message.split(' ')[3], w.hostVeth);
        }
        const clash = e instanceof KernelError && /File exists/.test(e.stderr) && e.message.includes('link add');
        if (!clash || attempt > 0) throw e;
        created = false;
        // The pod has `ifname` already (a second ADD of a live attachment: refuse, touch nothing), or a
        // host veth of this name was left by an interrupted ADD of this attachment (remove it, retry once).
        if (await podHasLink(w.netns, w.ifname)) {
          throw new CniError(Code.KernelOperationFailed, `interface ${w.ifname} already exists in ${w.netns}`);
        }
        await unwirePod(w.hostVeth);
      }
    }
    const hostMac = macOf(hostShown, w.hostVeth);
    if (hostMac !== HOST_VETH_MAC) {
      throw new CniError(
        Code.KernelOperationFailed,
        `the kernel ignored MAC ${HOST_VETH_MAC} for ${w.hostVeth} (it has ${hostMac})`,
      );
    }
    setSysctls(hostSysctls(w.hostVeth, hasV6));

    const pod = new IpBatch(w.netns);
    for (const a of w.addresses) {
      pod.add('address', 'add', hostPrefix(a), 'dev', w.ifname, ...(a.family === 6 ? ['nodad'] : []));
    }
    pod.add('link', 'set', 'dev', w.ifname, 'up');
    if (w.addresses.some((a) => a.family === 4)) {
      // `append`: a second tabby interface in the pod (say net1 beside eth0) adds its routes behind the
      // first one's instead of failing on them; the first interface keeps the default route.
      pod.add('route', 'append', `${GATEWAY_V4}/32`, 'dev', w.ifname, 'scope', 'link', 'proto', ROUTE_PROTO);
      // Proxy ARP answers for 169.254.1.1 only while the node has a route to it through another
      // device (usually its default route); a static entry keeps pods working on nodes without one.
      pod.add('neigh', 'replace', GATEWAY_V4, 'lladdr', HOST_VETH_MAC, 'dev', w.ifname, 'nud', 'permanent');
    }
    // IPv6 would merge appended routes into one multipath route: a second interface's IPv6 routes get a
    // metric of their own instead, behind eth0's (the kernel's default is 1024).
    const v6Metric =
      w.ifname === 'eth0' ? [] : ['metric', String(1025 + (parseInt(sha1Hex(w.ifname).slice(0, 6), 16) % 1000))];
    for (const r of podRoutes(w)) {
      if (r.gw === GATEWAY_V4) pod.add('route', 'append', r.dst, 'via', r.gw, 'dev', w.ifname, 'proto', ROUTE_PROTO);
      else pod.add('route', 'add', r.dst, 'via', r.gw, 'dev', w.ifname, ...v6Metric, 'proto', ROUTE_PROTO);
    }
    pod.add('link', 'show', 'dev', w.ifname);
    const [podShown] = await pod.run();
    return { hostMac, podMac: macOf(podShown, w.ifname) };
  } catch (e) {
    if (created) await unwirePod(w.hostVeth).catch(() => undefined);
    throw e;
  }
}

/** The error for a pod address whose host route already goes elsewhere, naming the pod it goes to. */
async function routedElsewhere(prefix: string, ours: string): Promise<CniError> {
  const [route] = await ipJson<{ dev?: string }[]>(['route', 'show', 'exact', prefix]).catch(() => []);
  const dev = route?.dev;
  const owner = dev && dev !== ours ? (await listHostVeths()).find((v) => v.name === dev)?.owner : undefined;
  const holder = owner
    ? `pod ${owner.containerId} (${owner.ifname}, network ${owner.network}) on ${dev}`
    : `${dev ?? 'another device'}`;
  return new CniError(
    Code.AddressUnavailable,
    `address ${prefix.split('/')[0]} is in use on this node: its host route goes to ${holder}. Two IPAM ` +
      `stores hand out the same block: did the network's "name" or ipam.dataDir change under running pods? ` +
      `(see README, "Renaming a network")`,
  );
}

function hostSysctls(veth: string, v6: boolean): Record<string, string> {
  const s: Record<string, string> = {
    'net.ipv4.ip_forward': '1',
    [`net.ipv4.conf.${veth}.proxy_arp`]: '1',
    [`net.ipv4.conf.${veth}.route_localnet`]: '1',
    [`net.ipv4.neigh.${veth}.proxy_delay`]: '0',
  };
  if (v6) {
    s['net.ipv6.conf.all.forwarding'] = '1';
    s[`net.ipv6.conf.${veth}.accept_ra`] = '0';
    s[`net.ipv6.conf.${veth}.proxy_ndp`] = '1';
  }
  return s;
}

/**
 * Deletes the host end (its peer and the host routes go with it). Returns false when there was nothing.
 * Asks the kernel rather than sysfs: /sys shows the namespace it was mounted in, which need not be ours.
 */
export async function unwirePod(hostVeth: string): Promise<boolean> {
  try {
    await ip(['link', 'del', 'dev', hostVeth]);
  } catch (e) {
    if (e instanceof KernelError && /Cannot find device|does not exist/.test(e.stderr)) return false;
    throw e;
  }
  return true;
}

interface ShownAddr {
  family: string;
  local: string;
  prefixlen: number;
}
interface ShownLink {
  ifname: string;
  address?: string;
  mtu?: number;
  linkinfo?: { info_kind?: string };
  addr_info?: ShownAddr[];
}
interface ShownRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  scope?: string;
}

/** What CHECK compares against: the pod interface, its routes, and the host end with its routes. */
export interface PodState {
  pod?: ShownLink;
  podRoutes: ShownRoute[];
  host?: ShownLink;
  hostRoutes: ShownRoute[];
}

async function optional<T>(p: Promise<T>, fallback: T): Promise<T> {
  try {
    return await p;
  } catch {
    return fallback;
  }
}

export async function inspectPod(netns: string, ifname: string, hostVeth: string): Promise<PodState> {
  const [pod, r4, r6, host, h4, h6] = await Promise.all([
    optional(ipJson<ShownLink[]>(['-d', 'address', 'show', 'dev', ifname], netns), []),
    optional(ipJson<ShownRoute[]>(['route', 'show', 'dev', ifname], netns), []),
    optional(ipJson<ShownRoute[]>(['-6', 'route', 'show', 'dev', ifname], netns), []),
    optional(ipJson<ShownLink[]>(['-d', 'link', 'show', 'dev', hostVeth]), []),
    optional(ipJson<ShownRoute[]>(['route', 'show', 'dev', hostVeth]), []),
    optional(ipJson<ShownRoute[]>(['-6', 'route', 'show', 'dev', hostVeth]), []),
  ]);
  return { pod: pod[0], podRoutes: [...r4, ...r6], host: host[0], hostRoutes: [...h4, ...h6] };
}
