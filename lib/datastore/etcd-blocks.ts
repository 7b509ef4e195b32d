// Claiming and releasing address blocks in etcd. A claim is one transaction that creates the block's
// record only if it is absent, so two nodes never own one block, and there is no pending state for a
// killed claimant to leave behind: a block is claimed by its record, or free. Per-address allocation
// stays in each node's host-local store; etcd knows blocks, not pods.
import { IpamConfigRecord, IPPool } from '../../conf/calico';
import { parseSelector } from '../../conf/selector';
import { CniError, Code } from '../cni/errors';
import { Cidr, contains, formatCidr, parseCidr } from '../net/addr';
import { blockCandidates, blockCount } from '../../ipam/block-order';
import { EtcdUnavailableError } from './etcd/errors';
import { cmp, op } from './etcd/txn';
import type { EtcdDatastore } from './etcd-datastore';
import { BlockRecord, ownerOf } from './etcd-keys';

/** Calico reads maxBlocksPerHost 0 as 20 (calico#9462). */
export const DEFAULT_MAX_BLOCKS_PER_HOST = 20;

export interface ClaimingNode {
  name: string;
  labels: Record<string, string>;
}

/** Why a pool does not hand blocks to a node, or undefined when it does. */
export function poolRefusal(p: IPPool, node: ClaimingNode): string | undefined {
  if (p.disabled) return 'disabled';
  if (!p.allowedUses.includes('Workload')) return 'not for workloads (allowedUses)';
  if (p.assignmentMode !== 'Automatic') return 'assignmentMode Manual';
  if (!parseSelector(p.nodeSelector).matches(node.labels)) return `nodeSelector ${p.nodeSelector} does not match`;
  return undefined;
}

