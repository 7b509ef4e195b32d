// Giving back empty blocks (etcd): a block of this node with no address in use for `graceSeconds` is
// released, so that another node may claim it; the node keeps at least one block in each pool it uses.
// A pod start may have read the snapshot (with the block in it) just before: so the block is first
// withheld from the snapshot, and only released once it is still empty a little later, checked under
// the IPAM store's lock that every allocation takes.
import { Cidr, contains, formatCidr, parseIP } from '../net/addr';
import { log } from '../log';
import type { ClusterResources } from '../../conf/calico';
import type { IpamStore } from '../../ipam/store';
import type { ClusterContext } from '../cluster/context';
import { ipipTunnelAddr, poolOf, vxlanTunnelAddr, vxlanV6TunnelAddr } from '../cluster/identity';
import type { EtcdDatastore } from '../datastore/etcd-datastore';
import { releaseBlock } from '../datastore/etcd-blocks';

/** How long a withheld block must stay empty before it goes: a pod start reads and allocates in far less. */
const SETTLE_MS = 3_000;

export class BlockReleaser {
  private readonly emptySince = new Map<string, number>();
  private busy = false;

  constructor(
    private readonly ctx: ClusterContext,
    private readonly etcd: EtcdDatastore,
    private readonly store: IpamStore,
    private readonly graceSeconds: number,
  ) {}

  /** Looks at this node's blocks; releases those empty for longer than the grace. Returns what it released. */
  async check(r: ClusterResources, now = Date.now()): Promise<string[]> {
    if (this.busy) return [];
    this.busy = true;
    try {
      return await this.releaseEmpty(r, now);
    } finally {
      this.busy = false;
    }
  }

  private async releaseEmpty(r: ClusterResources, now: number): Promise<string[]> {
    const name = this.ctx.conf.nodeName;
    const mine = r.affinities.filter((a) => a.node === name);
    const used = this.inUse(mine.map((a) => a.cidr));
    // The blocks holding this node's tunnel addresses stay: the tunnel device and its peers use them.
    const self = r.nodes.find((n) => n.name === name) ?? { name };
    const tunnels = [vxlanTunnelAddr(r, self), ipipTunnelAddr(r, self), vxlanV6TunnelAddr(r, self)].filter(
      (a) => a !== undefined,
    );
    const kept = new Set(mine.filter((a) => !this.ctx.withheld.has(formatCidr(a.cidr))));
    const released: string[] = [];
    for (const a of mine) {
      const key = formatCidr(a.cidr);
      if (used.get(key) || tunnels.some((t) => t.family === a.cidr.ip.family && contains(a.cidr, t))) {
        this.emptySince.delete(key);
        continue;
      }
      const since = this.emptySince.get(key) ?? now;
      this.emptySince.set(key, since);
      if (now - since < this.graceSeconds * 1000) continue;
      // at least one block of each pool stays with the node, counting those released in this pass
      const pool = poolOf(r, a.cidr);
      const others = [...kept].filter((b) => b !== a && poolOf(r, b.cidr) === pool);
      if (!pool || others.length === 0) continue;
      if (await this.release(a.cidr)) {
        released.push(key);
        kept.delete(a);
      }
    }
    for (const key of this.emptySince.keys())
      if (!mine.some((a) => formatCidr(a.cidr) === key)) this.emptySince.delete(key);
    return released;
  }

  /** Withhold, let pod starts in flight finish, check again under the IPAM lock, then release in etcd. */
  private async release(cidr: Cidr): Promise<boolean> {
    const key = formatCidr(cidr);
    this.ctx.withheld.add(key);
    try {
      await this.ctx.rewriteSnapshot();
      await new Promise((res) => setTimeout(res, SETTLE_MS));
      return await this.store.withLock(async () => {
        if (this.inUse([cidr]).get(key)) {
          log.info(`block ${key}: a pod took an address meanwhile; kept`);
          return false;
        }
        const ok = await releaseBlock(this.etcd, cidr, this.ctx.conf.nodeName);
        if (ok) log.info(`block ${key}: empty for the grace period, released for other nodes`);
        return ok;
      });
    } finally {
      this.ctx.withheld.delete(key);
      this.emptySince.delete(key);
    }
  }

  /** Addresses reserved in each block, from this node's IPAM store. */
  private inUse(blocks: Cidr[]): Map<string, number> {
    const counts = new Map(blocks.map((b) => [formatCidr(b), 0]));
    let ips: string[] = [];
    try {
      ips = this.store.list().map((x) => x.ip);
    } catch {
      /* no store yet: nothing in use */
    }
    for (const text of ips) {
      const ip = parseIP(text);
      const b = ip && blocks.find((c) => c.ip.family === ip.family && contains(c, ip));
      if (b) counts.set(formatCidr(b), counts.get(formatCidr(b))! + 1);
    }
    return counts;
  }
}
