// One node's view of the cluster: its datastore, its identity, and keeping its overlay applied.
// Both programs use it: the plugin on the pod-start path (ensureOverlay, nodeIpam), the agent and the
// command line for whole applies (apply, reconcile, plan).
import * as fs from 'node:fs';
import * as os from 'node:os';
import { CniError, Code } from '../cni/errors';
import { ClusterConf } from '../../conf/netconf';
import { ClusterResources } from '../../conf/calico';
import { Addr, Cidr, formatCidr, formatIP } from '../net/addr';
import { withDirLock } from '../../ipam/lock';
import { ClusterIpam } from '../../ipam/config';
import { Datastore } from '../datastore/datastore';
import { ClusterFile } from '../datastore/cluster-file';
import { EtcdDatastore } from '../datastore/etcd-datastore';
import { claimBlock, claimPlan } from '../datastore/etcd-blocks';
import { IpBatch } from '../dataplane/iproute';
import { routeReplace } from '../dataplane/kernel';
import { hostMtu, ipipSupported } from '../dataplane/links';
import { applyOverlay, ApplyOptions, ApplyReport } from '../dataplane/overlay';
import { readOverlayState } from '../dataplane/kernel';
import { DriftItem, overlayDrift } from '../dataplane/drift';
import { natDrift } from '../dataplane/nat-drift';
import { IPIP_DEVICE, VXLAN_DEVICE, VXLAN_V6_DEVICE } from '../dataplane/devices';
import { blocksOf, HostAddress, ipipTunnelAddr, poolOf, vxlanTunnelAddr, vxlanV6TunnelAddr } from './identity';
import { LocalNode, OverlayPlan, PeerPlans, planOverlay } from './plan';
import { HostReading, HostView } from './host-view';
import { ensureNodeRecord } from './registration';
import { RefusedRead, refuseRead, refuseSelfAsPeer } from './guard';
import {
  agentRunning,
  clearRefusal,
  ipamOf,
  NodeSnapshot,
  readRefusal,
  readSnapshot,
  recordRefusal,
  snapshotFile,
  waitForSnapshot,
  writeSnapshot,
} from './snapshot';
import { podPoolsOf } from './pod-choice';
import { log } from '../log';
import { TABBY_VERSION } from '../about';

/** How long a pod start waits for a running agent to catch up with a change before applying it itself. */
const AGENT_CATCH_UP_MS = 5_000;

export interface Applied extends ApplyReport {
  plan: OverlayPlan;
  snapshot: NodeSnapshot;
}

export interface ApplyHow {
  writtenBy: NodeSnapshot['writtenBy'];
  /** The revision the caller read before it loaded the resources (else it is read here, first). */
  revision?: string;
  /**
   * Read the host again (its addresses and MTU). Without it, a long-running process re-plans with what
   * it read last: the agent reads the host on every full apply, and is woken at once when an address
   * changes.
   */
  freshHost?: boolean;
  /** For a pod start: a node with no block (and none to claim) is refused before anything changes. */
  forPod?: boolean;
}

/** Claims one block for a pod (under the state directory's lock), or throws why it cannot. */
export type PodClaim = (etcd: EtcdDatastore, now: NodeSnapshot) => Promise<{ cidr: Cidr; pool: string }>;

/** How a node keeps its overlay: by its agent, or by each pod start (no agent). */
export type NodeMode = 'agent' | 'agent-catching-up' | 'no-agent';

export class ClusterContext {
  private cached?: Promise<ClusterResources>;
  /** Each peer's plan, kept between applies of a long-running process. */
  private readonly peerPlans = new PeerPlans();
  /** What the host was last read to hold (a long-running process re-plans with it). */
  private host?: HostReading;
  private readonly hostView: HostView;
  /** Blocks kept out of the snapshot while they are being released (the agent's BlockReleaser). */
  readonly withheld = new Set<string>();

  constructor(
    readonly conf: ClusterConf,
    readonly datastore: Datastore = datastoreFor(conf),
  ) {
    this.hostView = new HostView(conf);
  }

  /** The etcd datastore, when the cluster is in etcd. */
  get etcd(): EtcdDatastore | undefined {
    return this.datastore instanceof EtcdDatastore ? this.datastore : undefined;
  }

