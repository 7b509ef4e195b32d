import { Cidr, formatCidr, hasHostBits, networkOf, overlaps, parseCidr, parseIP, Addr } from '../lib/net/addr';
import { CniError, Code } from '../lib/cni/errors';
import { isObj, Obj, shown } from './fields';
import { selectorProblem } from './selector';

/**
 * Calico `projectcalico.org/v3` resources, as tabby reads them from a cluster file: IPPool, Node and
 * BlockAffinity, with Calico's defaults and validation (calico-behaviour.md §7).
 */

export type EncapMode = 'Never' | 'Always' | 'CrossSubnet';
const MODES: readonly string[] = ['Never', 'Always', 'CrossSubnet'];
const USES: readonly string[] = ['Workload', 'Tunnel', 'LoadBalancer'];

export interface IPPool {
  name: string;
  cidr: Cidr;
  vxlanMode: EncapMode;
  ipipMode: EncapMode;
  natOutgoing: boolean;
  disabled: boolean;
  disableBGPExport: boolean;
  blockSize: number;
  nodeSelector: string;
  namespaceSelector: string;
  allowedUses: string[];
  assignmentMode: string;
}

export interface NodeRecord {
  name: string;
  /** metadata.labels: what IPPool nodeSelectors match. */
  labels?: Record<string, string>;
  /** The node's address with its subnet prefix (CrossSubnet reads the prefix). */
  ipv4Address?: Cidr;
  ipv6Address?: Cidr;
  ipv4VXLANTunnelAddr?: Addr;
  vxlanTunnelMACAddr?: string;
  ipv4IPIPTunnelAddr?: Addr;
  /** The IPv6 VTEP: tunnel address and MAC (Calico's ipv6VXLANTunnelAddr, vxlanTunnelMACAddrV6). */
  ipv6VXLANTunnelAddr?: Addr;
  vxlanTunnelMACAddrV6?: string;
}

/** Calico's IPAMConfiguration `default` (tabby reads `maxBlocksPerHost`; 0 means Calico's 20). */
export interface IpamConfigRecord {
  name: string;
  maxBlocksPerHost: number;
  strictAffinity: boolean;
  autoAllocateBlocks: boolean;
}

export interface BlockAffinity {
  name: string;
  node: string;
  cidr: Cidr;
}

export interface ClusterResources {
  pools: IPPool[];
  nodes: NodeRecord[];
  affinities: BlockAffinity[];
  ipamConfig?: IpamConfigRecord;
}

/** An error in the cluster file: names the document, the resource and the field. */
export class ClusterFileError extends CniError {
  constructor(where: string, field: string, problem: string) {
    super(Code.InvalidNetworkConfig, `cluster file: ${where}: ${field}: ${problem}`);
  }
}

const API_VERSION = 'projectcalico.org/v3';
const POOL_FIELDS = new Set([
  'cidr',
  'vxlanMode',
  'ipipMode',
  'natOutgoing',
  'disabled',
  'disableBGPExport',
  'blockSize',
  'nodeSelector',
  'namespaceSelector',
  'allowedUses',
  'assignmentMode',
  'ipip',
  'nat-outgoing',
]);
const LINK_LOCAL = [parseCidr('169.254.0.0/16')!, parseCidr('fe80::/10')!];
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

class Fields {
  constructor(
    readonly where: string,
    readonly o: Obj,
    readonly path: string,
  ) {}
  err(key: string, problem: string): ClusterFileError {
    return new ClusterFileError(this.where, this.path ? `${this.path}.${key}` : key, problem);
  }
  str(key: string): string | undefined {
    const v = this.o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw this.err(key, `must be a string, got ${shown(v)}`);
    return v;
  }
  bool(key: string): boolean | undefined {
    const v = this.o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw this.err(key, `must be true or false, got ${shown(v)}`);
    return v;
  }
  int(key: string): number | undefined {
    const v = this.o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw this.err(key, `must be an integer, got ${shown(v)}`);
    return v;
  }
  mode(key: string): EncapMode {
    const v = this.str(key) || 'Never'; // Calico reads an empty mode as Never
    if (!MODES.includes(v)) throw this.err(key, `must be one of ${MODES.join(', ')}, got "${v}"`);
    return v as EncapMode;
  }
  cidr(key: string, required: boolean): Cidr | undefined {
    const s = this.str(key);
    if (s === undefined || s === '') {
      if (required) throw this.err(key, 'is required');
      return undefined;
    }
    const c = parseCidr(s);
    if (!c) throw this.err(key, `"${s}" is not a CIDR`);
    return c;
  }
  addr(key: string): Addr | undefined {
    const s = this.str(key);
    if (s === undefined || s === '') return undefined;
    const a = parseIP(s.split('/')[0]);
    if (!a) throw this.err(key, `"${s}" is not an IP address`);
    return a;
  }
  obj(key: string): Fields | undefined {
    const v = this.o[key];
    if (v === undefined || v === null) return undefined;
    if (!isObj(v)) throw this.err(key, 'must be a mapping');
    return new Fields(this.where, v, this.path ? `${this.path}.${key}` : key);
  }
}

