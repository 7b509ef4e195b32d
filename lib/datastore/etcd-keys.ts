// Where tabby keeps the cluster in etcd, under a prefix (default /tabby), in Calico's etcd layout:
//   <prefix>/resources/v3/projectcalico.org/ippools/<name>              IPPool (Calico v3 JSON)
//   <prefix>/resources/v3/projectcalico.org/nodes/<name>                Node
//   <prefix>/resources/v3/projectcalico.org/ipamconfigurations/default  IPAMConfiguration
//   <prefix>/ipam/v2/assignment/ipv4/block/<a.b.c.d>-<len>              a claimed block (ipv6/ for v6):
//       {"cidr": "10.244.1.0/26", "affinity": "host:<node>", "affinity_claim_time": "<RFC 3339>"}
// The block record is the one authority on who owns a block; it is created only if absent.
import { Cidr, formatCidr, parseCidr } from '../net/addr';

export const RESOURCE_KINDS = {
  IPPool: 'ippools',
  Node: 'nodes',
  IPAMConfiguration: 'ipamconfigurations',
} as const;
export type ResourceKind = keyof typeof RESOURCE_KINDS;

export class EtcdKeys {
  constructor(readonly prefix: string) {}

  get resources(): string {
    return `${this.prefix}/resources/v3/projectcalico.org/`;
  }

  resource(kind: ResourceKind, name: string): string {
    return `${this.resources}${RESOURCE_KINDS[kind]}/${name}`;
  }

  get blocks(): string {
    return `${this.prefix}/ipam/v2/assignment/`;
  }

  block(cidr: Cidr): string {
    return `${this.blocks}ipv${cidr.ip.family}/block/${formatCidr(cidr).replace('/', '-')}`;
  }

  /** The CIDR a block key names, or undefined for any other key. */
  blockCidr(key: string): Cidr | undefined {
    const m = /\/ipv[46]\/block\/(.+)-(\d+)$/.exec(key);
    return m && key.startsWith(this.blocks) ? parseCidr(`${m[1]}/${m[2]}`) : undefined;
  }

  /** The kind and name a resource key names. */
  resourceOf(key: string): { kind: ResourceKind; name: string } | undefined {
    if (!key.startsWith(this.resources)) return undefined;
    const [plural, name] = key.slice(this.resources.length).split('/');
    const kind = (Object.keys(RESOURCE_KINDS) as ResourceKind[]).find((k) => RESOURCE_KINDS[k] === plural);
    return kind && name ? { kind, name } : undefined;
  }
}

export interface BlockRecord {
  cidr: string;
  /** `host:<node>`. */
  affinity: string;
  affinity_claim_time?: string;
}

export const ownerOf = (b: BlockRecord): string | undefined =>
  b.affinity?.startsWith('host:') ? b.affinity.slice('host:'.length) : undefined;