  /**
   * The datastore's resources. A read that fails validation is refused (RefusedRead): the caller keeps
   * what it applied last. A datastore that cannot be reached at all (etcd down) is a plain error.
   */
  resources(): Promise<ClusterResources> {
    return (this.cached ??= this.datastore.load().catch((e) => {
      this.cached = undefined;
      throw this.refusal(e);
    }));
  }

  /** The datastore's revision; a cluster file that is gone is a refused read. */
  private async revision(): Promise<string> {
    try {
      return await this.datastore.revision();
    } catch (e) {
      throw this.refusal(e);
    }
  }

  /** A validation error of the datastore's as a refused read; anything else as it is. */
  private refusal(e: unknown): unknown {
    if (e instanceof RefusedRead || !(e instanceof CniError) || e.code !== Code.InvalidNetworkConfig) return e;
    const msg = e.message.includes(this.datastore.description.replace(/^file /, ''))
      ? e.message
      : `${this.datastore.description}: ${e.message}`;
    return new RefusedRead(Code.TryAgainLater, `${msg}: refused (the dataplane stays as last applied)`);
  }

  /**
   * Refuses what must not be applied: no pool, this node missing, a peer at this host's own address.
   * Throws a RefusedRead; nothing has touched the kernel yet.
   */
  private guard(r: ClusterResources, host: HostAddress[] | undefined, writtenBy: NodeSnapshot['writtenBy']): void {
    const refused =
      refuseRead(r, {
        nodeName: this.conf.nodeName,
        datastore: this.datastore.description,
        // on etcd a node with no agent registers itself when its first pod claims a block
        requireRecord: !(this.etcd && writtenBy === 'plugin'),
        host,
      }) ?? (host ? refuseSelfAsPeer(r, this.conf.nodeName, host) : undefined);
    if (refused) throw refused;
  }

  /** Forgets the loaded resources: the next `resources()` loads the datastore again. */
  forget(): void {
    this.cached = undefined;
  }

  /**
   * What IPAM hands out on this node: its blocks in enabled pools that allow workloads, less its own
   * tunnel addresses (given in its Node record, or derived).
   */
  blocksFrom(r: ClusterResources): ClusterIpam {
    const blocks = blocksOf(r, this.conf.nodeName)
      .filter((b) => {
        const p = poolOf(r, b.cidr);
        return p && !p.disabled && p.allowedUses.includes('Workload');
      })
      .map((b) => b.cidr)
      .filter((c) => !this.withheld.has(formatCidr(c)));
    const self = r.nodes.find((n) => n.name === this.conf.nodeName) ?? { name: this.conf.nodeName };
    const reserved = [vxlanTunnelAddr(r, self), ipipTunnelAddr(r, self), vxlanV6TunnelAddr(r, self)].filter(
      (a): a is Addr => a !== undefined,
    );
    return { blocks, reserved };
  }

  /**
   * This node's IPAM ranges without applying anything (tabby-ipam as a delegate, GC, STATUS): from the
   * snapshot when it is current, else from the datastore, checked as an apply would check it. A refused
   * read throws (STATUS reports it), or with `lastGood` gives the ranges this node applied last.
   */
  async nodeIpam(opts: { lastGood?: boolean } = {}): Promise<ClusterIpam> {
    try {
      const snap = await this.currentSnapshot();
      if (snap) return ipamOf(snap);
      this.refusedAlready(this.fingerprint(await this.revision()));
      const r = await this.resources();
      this.guard(r, undefined, 'plugin');
      return this.blocksFrom(r);
    } catch (e) {
      const last = opts.lastGood ? this.lastGood(e) : undefined;
      if (!last) throw e;
      return ipamOf(last);
    }
  }

  /** Throws the refusal recorded for this fingerprint (by the agent, or an earlier apply), if there is one. */
  private refusedAlready(fingerprint: string): void {
    const refused = readRefusal(this.conf.stateDir);
    if (refused?.fingerprint === fingerprint) throw new RefusedRead(refused.code, refused.reason);
  }

  /** After a refused read: the snapshot this node applied last, when it was applied with this config. */
  private lastGood(e: unknown): NodeSnapshot | undefined {
    if (!(e instanceof RefusedRead)) return undefined;
    const last = readSnapshot(this.conf.stateDir);
    return last?.identity === this.identity() ? last : undefined;
  }

