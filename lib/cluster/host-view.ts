// Who this node is on the underlay: its addresses and interfaces, from its Node record or found by the
// autodetection methods, read off the host with one `ip address show` (and a default route lookup only
// when a method needs it). Planning takes a LocalNode from here; registration on etcd takes the
// autodetected addresses.
import { CniError, Code } from '../cni/errors';
import type { ClusterConf } from '../../conf/netconf';
import type { ClusterResources } from '../../conf/calico';
import { Cidr, formatCidr, parseCidr } from '../net/addr';
import { ipJson } from '../dataplane/iproute';
import { hostMtu } from '../dataplane/links';
import { autodetectAddress, HostAddress } from './identity';
import type { LocalNode } from './plan';

/** What a node reads of its host for planning: its addresses, and the default routes' devices once asked. */
export interface HostReading {
  addrs: HostAddress[];
  defaultDev?: string | null;
  defaultDev6?: string | null;
}

/** A cluster whose pools are all IPv6: its nodes need no IPv4 address. */
const pureIPv6 = (r: ClusterResources): boolean => r.pools.length > 0 && r.pools.every((p) => p.cidr.ip.family === 6);

export class HostView {
  constructor(private readonly conf: ClusterConf) {}

  /** This host's addresses, read now. */
  async read(): Promise<HostReading> {
    return { addrs: await hostAddresses() };
  }

  /** This node's underlay addresses and interfaces in `host`; `freshMtu` reads the host MTU again. */
  async localNode(r: ClusterResources, host: HostReading, freshMtu: boolean): Promise<LocalNode> {
    const name = this.conf.nodeName;
    const record = r.nodes.find((n) => n.name === name);
    const addrs = host.addrs;
    const v6 = await this.localNodeV6(r, record, host);
    let address: Cidr | undefined;
    let parent: string;
    if (record?.ipv4Address) {
      const want = record.ipv4Address;
      address = want;
      const on = addrs.find((a) => a.cidr.ip.family === 4 && a.cidr.ip.value === want.ip.value);
      if (!on) {
        throw new CniError(
          Code.InvalidNetworkConfig,
          `cluster file: Node ${name}: spec.bgp.ipv4Address ${formatCidr(address)} is on no interface of this host`,
        );
      }
      parent = on.ifname;
    } else if (v6 && pureIPv6(r)) {
      // A pure IPv6 cluster needs no IPv4 address: one is used if found, for IPv4 blocks added later.
      const found = await this.autodetect(addrs, await this.defaultDev(host)).catch(() => undefined);
      address = found?.cidr;
      parent = found?.ifname ?? v6.parent6;
    } else {
      ({ cidr: address, ifname: parent } = await this.autodetect(addrs, await this.defaultDev(host)));
    }
    return { name, address, parent, ...v6, hostMtu: hostMtu(freshMtu) };
  }

  /** This host's address of `family` by the autodetection method, whatever its Node record says. */
  async detect(family: 4 | 6): Promise<HostAddress> {
    const host = await this.read();
    return this.autodetect(host.addrs, await this.defaultDev(host, family), family);
  }

  /**
   * This node's IPv6 underlay address and interface: from its record (spec.bgp.ipv6Address), else
   * autodetected (ipAutodetectionMethodV6) when the cluster has IPv6 pools. Required in a pure IPv6
   * cluster; in a dual-stack one, a node without one carries IPv4 only (the plan says why).
   */
  private async localNodeV6(
    r: ClusterResources,
    record: ClusterResources['nodes'][number] | undefined,
    host: HostReading,
  ): Promise<{ address6: Cidr; parent6: string } | undefined> {
    const want = record?.ipv6Address;
    if (want) {
      const on = host.addrs.find((a) => a.cidr.ip.family === 6 && a.cidr.ip.value === want.ip.value);
      if (!on) {
        throw new CniError(
          Code.InvalidNetworkConfig,
          `cluster file: Node ${this.conf.nodeName}: spec.bgp.ipv6Address ${formatCidr(want)} is on no interface of this host`,
        );
      }
      return { address6: want, parent6: on.ifname };
    }
    if (!r.pools.some((p) => p.cidr.ip.family === 6)) return undefined;
    const found = await this.autodetect(host.addrs, await this.defaultDev(host, 6), 6).catch((e) => {
      if (pureIPv6(r)) throw e;
      return undefined;
    });
    return found && { address6: found.cidr, parent6: found.ifname };
  }

  /** The default route's device (of IPv4, or of IPv6), read once per host reading. */
  private async defaultDev(host: HostReading, family: 4 | 6 = 4): Promise<string | undefined> {
    const key = family === 4 ? 'defaultDev' : 'defaultDev6';
    if (host[key] === undefined) {
      const [def] = await ipJson<{ dev?: string }[]>([`-${family}`, 'route', 'show', 'default']);
      host[key] = def?.dev ?? null;
    }
    return host[key] ?? undefined;
  }

  private async autodetect(
    addrs: HostAddress[],
    defaultDev: string | undefined,
    family: 4 | 6 = 4,
  ): Promise<HostAddress> {
    const method = family === 4 ? this.conf.ipAutodetectionMethod : this.conf.ipAutodetectionMethodV6;
    let reachDev: string | undefined;
    if (method?.startsWith('can-reach=')) {
      const target = method.slice('can-reach='.length);
      const [rt] = await ipJson<{ dev?: string }[]>(['route', 'get', target]).catch(() => []);
      reachDev = rt?.dev;
    }
    const found = autodetectAddress(method, addrs, defaultDev, () => reachDev, family);
    if (!found) {
      throw new CniError(
        Code.InvalidNetworkConfig,
        `node ${this.conf.nodeName}: its Node record has no spec.bgp.ipv${family}Address and autodetection ` +
          `(${method ?? 'first-found'}) found no IPv${family} address`,
      );
    }
    return found;
  }
}

interface ShownAddresses {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

/** This host's IPv4 addresses (not host-scoped) and global IPv6 ones, with their interfaces. */
async function hostAddresses(): Promise<HostAddress[]> {
  const shown = await ipJson<ShownAddresses[]>(['address', 'show']);
  return shown.flatMap((l) =>
    (l.addr_info ?? [])
      .filter((a) => (a.family === 'inet' && a.scope !== 'host') || (a.family === 'inet6' && a.scope === 'global'))
      .map((a) => ({ ifname: l.ifname, cidr: parseCidr(`${a.local}/${a.prefixlen}`)! })),
  );
}