/** A selector that parses (Calico's language), or the field names the position where it does not. */
function validSelector(spec: Fields, key: string): string {
  const text = (spec.str(key) ?? '').trim() || 'all()';
  const problem = selectorProblem(text);
  if (problem) throw spec.err(key, `${JSON.stringify(text)}: ${problem}`);
  return text;
}

function parsePool(where: string, name: string, spec: Fields): IPPool {
  for (const k of Object.keys(spec.o)) if (!POOL_FIELDS.has(k)) throw spec.err(k, 'unknown field');
  // The APIv1 fields exist in v3 only to be refused when set (validate mustBeNil / mustBeFalse).
  if (spec.o.ipip !== undefined && spec.o.ipip !== null)
    throw spec.err('ipip', 'is the APIv1 field and may not be set: use ipipMode');
  if (spec.o['nat-outgoing'] !== undefined && spec.o['nat-outgoing'] !== null && spec.o['nat-outgoing'] !== false) {
    throw spec.err('nat-outgoing', 'is the APIv1 field and may not be set: use natOutgoing');
  }
  const cidr = spec.cidr('cidr', true)!;
  const v4 = cidr.ip.family === 4;
  if (hasHostBits(cidr))
    throw spec.err(
      'cidr',
      `${formatCidr(cidr)} has host bits set (the network is ${formatCidr({ ip: networkOf(cidr), prefix: cidr.prefix })})`,
    );
  for (const ll of LINK_LOCAL)
    if (overlaps(ll, cidr))
      throw spec.err('cidr', `${formatCidr(cidr)} overlaps the link-local range ${formatCidr(ll)}`);
  const vxlanMode = spec.mode('vxlanMode');
  const ipipMode = spec.mode('ipipMode');
  if (vxlanMode !== 'Never' && ipipMode !== 'Never')
    throw spec.err('ipipMode', `cannot be ${ipipMode} while vxlanMode is ${vxlanMode}: choose one encapsulation`);
  if (!v4 && ipipMode !== 'Never') throw spec.err('ipipMode', 'IPIP is not supported for IPv6 pools');
  const disabled = spec.bool('disabled') ?? false;
  const blockSize = spec.int('blockSize') || (v4 ? 26 : 122); // 0 means unset, as in Calico
  // Calico allows /20–/32 blocks (/116–/128). tabby's IPAM keeps each block's first address for the node
  // (its gateway and tunnel address) and needs at least two more, so /31 and /32 (/127, /128) are refused
  // here, not at ADD. One range, one message.
  const [lo, hi] = v4 ? [20, 30] : [116, 126];
  if (blockSize < lo || blockSize > hi)
    throw spec.err(
      'blockSize',
      `must be between ${lo} and ${hi} for an IPv${v4 ? 4 : 6} pool, got ${blockSize}` +
        (blockSize > hi && blockSize <= hi + 2 ? " (a smaller block leaves no room for pods in tabby's IPAM)" : ''),
    );
  if (cidr.prefix > blockSize && !disabled)
    throw spec.err('cidr', `prefix /${cidr.prefix} is longer than the blockSize ${blockSize}`);
  const given = spec.o.allowedUses;
  const uses =
    given === undefined || given === null || (Array.isArray(given) && given.length === 0)
      ? ['Workload', 'Tunnel']
      : given;
  if (!Array.isArray(uses) || uses.some((u) => typeof u !== 'string' || !USES.includes(u))) {
    throw spec.err('allowedUses', `must be a list of ${USES.join(', ')}`);
  }
  const assignmentMode = spec.str('assignmentMode') ?? 'Automatic';
  if (!['Automatic', 'Manual'].includes(assignmentMode))
    throw spec.err('assignmentMode', `must be Automatic or Manual, got "${assignmentMode}"`);
  return {
    name,
    cidr,
    vxlanMode,
    ipipMode,
    natOutgoing: spec.bool('natOutgoing') ?? false,
    disabled,
    disableBGPExport: spec.bool('disableBGPExport') ?? false,
    blockSize,
    nodeSelector: validSelector(spec, 'nodeSelector'),
    namespaceSelector: spec.str('namespaceSelector') ?? '',
    allowedUses: uses as string[],
    assignmentMode,
  };
}

