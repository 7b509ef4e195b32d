import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniError, Code } from '../cni/errors';
import { ClusterConf } from '../../conf/netconf';
import { ClusterResources } from '../../conf/calico';
import { Addr, Cidr, formatCidr, parseCidr } from '../../ipam/addr';
import { withDirLock } from '../../ipam/lock';
import { Datastore } from '../datastore/datastore';
import { ClusterFile } from '../datastore/cluster-file';
import { ipJson } from '../dataplane/iproute';
import { hostMtu } from '../dataplane/links';
import { applyOverlay, ApplyReport } from '../dataplane/overlay';
import { autodetectAddress, blocksOf, HostAddress, ipipTunnelAddr, poolOf, vxlanTunnelAddr } from './identity';
import { ClusterIpam } from '../../conf/ipam';
import { encapsulationsInUse, LocalNode, OverlayPlan, planOverlay, podMtu } from './plan';
import { IPIP_DEVICE, VXLAN_DEVICE } from '../dataplane/devices';
import { log } from '../log';
import { TABBY_VERSION } from '../about';

/** One node's view of the cluster: its datastore, its identity, and keeping its overlay applied. */
export class ClusterContext {
  private cached?: Promise<ClusterResources>;

  constructor(readonly conf: ClusterConf, readonly datastore: Datastore = new ClusterFile(conf.file, conf.stateDir)) {}

  resources(): Promise<ClusterResources> {
    return (this.cached ??= this.datastore.load());
  }

  /**
   * What IPAM hands out on this node: its blocks in enabled pools that allow workloads, less its own
   * tunnel addresses (given in its Node record, or derived).
   */
  async ipam(): Promise<ClusterIpam> {
    const r = await this.resources();
    const blocks = blocksOf(r, this.conf.nodeName)
      .filter((b) => {
        const p = poolOf(r, b.cidr);
        return p && !p.disabled && p.allowedUses.includes('Workload');
      })
      .map((b) => b.cidr);
    const self = r.nodes.find((n) => n.name === this.conf.nodeName) ?? { name: this.conf.nodeName };
    const reserved = [vxlanTunnelAddr(r, self), ipipTunnelAddr(r, self)].filter((a): a is Addr => a !== undefined);
    return { blocks, reserved };
  }

  /** The pod MTU when the config leaves it to tabby: host MTU less the encapsulation overhead in use. */
  async autoMtu(): Promise<number> {
    return podMtu(hostMtu(), encapsulationsInUse(await this.resources()));
  }

  /** This node's underlay address and interface: from its Node record, or autodetected. */
  async localNode(): Promise<LocalNode> {
    const r = await this.resources();
    const name = this.conf.nodeName;
    const record = r.nodes.find((n) => n.name === name);
    const shown = await ipJson<{ ifname: string; addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[] }[]>(['address', 'show']);
    const addrs: HostAddress[] = shown.flatMap((l) => (l.addr_info ?? [])
      .filter((a) => a.family === 'inet' && a.scope !== 'host')
      .map((a) => ({ ifname: l.ifname, cidr: parseCidr(`${a.local}/${a.prefixlen}`)! })));
    let address: Cidr;
    let parent: string;
    if (record?.ipv4Address) {
      address = record.ipv4Address;
      const on = addrs.find((a) => a.cidr.ip.value === address.ip.value);
      if (!on) throw new CniError(Code.InvalidNetworkConfig, `cluster file: Node ${name}: spec.bgp.ipv4Address ${formatCidr(address)} is on no interface of this host`);
      parent = on.ifname;
    } else {
      const method = this.conf.ipAutodetectionMethod;
      const [def] = await ipJson<{ dev?: string }[]>(['route', 'show', 'default']);
      let reachDev: string | undefined;
      if (method?.startsWith('can-reach=')) {
        const [rt] = await ipJson<{ dev?: string }[]>(['route', 'get', method.slice('can-reach='.length)]).catch(() => []);
        reachDev = rt?.dev;
      }
      const found = autodetectAddress(method, addrs, def?.dev, () => reachDev);
      if (!found) {
        throw new CniError(Code.InvalidNetworkConfig, `node ${name}: its Node record has no spec.bgp.ipv4Address and autodetection (${method ?? 'first-found'}) found no IPv4 address`);
      }
      ({ cidr: address, ifname: parent } = found);
    }
    return { name, address, parent, hostMtu: hostMtu() };
  }

  async plan(): Promise<OverlayPlan> {
    return planOverlay(await this.resources(), await this.localNode());
  }

  /** Applies the plan now, whatever was applied before. */
  async reconcile(): Promise<ApplyReport & { plan: OverlayPlan }> {
    return withDirLock(this.stateDirReady(), () => this.apply());
  }

  /** Plans, applies and records what was applied; the caller holds the state directory's lock. */
  private async apply(): Promise<ApplyReport & { plan: OverlayPlan }> {
    // The revision is read before the datastore is: a change made meanwhile shows as a new revision next time.
    const revision = await this.datastore.revision();
    const plan = await this.plan();
    const report = await applyOverlay(plan, this.conf.natBackend);
    fs.writeFileSync(this.markerFile(), this.fingerprint(revision));
    return { ...report, plan };
  }

  /**
   * On the pod-start path: applies the plan only when the datastore or the tunnel devices changed since
   * it was last applied. When nothing changed this costs a stat of the cluster file and a few small reads
   * of /run and /sys.
   */
  async ensure(): Promise<void> {
    const current = async () => readFile(this.markerFile()) === this.fingerprint(await this.datastore.revision());
    if (await current()) return;
    await withDirLock(this.stateDirReady(), async () => {
      if (await current()) return; // another ADD did it meanwhile
      const report = await this.apply();
      log.info(`overlay brought up to date (${report.changes.length} change(s))`);
    });
  }

  private markerFile(): string {
    return path.join(this.conf.stateDir, 'applied');
  }

  private stateDirReady(): string {
    fs.mkdirSync(this.conf.stateDir, { recursive: true });
    return this.conf.stateDir;
  }

  /** What the applied state depends on: the datastore revision, this config, and the tunnel devices' identity. */
  private fingerprint(revision: string): string {
    const dev = (n: string) => readFile(`/sys/class/net/${n}/ifindex`) ?? '-';
    const c = this.conf;
    // tabby's version too: an upgrade that plans differently applies itself at the next ADD
    return [TABBY_VERSION, revision, c.nodeName, c.ipAutodetectionMethod ?? '', c.natBackend, dev(VXLAN_DEVICE), dev(IPIP_DEVICE), hostMtu()].join('|');
  }
}

function readFile(f: string): string | undefined {
  try {
    return fs.readFileSync(f, 'utf8').trim();
  } catch {
    return undefined;
  }
}

