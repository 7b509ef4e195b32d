// IPAM ADD for a pod on a cluster node: the blocks its addresses come from (pod-choice.ts), and the
// blocks it needs first. On etcd a pod start claims them itself: a block of a pool the pod names, the
// block of an address it asks for, or (as always) another block of the default pools when the node has
// none or they are full. A cluster file cannot be written, so there a missing block is an error that
// says which BlockAffinity is missing. Nothing is reserved, claimed or routed for a request that fails
// its checks: every check runs before the first claim.
import { CniError, Code } from '../cni/errors';
import { Request } from '../cni/skel';
import { Result } from '../cni/result';
import { formatCidr, formatIP } from '../net/addr';
import { log } from '../log';
import { IN_PROCESS_IPAM } from '../../conf/netconf';
import { ipamClient, IpamClient } from '../../ipam/client';
import { inUse, NoFreeAddressError, storeFor } from '../../ipam/ipam';
import { parseIpamConf } from '../../ipam/config';
import { asksForAnything, Family, podRequest, PodRequest } from '../../ipam/pod-request';
import { claimBlock, claimBlockAt, ClaimPlan } from '../datastore/etcd-blocks';
import type { ClusterContext, PodClaim } from './context';
import { ipamOf, NodeSnapshot } from './snapshot';
import { Choice, choosePodBlocks, NodeView, PodPool, podPoolsOf, Unheld, UnknownPoolError } from './pod-choice';

/** Claims in one ADD (each one a block; a concurrent pod start's claim costs a try too). */
const MAX_TRIES = 6;

export interface PodAllocation {
  ipam: IpamClient;
  addresses: Result;
  node: NodeSnapshot;
}

/** What the choice reads: the snapshot, with the pools of the datastore when the snapshot has none. */
async function viewOf(cluster: ClusterContext, node: NodeSnapshot, fresh: PodPool[] | undefined): Promise<NodeView> {
  const { blocks, reserved } = ipamOf(node);
  const pools = fresh ?? node.pools ?? podPoolsOf(await cluster.resources(), cluster.conf.nodeName);
  return { node: node.node, blocks, reserved, pools };
}

/** The node's claim plan for one family (a full IPv6 rangeset is helped by an IPv6 block only). */
function familyPlan(plan: ClaimPlan, family: Family, node: string): ClaimPlan {
  const pools = plan.pools.filter((p) => p.cidr.includes(':') === (family === 6));
  return {
    ...plan,
    pools,
    refusal: plan.refusal ?? (pools.length ? undefined : `no IPv${family} IPPool gives blocks to node ${node}`),
  };
}

/** A family the node's default pools have and its blocks have not. */
function lackingFamily(node: NodeSnapshot): Family | undefined {
  const fam = (cidr: string): Family => (cidr.includes(':') ? 6 : 4);
  return ([4, 6] as const).find(
    (f) => node.claim!.pools.some((p) => fam(p.cidr) === f) && !node.blocks.some((b) => fam(b) === f),
  );
}

/** Claims a block of the pools a pod named, in the order it named them. */
function poolClaim(node: string, pools: PodPool[]): PodClaim {
  return (etcd, now) =>
    claimBlock(etcd, node, {
      pools: pools.map((p) => ({ name: p.name, cidr: p.cidr, blockSize: p.blockSize })),
      maxBlocksPerHost: now.claim!.maxBlocksPerHost,
      autoAllocate: now.claim!.autoAllocate,
    });
}

/** The start of every message about a requested address in a block this node does not hold. */
const unheldText = (u: Unheld): string =>
  `requested IP address ${formatIP(u.address)} is in block ${formatCidr(u.block)} of IPPool ${u.pool.name}`;

/** Claims the block of a requested address, or says who holds it. */
function addressClaim(node: string, u: Unheld): PodClaim {
  const what = unheldText(u);
  return async (etcd, now) => {
    if (!now.claim!.autoAllocate)
      throw new CniError(
        Code.NoFreeAddress,
        `${what}, which node ${node} would have to claim, and IPAMConfiguration autoAllocateBlocks is false`,
      );
    const { owner } = await claimBlockAt(etcd, node, u.block);
    if (owner === node) {
      // ours in etcd, not in the snapshot: the agent is giving it back (block-release.ts)
      throw new CniError(Code.TryAgainLater, `${what}, which node ${node} is giving back: try again`);
    }
    if (owner) throw new CniError(Code.AddressUnavailable, `${what}, which node ${owner} holds`);
    return { cidr: u.block, pool: u.pool.name };
  };
}