function parseLabels(meta: Fields | undefined): Record<string, string> | undefined {
  const labels = meta?.obj('labels');
  if (!labels) return undefined;
  const out: Record<string, string> = {};
  for (const k of Object.keys(labels.o)) out[k] = labels.str(k) ?? '';
  return out;
}

function parseIpamConfig(name: string, spec: Fields): IpamConfigRecord {
  if (name !== 'default') throw spec.err('', `only the IPAMConfiguration named "default" is read, not "${name}"`);
  const max = spec.int('maxBlocksPerHost') ?? 0;
  if (max < 0) throw spec.err('maxBlocksPerHost', `must be 0 (Calico's default of 20) or more, got ${max}`);
  return {
    name,
    maxBlocksPerHost: max,
    strictAffinity: spec.bool('strictAffinity') ?? false,
    autoAllocateBlocks: spec.bool('autoAllocateBlocks') ?? true,
  };
}

function parseNode(name: string, spec: Fields, labels?: Record<string, string>): NodeRecord {
  const bgp = spec.obj('bgp');
  const macOf = (key: string): string | undefined => {
    const mac = spec.str(key);
    if (mac !== undefined && mac !== '' && !MAC_RE.test(mac)) throw spec.err(key, `"${mac}" is not a MAC address`);
    return mac ? mac.toLowerCase() : undefined;
  };
  const addrOf = (f: Fields | undefined, key: string, family: 4 | 6): Addr | undefined => {
    const a = f?.addr(key);
    if (a && a.family !== family) throw f!.err(key, `must be an IPv${family} address`);
    return a;
  };
  const withPrefix = (f: Fields | undefined, key: string): Cidr | undefined => {
    if (!f) return undefined;
    const s = f.str(key);
    if (s === undefined || s === '') return undefined;
    const c = s.includes('/')
      ? parseCidr(s)
      : ((a) => (a ? { ip: a, prefix: a.family === 4 ? 32 : 128 } : undefined))(parseIP(s));
    if (!c) throw f.err(key, `"${s}" is not an address with a prefix`);
    return c;
  };
  const ipv4Address = withPrefix(bgp, 'ipv4Address');
  const ipv6Address = withPrefix(bgp, 'ipv6Address');
  if (ipv4Address && ipv4Address.ip.family !== 4) throw bgp!.err('ipv4Address', 'must be an IPv4 address');
  if (ipv6Address && ipv6Address.ip.family !== 6) throw bgp!.err('ipv6Address', 'must be an IPv6 address');
  const v6Tunnel = addrOf(spec, 'ipv6VXLANTunnelAddr', 6);
  const v6Mac = macOf('vxlanTunnelMACAddrV6');
  return {
    name,
    ...(labels ? { labels } : {}),
    ipv4Address,
    ipv6Address,
    ipv4IPIPTunnelAddr: bgp?.addr('ipv4IPIPTunnelAddr'),
    ipv4VXLANTunnelAddr: spec.addr('ipv4VXLANTunnelAddr'),
    vxlanTunnelMACAddr: macOf('vxlanTunnelMACAddr'),
    // only when set: records compared whole (tests, caches) keep their v4 shape
    ...(v6Tunnel ? { ipv6VXLANTunnelAddr: v6Tunnel } : {}),
    ...(v6Mac ? { vxlanTunnelMACAddrV6: v6Mac } : {}),
  };
}

function parseAffinity(name: string, spec: Fields): BlockAffinity {
  const node = spec.str('node');
  if (!node) throw spec.err('node', 'is required');
  const cidr = spec.cidr('cidr', true)!;
  if (hasHostBits(cidr)) throw spec.err('cidr', `${formatCidr(cidr)} has host bits set`);
  return { name, node, cidr };
}

type Resource = IPPool | NodeRecord | BlockAffinity | IpamConfigRecord;

/** A resource read from a document, and where in the document it is (after "document N"), for errors. */
interface Read {
  kind: 'IPPool' | 'Node' | 'BlockAffinity' | 'IPAMConfiguration';
  res: Resource;
  suffix: string;
}

// Frozen documents (a DocumentCache freezes the ones it hands out) cannot change, so each is read once:
// a long-running process re-reads a file of thousands of documents after each change, and only the
// changed documents are new objects.
const readOnce = new WeakMap<object, readonly Read[]>();

