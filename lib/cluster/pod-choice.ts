// Which of this node's blocks a pod's addresses come from (pure): the default pools, the pools its
// annotations name, or the blocks of the addresses it asks for; and what is missing (a block to claim)
// or wrong (an error that names the pool, the block or the address). The precedence is in
// ipam/pod-request.ts; Calico's rules are in calico-datastore.md §3.1 and §6.2.
import type { ClusterResources, IPPool } from '../../conf/calico';
import { CniError, Code } from '../cni/errors';
import { Addr, Cidr, contains, formatCidr, formatIP, networkOf, parseCidr } from '../net/addr';
import { rangeSetsFromBlocks } from '../../ipam/config';
import { isGateway, rangeSetContains } from '../../ipam/range';
import { Family, PodRequest } from '../../ipam/pod-request';
import { ClaimingNode, poolRefusal } from '../datastore/etcd-blocks';

/** What a pod start knows of a pool (kept in the node's snapshot). */
export interface PodPool {
  name: string;
  cidr: string;
  blockSize: number;
  disabled: boolean;
  /** allowedUses includes Workload. */
  workload: boolean;
  /** Pods that name no pool draw from it on this node: enabled, for workloads, Automatic, nodeSelector matching. */
  selects: boolean;
}

export function podPools(pools: readonly IPPool[], node: ClaimingNode): PodPool[] {
  return [...pools]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((p) => ({
      name: p.name,
      cidr: formatCidr(p.cidr),
      blockSize: p.blockSize,
      disabled: p.disabled,
      workload: p.allowedUses.includes('Workload'),
      selects: poolRefusal(p, node) === undefined,
    }));
}

/** The pools of the resources as a pod start on `node` sees them. */
export const podPoolsOf = (r: ClusterResources, node: string): PodPool[] =>
  podPools(r.pools, { name: node, labels: r.nodes.find((n) => n.name === node)?.labels ?? {} });

/** What the choice reads of the node. */
export interface NodeView {
  node: string;
  /** This node's blocks (in enabled pools for workloads). */
  blocks: Cidr[];
  /** Addresses IPAM never hands out (tunnel addresses). */
  reserved: Addr[];
  pools: PodPool[];
}

/** A requested address in a block this node does not hold. */
export interface Unheld {
  address: Addr;
  block: Cidr;
  pool: PodPool;
}

export interface Choice {
  /** The blocks IPAM allocates from (one rangeset per family). */
  blocks: Cidr[];
  /** Requested addresses whose blocks this node does not hold (yet). */
  unheld: Unheld[];
  /** Families whose named pools have no block on this node (yet). */
  empty: { family: Family; pools: PodPool[] }[];
  /** The pools named for each family: where a full family gets its next block. Absent: the default pools. */
  named: Partial<Record<Family, PodPool[]>>;
}

/** An error that a fresher list of pools might undo (an unknown pool name, an address in no pool). */
export class UnknownPoolError extends CniError {}

const cidrOf = (p: PodPool): Cidr => parseCidr(p.cidr)!;
const familyOf = (p: PodPool): Family => cidrOf(p).ip.family;
const describe = (p: PodPool): string => `IPPool ${p.name} (${p.cidr})`;

/** Why a pool hands out no addresses, named or holding a requested address; undefined when it does. */
function refusal(p: PodPool): string | undefined {
  if (p.disabled) return `${describe(p)} is disabled`;
  if (!p.workload) return `${describe(p)} is not for workloads (allowedUses)`;
  return undefined;
}

/** A pool by name, or by its exact CIDR (Calico's ResolvePools). */
function resolvePool(pools: PodPool[], entry: string, family: Family, field: string): PodPool {
  const asCidr = parseCidr(entry);
  const p = asCidr ? pools.find((x) => sameCidr(x, asCidr)) : pools.find((x) => x.name === entry);
  if (!p) {
    const known = pools.map((x) => `${x.name} (${x.cidr})`).join(', ') || 'none';
    throw new UnknownPoolError(
      Code.InvalidNetworkConfig,
      `${field}: no IPPool ${asCidr ? 'has the CIDR' : 'is named'} "${entry}" (pools: ${known})`,
    );
  }
  if (familyOf(p) !== family)
    throw new CniError(Code.InvalidNetworkConfig, `${field}: ${describe(p)} is not an IPv${family} pool`);
  const no = refusal(p);
  if (no) throw new CniError(Code.AddressUnavailable, `${field}: ${no}: no addresses from it`);
  return p;
}

