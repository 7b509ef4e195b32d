import * as fs from 'node:fs';
import { configError } from '../lib/cni/errors';
import { DNS, Route } from '../lib/cni/result';
import { CniEnv } from '../lib/cni/env';
import { Addr, Cidr, formatCidr, parseCidr, parseIP } from '../lib/net/addr';
import { canonicalize, describeRangeSet, RangeSet, rangesOverlap, rangeSetsOverlap, Range } from './range';
import { isObj, join, Obj, optArr, optObj, optStr, reqStr } from '../conf/fields';
import { podRequest } from './pod-request';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

/** The `ipam` section in host-local's terms, validated and resolved. */
export interface IpamConf {
  type: string;
  network: string;
  dataDir: string;
  rangeSets: RangeSet[];
  routes: Route[];
  dns?: DNS;
  /** Addresses asked for: the ipAddrs annotation, or CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips. */
  requested: Addr[];
  /** The ipAddrs annotation: only the rangesets holding a requested address give one. */
  exact: boolean;
  /** Addresses never handed out (this node's tunnel addresses). */
  reserved: Addr[];
  /**
   * The ranges are this node's blocks: GC judges only reservations inside them (another node's in a
   * shared data directory are not this node's to release).
   */
  ownRangesOnly: boolean;
}

/** What IPAM takes from the cluster datastore: this node's blocks and the addresses it keeps for itself. */
export interface ClusterIpam {
  blocks: Cidr[];
  reserved: Addr[];
  /** The blocks were chosen for this pod's pool annotations (lib/cluster/pod-pools.ts). */
  poolsChosen?: boolean;
}

function addrField(o: Obj, key: string, path: string): Addr | undefined {
  const s = optStr(o, key, path);
  if (s === undefined || s === '') return undefined;
  const a = parseIP(s);
  if (!a) throw configError(join(path, key), `"${s}" is not an IP address`);
  return a;
}

function parseRange(raw: unknown, path: string): Range {
  if (!isObj(raw)) throw configError(path, 'must be an object');
  const s = reqStr(raw, 'subnet', path);
  const subnet: Cidr | undefined = parseCidr(s);
  if (!subnet) throw configError(join(path, 'subnet'), `"${s}" is not a CIDR`);
  const r = canonicalize({
    subnet,
    rangeStart: addrField(raw, 'rangeStart', path),
    rangeEnd: addrField(raw, 'rangeEnd', path),
    gateway: addrField(raw, 'gateway', path),
  });
  if (typeof r === 'string') throw configError(path, r);
  return r;
}

function parseRangeSet(raw: unknown, path: string): RangeSet {
  if (!Array.isArray(raw) || raw.length === 0) throw configError(path, 'must be a non-empty list of ranges');
  const set = raw.map((r, i) => parseRange(r, join(path, i)));
  for (let i = 0; i < set.length; i++) {
    for (let j = 0; j < i; j++) {
      if (set[i].subnet.ip.family !== set[j].subnet.ip.family)
        throw configError(path, 'ranges in one rangeset must share an address family');
      if (rangesOverlap(set[i], set[j])) throw configError(join(path, i), `overlaps range ${j} of the same rangeset`);
    }
  }
  return set;
}

function parseRoutes(raw: unknown[] | undefined, path: string): Route[] {
  return (raw ?? []).map((r, i) => {
    const p = join(path, i);
    if (!isObj(r)) throw configError(p, 'must be an object');
    const dst = reqStr(r, 'dst', p);
    if (!parseCidr(dst)) throw configError(join(p, 'dst'), `"${dst}" is not a CIDR`);
    const gw = optStr(r, 'gw', p);
    if (gw !== undefined && !parseIP(gw)) throw configError(join(p, 'gw'), `"${gw}" is not an IP address`);
    return gw ? { dst, gw } : { dst };
  });
}

/** Reads a resolv.conf into CNI DNS (host-local's parseResolvConf). */
export function parseResolvConf(file: string): DNS {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw configError('ipam.resolvConf', `cannot read ${file}: ${(e as Error).message}`);
  }
  const dns: DNS = {};
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 2 || f[0].startsWith('#') || f[0].startsWith(';')) continue;
    switch (f[0]) {
      case 'nameserver':
        (dns.nameservers ??= []).push(f[1]);
        break;
      case 'domain':
        dns.domain = f[1];
        break;
      case 'search':
        (dns.search ??= []).push(...f.slice(1));
        break;
      case 'options':
        (dns.options ??= []).push(...f.slice(1));
        break;
    }
  }
  return dns;
}