/** Turns parsed documents (YAML or JSON) into validated resources. `List` kinds are unrolled. */
export function resourcesFromDocuments(docs: unknown[]): ClusterResources {
  const out: ClusterResources = { pools: [], nodes: [], affinities: [] };
  // Each resource's document and place in it, looked up only for an error across resources:
  // "document N (Kind name)". Plain arrays, as a map would cost more than the rest on a file that is valid.
  const placed: Read[] = [];
  const docOf: number[] = [];
  const seen = new Set<object>();
  docs.forEach((doc, i) => {
    for (const read of readDocument(doc, i, seen)) {
      if (read.kind === 'IPPool') out.pools.push(read.res as IPPool);
      else if (read.kind === 'Node') out.nodes.push(read.res as NodeRecord);
      else if (read.kind === 'IPAMConfiguration') {
        if (out.ipamConfig) {
          throw new ClusterFileError(`document ${i + 1}${read.suffix}`, 'metadata.name', 'is defined twice');
        }
        out.ipamConfig = read.res as IpamConfigRecord;
      } else out.affinities.push(read.res as BlockAffinity);
      placed.push(read);
      docOf.push(i);
    }
  });
  validateTogether(out, (o, fallback) => {
    const at = placed.findIndex((r) => r.res === o);
    return at < 0 ? fallback : `document ${docOf[at] + 1}${placed[at].suffix}`;
  });
  return out;
}

/** The resources of document i, remembered for a frozen one (unless it is listed twice: each gets its own). */
function readDocument(doc: unknown, i: number, seen: Set<object>): readonly Read[] {
  if (doc === null || doc === undefined) return []; // an empty document (e.g. a trailing ---)
  const once = typeof doc === 'object' && Object.isFrozen(doc) && !seen.has(doc);
  if (once) {
    seen.add(doc);
    const known = readOnce.get(doc);
    if (known) return known;
  }
  const where = `document ${i + 1}`;
  const reads: Read[] = [];
  visit(doc, where, (kind, res, at) => reads.push({ kind, res, suffix: at.slice(where.length) }));
  if (once) {
    reads.forEach((r) => Object.freeze(r.res)); // shared by every load from now on
    readOnce.set(doc, reads);
  }
  return reads;
}

function visit(doc: unknown, where: string, found: (kind: Read['kind'], res: Resource, at: string) => void): void {
  if (doc === null || doc === undefined) return; // an empty document (e.g. a trailing ---)
  if (!isObj(doc)) throw new ClusterFileError(where, '(document)', 'must be a mapping');
  const top = new Fields(where, doc, '');
  const kind = top.str('kind');
  if (kind && kind.endsWith('List') && Array.isArray(doc.items)) {
    doc.items.forEach((item, i) => visit(item, `${where} (${kind} item ${i})`, found));
    return;
  }
  const apiVersion = top.str('apiVersion');
  if (apiVersion !== API_VERSION)
    throw top.err('apiVersion', `must be ${API_VERSION}, got ${JSON.stringify(apiVersion)}`);
  const meta = top.obj('metadata');
  const name = meta?.str('name');
  if (!name) throw top.err('metadata.name', 'is required');
  const at = `${where} (${kind} ${name})`;
  const spec = new Fields(at, isObj(doc.spec) ? doc.spec : {}, 'spec');
  if (doc.spec !== undefined && !isObj(doc.spec)) throw spec.err('', 'must be a mapping');
  switch (kind) {
    case 'IPPool':
      return found(kind, parsePool(at, name, spec), at);
    case 'Node':
      return found(kind, parseNode(name, spec, parseLabels(meta)), at);
    case 'IPAMConfig': // Calico's name for it in calicoctl's docs; the resource kind is IPAMConfiguration
    case 'IPAMConfiguration':
      return found('IPAMConfiguration', parseIpamConfig(name, spec), at);
    case 'BlockAffinity':
      return found(kind, parseAffinity(name, spec), at);
    default:
      throw top.err(
        'kind',
        `tabby reads IPPool, Node, BlockAffinity and IPAMConfiguration, not ${JSON.stringify(kind)}`,
      );
  }
}

let lastValid: { pools: readonly IPPool[]; affinities: readonly BlockAffinity[] } = { pools: [], affinities: [] };

const sameElements = <T>(a: readonly T[], b: readonly T[]): boolean =>
  a.length === b.length && a.length > 0 && a.every((x, i) => x === b[i]);