  /**
   * This node's underlay addresses and interfaces: from its Node record, or autodetected. With `fresh`,
   * the host is read again (and its MTU); else what was read last is used.
   */
  async localNode(r?: ClusterResources, fresh = true): Promise<LocalNode> {
    r ??= await this.resources();
    if (fresh || !this.host) this.host = await this.hostView.read();
    return this.hostView.localNode(r, this.host, fresh);
  }

  /** This host's address by the autodetection method, whatever its Node record says (registration). */
  detectAddress(): Promise<HostAddress> {
    return this.hostView.detect(4);
  }

  /** The same for IPv6 (ipAutodetectionMethodV6); undefined when the host has no such address. */
  detectAddress6(): Promise<HostAddress | undefined> {
    return this.hostView.detect(6).catch(() => undefined);
  }

  /** The plan for this node, refused (RefusedRead) as an apply would refuse it. */
  async plan(): Promise<OverlayPlan> {
    const r = await this.resources();
    this.guard(r, (this.host = await this.hostView.read()).addrs, 'agent');
    const plan = planOverlay(r, await this.hostView.localNode(r, this.host, true));
    if (plan.ipip && !ipipSupported()) {
      plan.warnings.push(
        `a pool uses IPIP, and this kernel (${os.release()}) has no ipip support: ADD and reconcile will fail with code 104 until it has`,
      );
    }
    return plan;
  }

  /** The plan, and each of its items as the kernel holds it (and whatever of tabby's it holds besides). */
  async drift(): Promise<{ plan: OverlayPlan; items: DriftItem[] }> {
    const plan = await this.plan();
    const [have, nat] = await Promise.all([readOverlayState(), natDrift(plan.nat, this.conf.natBackend)]);
    return { plan, items: [...overlayDrift(have, plan), ...nat] };
  }

  /**
   * Takes this node's overlay down on purpose (`tabby teardown`): tunnel devices, tabby's routes, FDB
   * entries, neighbours and NAT. Pods keep their veths and host routes. The snapshot goes too, so no pod
   * starts on what was applied before; the next apply of a sound datastore brings the overlay back.
   */
  async teardown(): Promise<ApplyReport> {
    return withDirLock(this.stateDirReady(), async () => {
      const empty = { routes: [], fdb: [], neighbours: [], nat: { allPools: [], natPools: [], tunnelDevices: [] } };
      const report = await applyOverlay(empty, this.conf.natBackend);
      fs.rmSync(snapshotFile(this.conf.stateDir), { force: true });
      clearRefusal(this.conf.stateDir);
      return report;
    });
  }

  /** Applies the plan now, whatever was applied before, reading the kernel back (`tabby reconcile`). */
  async reconcile(): Promise<Applied> {
    return withDirLock(this.stateDirReady(), () => this.applyUnlocked({}, { writtenBy: 'plugin' }));
  }

  /**
   * Plans from the datastore and applies under the state directory's lock, then records the snapshot.
   * With `opts.held` the diff is against what the caller applied last (incremental); without, against
   * the kernel (full). The agent's entry point.
   */
  async apply(opts: ApplyOptions, how: ApplyHow): Promise<Applied> {
    return withDirLock(this.stateDirReady(), () => this.applyUnlocked(opts, how));
  }

  private async applyUnlocked(opts: ApplyOptions, how: ApplyHow): Promise<Applied> {
    // The revision is read before the datastore is: a change made meanwhile shows as a new revision next time.
    const revision = how.revision ?? (await this.revision());
    const fresh = how.freshHost ?? true;
    let r: ClusterResources;
    let plan: OverlayPlan;
    let ipam: ClusterIpam;
    try {
      // Plan completely and check before the kernel is touched: a refused plan changes nothing.
      r = await this.resources();
      if (fresh || !this.host) this.host = await this.hostView.read();
      this.guard(r, this.host.addrs, how.writtenBy);
      ipam = this.blocksFrom(r);
      // refused before the overlay is applied for a pod that could not get an address anyway
      if (how.forPod && !servesPods(ipam.blocks, this.etcd)) throw this.noBlock();
      plan = planOverlay(r, await this.hostView.localNode(r, this.host, fresh), this.peerPlans);
      if (this.conf.checksumOffloadBroken) plan.txChecksumOffloadOff = true;
    } catch (e) {
      if (e instanceof RefusedRead) this.noteRefusal(revision, e);
      throw e;
    }
    clearRefusal(this.conf.stateDir);
    const report = await applyOverlay(plan, this.conf.natBackend, opts);
    const self = r.nodes.find((n) => n.name === this.conf.nodeName);
    const snapshot: NodeSnapshot = {
      fingerprint: this.fingerprint(revision),
      identity: this.identity(),
      revision,
      node: this.conf.nodeName,
      blocks: ipam.blocks.map(formatCidr),
      reserved: ipam.reserved.map(formatIP),
      mtu: plan.mtu,
      claim: this.etcd
        ? claimPlan(r.pools, { name: this.conf.nodeName, labels: self?.labels ?? {} }, r.ipamConfig)
        : undefined,
      pools: podPoolsOf(r, this.conf.nodeName),
      writtenBy: how.writtenBy,
      at: new Date().toISOString(),
    };
    writeSnapshot(this.conf.stateDir, snapshot);
    return { ...report, plan, snapshot };
  }