/** On a cluster file: who holds the block of a requested address, for the error. */
async function unheldError(cluster: ClusterContext, u: Unheld): Promise<CniError> {
  const r = await cluster.resources();
  const a = r.affinities.find((x) => x.cidr.prefix === u.block.prefix && formatCidr(x.cidr) === formatCidr(u.block));
  const what = unheldText(u);
  return new CniError(
    Code.AddressUnavailable,
    a
      ? `${what}, which node ${a.node} holds`
      : `${what}, which no node holds (a cluster file gives blocks by BlockAffinity: add one for node ${cluster.conf.nodeName})`,
  );
}

const emptyError = (cluster: ClusterContext, e: Choice['empty'][number]): CniError =>
  new CniError(
    Code.NoFreeAddress,
    `node ${cluster.conf.nodeName} holds no block of ${e.pools.map((p) => `IPPool ${p.name} (${p.cidr})`).join(' or ')}, ` +
      `which the pod asked for (a cluster file gives blocks by BlockAffinity)`,
  );

/** Every requested address in a block the node holds must be free before anything is claimed for another. */
function requireFree(req: Request, choice: Choice, pod: PodRequest): void {
  if (choice.unheld.length === 0) return;
  const heldAsked = pod.addresses.filter((a) => !choice.unheld.some((u) => u.address === a));
  if (heldAsked.length === 0) return;
  const conf = parseIpamConf(req.config, req.env, { blocks: choice.blocks, reserved: [], poolsChosen: true });
  const store = storeFor(conf);
  for (const a of heldAsked) {
    if (store.holder(formatIP(a))) throw new CniError(Code.AddressUnavailable, inUse(conf, store, a));
  }
}

/**
 * IPAM ADD of `req` from the node's blocks, claiming what is missing first (on etcd). Returns the IPAM
 * client (for a rollback), its result, and the snapshot as it is after any claim.
 */
export async function allocateForPod(
  req: Request,
  cluster: ClusterContext,
  seen: NodeSnapshot,
): Promise<PodAllocation> {
  const pod = podRequest(req.config, req.env);
  if (pod.ignored.length) log.info(`pod request: ignored ${pod.ignored.join('; ')}`);
  const canClaim = seen.claim !== undefined && cluster.etcd !== undefined;
  const name = cluster.conf.nodeName;
  let node = seen;
  let fresh: PodPool[] | undefined;
  for (let tries = 0; tries < MAX_TRIES; tries++) {
    let choice: Choice;
    try {
      // A snapshot of an older tabby has no pools: a pod that asks for nothing takes any block, as then,
      // rather than load the whole datastore on every pod start.
      choice =
        !node.pools && !fresh && !asksForAnything(pod)
          ? { blocks: ipamOf(node).blocks, unheld: [], empty: [], named: {} }
          : choosePodBlocks(await viewOf(cluster, node, fresh), pod);
    } catch (e) {
      // a pool made since the snapshot (etcd: the agent keeps it current; without one it may lag)
      if (!(e instanceof UnknownPoolError) || fresh || !cluster.datastore.remote) throw e;
      cluster.forget();
      fresh = podPoolsOf(await cluster.resources(), name);
      continue;
    }
    requireFree(req, choice, pod);
    const claim = async (how?: PodClaim): Promise<void> => {
      node = await cluster.claimBlockForPod(node, how);
    };
    if (choice.unheld.length) {
      if (!canClaim) throw await unheldError(cluster, choice.unheld[0]);
      await claim(addressClaim(name, choice.unheld[0]));
      continue;
    }
    if (choice.empty.length) {
      if (!canClaim) throw emptyError(cluster, choice.empty[0]);
      await claim(poolClaim(name, choice.empty[0].pools));
      continue;
    }
    if (choice.blocks.length === 0 && canClaim && pod.addresses.length === 0) {
      await claim(); // no block of the default pools yet: the node's claim plan
      continue;
    }
    // a dual-stack node with no block of one family yet (no agent claimed it): a pod gets one of each
    const lacking = canClaim && !asksForAnything(pod) ? lackingFamily(node) : undefined;
    if (lacking) {
      await claim((etcd, now) => claimBlock(etcd, name, familyPlan(now.claim!, lacking, name)));
      continue;
    }
    const ipam = ipamClient(req, IN_PROCESS_IPAM, {
      blocks: choice.blocks,
      reserved: ipamOf(node).reserved,
      poolsChosen: true,
    });
    try {
      return { ipam, addresses: await ipam.add(), node };
    } catch (e) {
      if (!(e instanceof NoFreeAddressError) || !canClaim) throw e;
      const named = choice.named[e.family];
      await claim(
        named ? poolClaim(name, named) : (etcd, now) => claimBlock(etcd, name, familyPlan(now.claim!, e.family, name)),
      );
    }
  }
  throw new CniError(
    Code.TryAgainLater,
    `node ${name}: no block settled for this pod after ${MAX_TRIES} claims (other pod starts claimed meanwhile)`,
  );
}