/** One rangeset per address family from a node's blocks; each block's first address (its gateway) is skipped. */
export function rangeSetsFromBlocks(blocks: Cidr[]): RangeSet[] {
  return ([4, 6] as const)
    .map((fam) =>
      blocks.filter((b) => b.ip.family === fam).map((b, i) => parseRange({ subnet: formatCidr(b) }, `block ${i}`)),
    )
    .filter((set) => set.length > 0);
}

/** Whether the config gives IPAM ranges of its own (else a cluster node's blocks are the ranges). */
export function configuresRanges(config: Obj): boolean {
  const ipam = optObj(config, 'ipam', '') ?? {};
  const rc = optObj(config, 'runtimeConfig', '') ?? {};
  return (
    ipam.subnet !== undefined ||
    (optArr(ipam, 'ranges', 'ipam') ?? []).length > 0 ||
    (optArr(rc, 'ipRanges', 'runtimeConfig') ?? []).length > 0
  );
}

/**
 * Validates the `ipam` section of `config`. With no ranges configured, `cluster.blocks` (this node's
 * blocks from the cluster datastore) are the ranges.
 */
export function parseIpamConf(config: Obj, env: CniEnv, cluster?: ClusterIpam): IpamConf {
  const ipam = optObj(config, 'ipam', '');
  if (!ipam) throw configError('ipam', 'is required');
  const type = reqStr(ipam, 'type', 'ipam');
  const rangeSets: RangeSet[] = [];
  const rc = optObj(config, 'runtimeConfig', '');
  for (const [i, rs] of (optArr(rc ?? {}, 'ipRanges', 'runtimeConfig') ?? []).entries()) {
    rangeSets.push(parseRangeSet(rs, `runtimeConfig.ipRanges[${i}]`));
  }
  if (ipam.subnet !== undefined) {
    rangeSets.push([
      parseRange(
        { subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway },
        'ipam',
      ),
    ]);
  }
  for (const [i, rs] of (optArr(ipam, 'ranges', 'ipam') ?? []).entries())
    rangeSets.push(parseRangeSet(rs, `ipam.ranges[${i}]`));
  const fromBlocks = rangeSets.length === 0 && cluster !== undefined;
  if (fromBlocks) rangeSets.push(...rangeSetsFromBlocks(cluster.blocks));
  for (let i = 0; i < rangeSets.length; i++) {
    for (let j = 0; j < i; j++) {
      if (rangeSetsOverlap(rangeSets[i], rangeSets[j])) {
        throw configError(
          'ipam.ranges',
          `rangeset ${describeRangeSet(rangeSets[i])} overlaps rangeset ${describeRangeSet(rangeSets[j])}`,
        );
      }
    }
  }
  const resolvConf = optStr(ipam, 'resolvConf', 'ipam');
  const dataDir = optStr(ipam, 'dataDir', 'ipam') || DEFAULT_DATA_DIR;
  const pod = podRequest(config, env);
  for (const fam of [4, 6] as const) {
    if (pod.pools[fam] && !cluster?.poolsChosen) {
      throw configError(
        pod.poolField[fam]!,
        "pools are chosen only by the tabby plugin allocating from a cluster's pools (a `cluster` or `datastore`, no ipam ranges)",
      );
    }
  }
  if (!dataDir.startsWith('/')) throw configError('ipam.dataDir', `must be an absolute path, got "${dataDir}"`);
  return {
    type,
    network: String(config.name),
    dataDir,
    rangeSets,
    routes: parseRoutes(optArr(ipam, 'routes', 'ipam'), 'ipam.routes'),
    // only ADD returns DNS: DEL, CHECK and GC must not fail on a resolv.conf gone since (as host-local)
    dns: resolvConf && env.command === 'ADD' ? parseResolvConf(resolvConf) : undefined,
    requested: pod.addresses,
    exact: pod.exact,
    reserved: cluster?.reserved ?? [],
    ownRangesOnly: fromBlocks,
  };
}