  /**
   * On the pod-start path: the node's snapshot, once the overlay reflects the datastore. When nothing
   * changed this costs a stat of the cluster file and a few small reads of /run and /sys, whatever the
   * cluster's size. After a change, a running agent is given a moment to catch up; a node without one
   * applies the change here (and so pays for planning the whole cluster).
   */
  async ensureOverlay(): Promise<NodeSnapshot> {
    let snap: NodeSnapshot;
    try {
      snap = await this.ensureOverlayOrRefuse();
    } catch (e) {
      // A refused read: pods keep starting on what this node applied last, if it applied anything.
      const last = this.lastGood(e);
      if (!last) throw e;
      log.warn(`${(e as Error).message}; this pod starts with the last applied state (of ${last.at})`);
      snap = last;
    }
    if (!servesPods(snap.blocks, snap.claim)) throw this.noBlock();
    return snap;
  }

  /** Records a refused read beside the snapshot: pod starts and STATUS see it without reading again. */
  noteRefusal(revision: string, e: RefusedRead): void {
    recordRefusal(this.stateDirReady(), { fingerprint: this.fingerprint(revision), code: e.code, reason: e.message });
  }

  /** The error for a pod start on a node with no block to hand out addresses from. */
  private noBlock(): CniError {
    return new CniError(
      Code.InvalidNetworkConfig,
      `node ${this.conf.nodeName} holds no block in ${this.datastore.description}, so it has no address to ` +
        `give a pod: add a BlockAffinity for it (spec.node: ${this.conf.nodeName}) in an enabled pool`,
    );
  }

  private async ensureOverlayOrRefuse(): Promise<NodeSnapshot> {
    const snap = await this.currentSnapshot();
    if (snap) return snap;
    // Without a usable snapshot: a remote datastore is asked once here, and only here.
    const fingerprint = this.fingerprint(await this.revision());
    const current = (): NodeSnapshot | undefined => {
      const s = readSnapshot(this.conf.stateDir);
      return s?.fingerprint === fingerprint ? s : undefined;
    };
    // The agent refused this very read already: no need to wait for it, or to read it again.
    this.refusedAlready(fingerprint);
    if (await agentRunning(this.conf.stateDir)) {
      const caughtUp = await waitForSnapshot(this.conf.stateDir, fingerprint, AGENT_CATCH_UP_MS);
      if (caughtUp) return caughtUp;
      log.warn(`the agent did not apply the change within ${AGENT_CATCH_UP_MS} ms: applying it here`);
    }
    return withDirLock(this.stateDirReady(), async () => {
      const meanwhile = current(); // another ADD, or the agent, did it meanwhile
      if (meanwhile) return meanwhile;
      const applied = await this.applyUnlocked({}, { writtenBy: 'plugin', forPod: true });
      log.info(`overlay brought up to date (${applied.changes.length} change(s))`);
      return applied.snapshot;
    });
  }

  /**
   * The node's snapshot when it reflects the datastore. For the cluster file that is a stat away; for
   * etcd it would be a round trip, so a snapshot written for this config and these devices is trusted:
   * the agent keeps it current from its watch, and only this node changes its own blocks.
   */
  private async currentSnapshot(): Promise<NodeSnapshot | undefined> {
    const s = readSnapshot(this.conf.stateDir);
    if (!s) return undefined;
    if (this.datastore.remote) return s.identity === this.identity() ? s : undefined;
    return s.fingerprint === this.fingerprint(await this.revision()) ? s : undefined;
  }