/** Rules across resources: unique names, no overlapping pools, blocks inside a pool and of its size. */
function validateTogether(r: ClusterResources, locate: (o: object, fallback: string) => string): void {
  const unique = (kind: string, list: { name: string }[]): void => {
    const names = new Set<string>();
    for (const o of list) {
      if (names.has(o.name))
        throw new ClusterFileError(locate(o, `${kind} ${o.name}`), 'metadata.name', 'is defined twice');
      names.add(o.name);
    }
  };
  unique('IPPool', r.pools);
  unique('Node', r.nodes);
  unique('BlockAffinity', r.affinities);
  r.pools.forEach((p, i) =>
    r.pools.slice(0, i).forEach((q) => {
      if (overlaps(p.cidr, q.cidr))
        throw new ClusterFileError(
          locate(p, `IPPool ${p.name}`),
          'spec.cidr',
          `${formatCidr(p.cidr)} overlaps IPPool ${q.name} (${formatCidr(q.cidr)})`,
        );
    }),
  );
  // A long-running process loads the same blocks and pools again after most changes (a node moved):
  // when every one is the same frozen object as at the last successful check, they are valid together.
  if (sameElements(lastValid.pools, r.pools) && sameElements(lastValid.affinities, r.affinities)) return;
  for (const a of r.affinities) {
    const at = (): string => locate(a, `BlockAffinity ${a.name}`); // only for an error: a string per block costs
    const pool = r.pools.find((p) => overlaps(p.cidr, a.cidr));
    if (!pool) throw new ClusterFileError(at(), 'spec.cidr', `${formatCidr(a.cidr)} is in no IPPool`);
    if (a.cidr.prefix !== pool.blockSize) {
      throw new ClusterFileError(
        at(),
        'spec.cidr',
        `${formatCidr(a.cidr)} is not a /${pool.blockSize} block of IPPool ${pool.name}`,
      );
    }
  }
  // Blocks are aligned prefixes, so two overlap only if they are neighbours in address order: sorting
  // keeps this O(n log n) (every pod start validates the file, and large clusters have thousands of blocks).
  const sorted = [...r.affinities].sort(
    (x, y) =>
      x.cidr.ip.family - y.cidr.ip.family ||
      (x.cidr.ip.value < y.cidr.ip.value ? -1 : x.cidr.ip.value > y.cidr.ip.value ? 1 : 0),
  );
  sorted.forEach((a, i) => {
    const b = sorted[i - 1];
    if (b && overlaps(a.cidr, b.cidr)) {
      const [later, earlier] = r.affinities.indexOf(a) > r.affinities.indexOf(b) ? [a, b] : [b, a];
      throw new ClusterFileError(
        locate(later, `BlockAffinity ${later.name}`),
        'spec.cidr',
        `${formatCidr(later.cidr)} is already affine to node ${earlier.node} (BlockAffinity ${earlier.name})`,
      );
    }
  });
  if (Object.isFrozen(r.affinities[0] ?? {}) || r.affinities.length === 0)
    lastValid = { pools: r.pools, affinities: r.affinities };
}

/**
 * Parses the text of a cluster file: multi-document YAML, or JSON (one resource, a list, or a List kind).
 * The plain documents are pushed to `docsOut`, for a cache that skips the YAML parser next time.
 */
export async function parseClusterText(text: string, docsOut: unknown[] = []): Promise<ClusterResources> {
  for (const d of await documentsFromText(text)) docsOut.push(d);
  return resourcesFromDocuments(docsOut);
}

/**
 * The documents of a cluster file's text, parsed whole. Errors name the document: `document N`, counted
 * as the YAML parser counts them (JSON is one document, whose items are numbered when it is a list).
 */
export async function documentsFromText(text: string): Promise<unknown[]> {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      const doc: unknown = JSON.parse(text);
      return Array.isArray(doc) ? doc : [doc];
    } catch {
      // Not one JSON text: YAML flow style (`{kind: IPPool, ...}`) or JSON documents between `---`.
      // JSON is YAML, so the YAML parser reads it and names the document that is wrong.
    }
  }
  // yaml is loaded only here: it costs tens of milliseconds to load, and pod starts use a cached copy.
  const { parseAllDocuments } = await import('yaml');
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  return list.map((d, i) => {
    if (d.errors.length) throw new ClusterFileError(`document ${i + 1}`, '(YAML)', d.errors[0].message);
    try {
      return d.toJS(); // throws on an alias bomb (yaml's guard against resource exhaustion)
    } catch (e) {
      throw new ClusterFileError(`document ${i + 1}`, '(YAML)', (e as Error).message);
    }
  });
}