/** The pools a node claims blocks from, by name (etcd lists them so: Calico's order). */
export function usablePools(pools: readonly IPPool[], node: ClaimingNode): IPPool[] {
  return pools.filter((p) => !poolRefusal(p, node)).sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** What a claim needs of a pool. */
export interface PoolRef {
  name: string;
  cidr: string;
  blockSize: number;
}

export const poolRef = (p: IPPool): PoolRef => ({ name: p.name, cidr: formatCidr(p.cidr), blockSize: p.blockSize });

/** The pools a node may claim from and its block limit: what a pod start needs to claim on its own. */
export interface ClaimPlan {
  pools: PoolRef[];
  maxBlocksPerHost: number;
  /** Why no pool gives blocks, when none does. */
  refusal?: string;
  autoAllocate: boolean;
}

export function claimPlan(pools: readonly IPPool[], node: ClaimingNode, config?: IpamConfigRecord): ClaimPlan {
  const usable = usablePools(pools, node);
  const why = pools.map((p) => `${p.name}: ${poolRefusal(p, node)}`).join('; ');
  return {
    pools: usable.map(poolRef),
    maxBlocksPerHost: config?.maxBlocksPerHost || DEFAULT_MAX_BLOCKS_PER_HOST,
    refusal: usable.length ? undefined : `no IPPool gives blocks to node ${node.name} (${why || 'there is no IPPool'})`,
    autoAllocate: config?.autoAllocateBlocks ?? true,
  };
}

/**
 * Claims one more block for `node` from the first pool of the plan with a free one. Throws a CNI error
 * naming the pools and why none gave a block; code 11 when etcd cannot be reached.
 */
export async function claimBlock(
  ds: EtcdDatastore,
  node: string,
  plan: ClaimPlan,
): Promise<{ cidr: Cidr; pool: string }> {
  if (plan.refusal) throw new CniError(Code.NoFreeAddress, plan.refusal);
  if (!plan.autoAllocate) {
    throw new CniError(
      Code.NoFreeAddress,
      `node ${node} needs a new block and IPAMConfiguration autoAllocateBlocks is false`,
    );
  }
  try {
    const records = await ds.blockRecords();
    const taken = new Set(records.map((r) => r.record.cidr));
    const pools = plan.pools.map((p) => ({ ...p, net: parseCidr(p.cidr)! }));
    const mine = records.filter((r) => ownerOf(r.record) === node && pools.some((p) => inPool(p.net, r.record.cidr)));
    if (mine.length >= plan.maxBlocksPerHost) {
      throw new CniError(
        Code.NoFreeAddress,
        `node ${node} holds ${mine.length} blocks, the limit (IPAMConfiguration maxBlocksPerHost ${plan.maxBlocksPerHost}): ` +
          `no new block from ${plan.pools.map((p) => p.name).join(', ')}`,
      );
    }
    const full: string[] = [];
    for (const pool of pools) {
      const got = await claimIn(ds, node, pool.net, pool.blockSize, taken);
      if (got) return { cidr: got, pool: pool.name };
      full.push(
        `pool ${pool.name} (${pool.cidr}) is full: all ${blockCount(pool.net, pool.blockSize)} blocks are claimed`,
      );
    }
    throw new CniError(Code.NoFreeAddress, `no free block for node ${node}: ${full.join('; ')}`);
  } catch (e) {
    if (e instanceof EtcdUnavailableError) {
      throw new CniError(
        Code.TryAgainLater,
        `node ${node} needs a new address block and etcd is unreachable: ${e.message}`,
      );
    }
    throw e;
  }
}

/**
 * Claims one given block for `node` (a pod asked for an address in it). Returns who holds it when that
 * is another node, or `node` itself when its record was there already; nothing is written then.
 */
export async function claimBlockAt(ds: EtcdDatastore, node: string, cidr: Cidr): Promise<{ owner?: string }> {
  const record: BlockRecord = {
    cidr: formatCidr(cidr),
    affinity: `host:${node}`,
    affinity_claim_time: new Date().toISOString(),
  };
  try {
    const res = await ds.etcd().createIfAbsent(ds.keys.block(cidr), JSON.stringify(record));
    if (res.succeeded) return {};
    return {
      owner: res.current ? (ownerOf(JSON.parse(res.current.value) as BlockRecord) ?? '(no owner)') : '(unknown)',
    };
  } catch (e) {
    if (e instanceof EtcdUnavailableError) {
      throw new CniError(
        Code.TryAgainLater,
        `node ${node} needs address block ${formatCidr(cidr)} and etcd is unreachable: ${e.message}`,
      );
    }
    throw e;
  }
}

/** Claims a block in one pool (the agent's first block of each pool); undefined when the pool is full. */
export function claimInPool(
  ds: EtcdDatastore,
  node: string,
  pool: IPPool,
  taken: Set<string>,
): Promise<Cidr | undefined> {
  return claimIn(ds, node, pool.cidr, pool.blockSize, taken);
}

const inPool = (pool: Cidr, cidr: string): boolean => {
  const c = parseCidr(cidr);
  return c !== undefined && contains(pool, c.ip);
};

/** Tries the pool's free blocks in the node's order; the first create that wins is the node's. */
async function claimIn(
  ds: EtcdDatastore,
  node: string,
  pool: Cidr,
  blockSize: number,
  taken: Set<string>,
): Promise<Cidr | undefined> {
  for (const cidr of blockCandidates(pool, blockSize, node)) {
    const text = formatCidr(cidr);
    if (taken.has(text)) continue;
    const record: BlockRecord = { cidr: text, affinity: `host:${node}`, affinity_claim_time: new Date().toISOString() };
    const res = await ds.etcd().createIfAbsent(ds.keys.block(cidr), JSON.stringify(record));
    if (res.succeeded) return cidr;
    taken.add(text); // another node won it a moment ago
    if (res.current && ownerOf(JSON.parse(res.current.value) as BlockRecord) === node) return cidr;
  }
  return undefined;
}

/** Releases a block this node owns, only if its record is still the one read (`modRevision`). */
export async function releaseBlock(ds: EtcdDatastore, cidr: Cidr, node: string): Promise<boolean> {
  const key = ds.keys.block(cidr);
  const kv = await ds.etcd().get(key);
  if (!kv || ownerOf(JSON.parse(kv.value) as BlockRecord) !== node) return false;
  const r = await ds
    .etcd()
    .txn({ compare: [cmp.modRevision(key, kv.modRevision)], success: [op.delete(key)], failure: [] });
  return r.succeeded;
}