  /**
   * On etcd, when the node's blocks are full (or it has none): claims another block, routes it to a
   * blackhole here (the node owns it now), and records it in the snapshot. Serialised with applies by
   * the state directory's lock; a concurrent pod start that already claimed one is taken as is.
   * `claim` picks the block instead of the node's claim plan (a pod's pool or address: pod-pools.ts).
   */
  async claimBlockForPod(seen: NodeSnapshot, claim?: PodClaim): Promise<NodeSnapshot> {
    const etcd = this.etcd;
    if (!etcd || !seen.claim) throw new CniError(Code.NoFreeAddress, "no free address in this node's blocks");
    return withDirLock(this.stateDirReady(), async () => {
      const now = readSnapshot(this.conf.stateDir) ?? seen;
      if (now.blocks.length !== seen.blocks.length) return now; // another pod start claimed meanwhile
      const { cidr, pool } = claim
        ? await claim(etcd, now)
        : await claimBlock(etcd, this.conf.nodeName, now.claim ?? seen.claim!);
      await new IpBatch().add(...routeReplace({ dst: formatCidr(cidr), blackhole: true })).run();
      if (!(await agentRunning(this.conf.stateDir))) await ensureNodeRecord(this, etcd);
      const next = { ...now, blocks: [...now.blocks, formatCidr(cidr)], at: new Date().toISOString() };
      writeSnapshot(this.conf.stateDir, next);
      log.info(`claimed block ${formatCidr(cidr)} of pool ${pool} for node ${this.conf.nodeName}`);
      return next;
    });
  }

  /** Writes the snapshot again without the withheld blocks. */
  async rewriteSnapshot(): Promise<void> {
    await withDirLock(this.stateDirReady(), () => {
      const s = readSnapshot(this.conf.stateDir);
      if (s) writeSnapshot(this.conf.stateDir, { ...s, blocks: s.blocks.filter((b) => !this.withheld.has(b)) });
    });
  }

  /** Which mode this node is in, for `tabby status`. */
  async mode(): Promise<NodeMode> {
    if (!(await agentRunning(this.conf.stateDir))) return 'no-agent';
    const s = readSnapshot(this.conf.stateDir);
    const current = s?.fingerprint === this.fingerprint(await this.datastore.revision());
    return current ? 'agent' : 'agent-catching-up';
  }

  /** The fingerprint less the datastore revision. */
  identity(): string {
    return this.fingerprint('').replace(/\|$/, '');
  }

  stateDirReady(): string {
    fs.mkdirSync(this.conf.stateDir, { recursive: true });
    return this.conf.stateDir;
  }

  /**
   * What the applied state depends on: the datastore revision, this config, the tunnel devices'
   * identity and the host MTU. tabby's version too: an upgrade that plans differently applies itself.
   */
  fingerprint(revision: string): string {
    const dev = (n: string) => readFile(`/sys/class/net/${n}/ifindex`) ?? '-';
    const c = this.conf;
    return [
      TABBY_VERSION,
      c.nodeName,
      this.datastore.description,
      c.ipAutodetectionMethod ?? '',
      c.natBackend,
      c.checksumOffloadBroken ? 'csum-off' : '',
      dev(VXLAN_DEVICE),
      ...(c.ipAutodetectionMethodV6 ? [c.ipAutodetectionMethodV6] : []),
      dev(VXLAN_V6_DEVICE),
      dev(IPIP_DEVICE),
      hostMtu(),
      revision,
    ].join('|');
  }
}

/** Whether a node can give a pod an address: it holds a block, or it can claim one (etcd). */
const servesPods = (blocks: unknown[], canClaim: unknown): boolean => blocks.length > 0 || !!canClaim;

/** The datastore a config names: its etcd, or its cluster file. */
export function datastoreFor(conf: ClusterConf): Datastore {
  return conf.etcd ? new EtcdDatastore(conf.etcd) : new ClusterFile(conf.file!, conf.stateDir);
}

function readFile(f: string): string | undefined {
  try {
    return fs.readFileSync(f, 'utf8').trim();
  } catch {
    return undefined;
  }
}