const sameCidr = (p: PodPool, c: Cidr): boolean => {
  const pc = cidrOf(p);
  return pc.prefix === c.prefix && pc.ip.family === c.ip.family && pc.ip.value === networkOf(c).value;
};

/** The block of `pool` that holds `a`. */
export function blockOf(pool: PodPool, a: Addr): Cidr {
  return { ip: networkOf({ ip: a, prefix: pool.blockSize }), prefix: pool.blockSize };
}

const sameBlock = (a: Cidr, b: Cidr): boolean =>
  a.prefix === b.prefix && a.ip.family === b.ip.family && networkOf(a).value === networkOf(b).value;

/** The pool and block of a requested address, or the error that says why it cannot be had. */
function placeAddress(view: NodeView, a: Addr): { pool: PodPool; block: Cidr } {
  const ip = formatIP(a);
  const pool = view.pools.find((p) => contains(cidrOf(p), a));
  if (!pool) {
    const known = view.pools.map((x) => `${x.name} (${x.cidr})`).join(', ') || 'none';
    throw new UnknownPoolError(
      Code.AddressUnavailable,
      `requested IP address ${ip} is outside every IPPool (pools: ${known})`,
    );
  }
  const no = refusal(pool);
  if (no) throw new CniError(Code.AddressUnavailable, `requested IP address ${ip}: ${no}: no addresses from it`);
  const block = blockOf(pool, a);
  const [set] = rangeSetsFromBlocks([block]);
  if (!rangeSetContains(set, a) || isGateway(set, a)) {
    const what = a.value === block.ip.value ? 'network address' : isGateway(set, a) ? 'gateway' : 'broadcast address';
    throw new CniError(
      Code.AddressUnavailable,
      `requested IP address ${ip} is the ${what} of block ${formatCidr(block)}, which no pod gets`,
    );
  }
  if (view.reserved.some((r) => r.family === a.family && r.value === a.value))
    throw new CniError(Code.AddressUnavailable, `requested IP address ${ip} is this node's tunnel address`);
  return { pool, block };
}

/** Chooses the blocks for one pod's request; throws a CNI error for a request that cannot be met. */
export function choosePodBlocks(view: NodeView, req: PodRequest): Choice {
  const poolOfBlock = (b: Cidr): PodPool | undefined => view.pools.find((p) => contains(cidrOf(p), b.ip));
  const byDefault = view.blocks.filter((b) => poolOfBlock(b)?.selects);
  const choice: Choice = { blocks: [], unheld: [], empty: [], named: {} };
  const add = (b: Cidr): void => {
    if (!choice.blocks.some((x) => sameBlock(x, b))) choice.blocks.push(b);
  };
  const asked = new Set<Family>();
  for (const a of req.addresses) {
    const { pool, block } = placeAddress(view, a);
    asked.add(a.family);
    if (view.blocks.some((b) => sameBlock(b, block))) add(block);
    else choice.unheld.push({ address: a, block, pool });
  }
  for (const fam of [4, 6] as const) {
    if (req.exact) break;
    if (req.pools[fam] && !asked.has(fam)) {
      const named = req.pools[fam]!.map((e) => resolvePool(view.pools, e, fam, req.poolField[fam]!));
      choice.named[fam] = named;
      const held = view.blocks.filter((b) => {
        const p = poolOfBlock(b);
        return p !== undefined && named.includes(p);
      });
      if (held.length === 0) choice.empty.push({ family: fam, pools: named });
      held.forEach(add);
    } else {
      byDefault.filter((b) => b.ip.family === fam).forEach(add);
    }
  }
  return choice;
}
