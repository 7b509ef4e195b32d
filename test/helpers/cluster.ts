import { spawn, ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ip, ipJson, nsExec, run, RunResult } from './proc';
import { EtcdCluster, startEtcd, StartOptions } from './etcd';

/**
 * Simulated nodes for multi-node tests and the demo (no vitest here). Each node is a network namespace:
 * node-a and node-b share the L2 subnet 192.168.10.0/24 (a bridge in a "switch" namespace), node-c sits
 * on 192.168.20.0/24 behind a router namespace, and an "external" host (203.0.113.10, outside all pools)
 * hangs off the router too. The router knows nothing of pod addresses. Every node runs tabby inside its
 * own namespace with its own data and state directories, and its own copy of the conflist, all reading
 * one cluster file.
 *
 * For clusters in etcd (test/etcd, the etcd demo): create() takes options (another underlay, so that a
 * pool like 192.168.0.0/16 overlaps no node address; a fourth node on the far subnet), startEtcd() runs
 * etcd in the router, where every node reaches it, useEtcd() points the conflists at it, and addNode()
 * adds hosts to either subnet.
 */

export interface SimNode {
  name: string; // the Kubernetes node name
  ns: string;
  /** Its IPv4 underlay address ('' on an IPv6-only underlay). */
  ip: string;
  /** Its IPv6 underlay address, on an underlay with IPv6 (SimClusterOptions.ipv6). */
  ip6?: string;
  prefix: number;
  /** Its block of the pool (clusterYaml gives node i 10.244.i.0/24). */
  block: string;
  conflist: string;
}

/** Packets a node sent out of its underlay interface towards one peer node, by kind (see SimCluster.countUnderlay). */
export interface UnderlayCount {
  /** IP protocol 4 (IPIP) to the peer's node address. */
  ipip: number;
  /** UDP to port 4789 (VXLAN) of the peer's node address. */
  vxlan: number;
  /** Pod packets, not encapsulated, to an address of the peer's block. */
  plain: number;
  /** The same over an IPv6 underlay: UDP 4789 to the peer's IPv6 address, plain packets to its IPv6 block. */
  vxlan6?: number;
  plain6?: number;
}

/** What a ping running across an action saw (SimCluster.pingDuring). Times are ms since the epoch. */
export interface PingSpan<T> {
  value: T;
  sent: number;
  received: number;
  /** When each reply arrived (ping -D). */
  replies: number[];
  /** The action ran from `start` to `end`; pinging began before and went on after. */
  start: number;
  end: number;
}

/** The test's own nftables table in each node, counting underlay packets per peer (never tabby's table). */
const UNDERLAY_TABLE = 'tabby-test-underlay';
const NFT = '/usr/sbin/nft';

export interface Pod {
  name: string;
  ns: string;
  node: SimNode;
  /** Its first address (IPv4 on a dual-stack pod). */
  ip: string;
  /** Its IPv6 address, when it has one. */
  ip6?: string;
  result: any;
}

/** The pod's addresses from an ADD result: the first, and the IPv6 one. */
function podAddresses(result: any): { ip: string; ip6?: string } {
  const all = (result.ips as { address: string }[]).map((x) => x.address.split('/')[0]);
  const ip6 = all.find((a) => a.includes(':'));
  return { ip: all[0], ...(ip6 ? { ip6 } : {}) };
}

/**
 * How SimCluster.create builds a cluster other than the default one (all optional). With any options
 * object, the far subnet is a bridge on the router's far leg (so it takes more than one node); without
 * one, the cluster is exactly as it always was.
 */
export interface SimClusterOptions {
  tag?: string;
  natBackend?: string;
  /** The two underlay subnets, each a.b.c.0/24 (default 192.168.10.0/24 and 192.168.20.0/24): the
   * router is .1, node-a .11, node-b .12 (lan), node-c .13 and node-d .14 (far). */
  lan?: string;
  far?: string;
  /** 4 adds node-d on the far subnet. */
  nodes?: 3 | 4;
  /**
   * An IPv6 underlay beside the IPv4 one ('dual': lan 2001:db8:10::/64, far 2001:db8:20::/64, node-a
   * ::11 and so on, the external host 2001:db8:ff::10), or instead of it ('only': the nodes have no IPv4
   * address at all). The router forwards both.
   */
  ipv6?: 'dual' | 'only';
}

/** The plugin entry's `datastore` for an etcd cluster (what useEtcd writes). */
export interface EtcdDatastoreOptions {
  prefix?: string;
  /** The client certificate and CA of a TLS cluster (default: the cluster's own, when it has them). */
  tls?: boolean;
  username?: string;
  password?: string;
  /** Overrides or additions, as they go into the JSON (e.g. a wrong keyFile). */
  extra?: Record<string, unknown>;
}

export function etcdDatastore(etcd: EtcdCluster, o: EtcdDatastoreOptions = {}): Record<string, unknown> {
  const f = o.tls !== false ? etcd.tlsFiles : undefined;
  return {
    type: 'etcd',
    endpoints: etcd.endpoints,
    prefix: o.prefix ?? '/tabby',
    ...(f ? { caFile: f.ca, certFile: f.cert, keyFile: f.key } : {}),
    ...(o.username ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.extra ?? {}),
  };
}

export const EXTERNAL_IP = '203.0.113.10';
/** An address inside another pool's CIDR, on the external host: traffic to it must never be NATed. */
export const OTHER_POOL_IP = '10.10.0.10';
/** The same on an IPv6 underlay: the external host, and an address of a disabled IPv6 pool on it. */
export const EXTERNAL_IP6 = '2001:db8:ff::10';
export const OTHER_POOL_IP6 = 'fd00:99::10';
const LAN6 = '2001:db8:10:';
const FAR6 = '2001:db8:20:';

const NODE_SPECS = [
  { name: 'node-a', ip: '192.168.10.11', subnet: 'lan' },
  { name: 'node-b', ip: '192.168.10.12', subnet: 'lan' },
  { name: 'node-c', ip: '192.168.20.13', subnet: 'far' },
] as const;

interface NodeSpec {
  name: string;
  ip: string;
  subnet: 'lan' | 'far';
}

/** The first three octets of an a.b.c.0/24 (the only underlay shape SimCluster builds). */
function base24(cidr: string): string {
  const m = /^(\d+\.\d+\.\d+)\.0\/24$/.exec(cidr);
  if (!m) throw new Error(`SimCluster: underlay subnet must be a.b.c.0/24, got ${cidr}`);
  return m[1];
}

/** Calico resources for the three nodes with one /24 block each from `pool`, plus whatever `extra` adds. */
export function clusterYaml(
  pool: string,
  extra = '',
  nodes: readonly string[] = NODE_SPECS.map((n) => n.name),
): string {
  const docs = [pool.trim()];
  NODE_SPECS.forEach((n, i) => {
    if (!nodes.includes(n.name)) return;
    const prefix = n.subnet === 'lan' ? 24 : 24;
    docs.push(
      `apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: ${n.name}}\nspec: {bgp: {ipv4Address: ${n.ip}/${prefix}}}`,
    );
    docs.push(
      `apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: ${n.name}-10-244-${i + 1}-0-24}\nspec: {node: ${n.name}, cidr: 10.244.${i + 1}.0/24}`,
    );
  });
  if (extra.trim()) docs.push(extra.trim());
  return docs.join('\n---\n') + '\n';
}

export function vxlanPool(mode: string, natOutgoing = true): string {
  return `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-a}\nspec: {cidr: 10.244.0.0/16, blockSize: 24, vxlanMode: ${mode}, natOutgoing: ${natOutgoing}}`;
}

export function ipipPool(mode: string, natOutgoing = true): string {
  return `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-a}\nspec: {cidr: 10.244.0.0/16, blockSize: 24, ipipMode: ${mode}, natOutgoing: ${natOutgoing}}`;
}

/** An IPv6 pool (fd00:10::/48, /122 blocks) in a VXLAN mode. */
export function vxlanPool6(mode: string, natOutgoing = true): string {
  return `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-6}\nspec: {cidr: 'fd00:10::/48', blockSize: 122, vxlanMode: ${mode}, natOutgoing: ${natOutgoing}}`;
}

/** A disabled IPv6 pool holding OTHER_POOL_IP6. */
export const DISABLED_OTHER_POOL6 = `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: other-6}\nspec: {cidr: 'fd00:99::/48', disabled: true}`;

/** Node i's IPv6 block of vxlanPool6: fd00:10::i00/122 (its tunnel address is fd00:10::i01). */
export const block6 = (i: number): string => `fd00:10::${i}00/122`;

/**
 * Calico resources for the three nodes of an IPv6 or dual-stack underlay: each Node with its IPv6
 * address/64 (and its IPv4 one/24 with `underlay` 'dual'), node i a block of each pool given: 10.244.i.0/24
 * of `v4` (a pool of pool-a's CIDR), fd00:10::i00/122 of `v6` (vxlanPool6).
 */
export function clusterYaml6(o: { v4?: string; v6?: string; underlay: 'dual' | 'only'; extra?: string }): string {
  const docs = [o.v4, o.v6].filter((d): d is string => !!d).map((d) => d.trim());
  NODE_SPECS.forEach((n, i) => {
    const host = n.ip.split('.')[3];
    const v6 = `${n.subnet === 'lan' ? LAN6 : FAR6}:${host}/64`;
    const bgp = o.underlay === 'dual' ? `{ipv4Address: ${n.ip}/24, ipv6Address: '${v6}'}` : `{ipv6Address: '${v6}'}`;
    docs.push(`apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: ${n.name}}\nspec: {bgp: ${bgp}}`);
    if (o.v4)
      docs.push(
        `apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: ${n.name}-10-244-${i + 1}-0-24}\nspec: {node: ${n.name}, cidr: 10.244.${i + 1}.0/24}`,
      );
    if (o.v6)
      docs.push(
        `apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: ${n.name}-v6}\nspec: {node: ${n.name}, cidr: '${block6(i + 1)}'}`,
      );
  });
  if (o.extra?.trim()) docs.push(o.extra.trim());
  return docs.join('\n---\n') + '\n';
}

/** A disabled pool holding OTHER_POOL_IP: NAT must leave traffic towards it alone. */
export const DISABLED_OTHER_POOL = `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: other}\nspec: {cidr: 10.10.0.0/16, disabled: true}`;

async function mustIp(ns: string | undefined, ...args: string[]): Promise<void> {
  await ip(ns, args);
}

export class SimCluster {
  readonly nodes: SimNode[] = [];
  readonly pods: Pod[] = [];
  readonly dir: string;
  readonly clusterFile: string;
  readonly sw: string;
  readonly router: string;
  readonly external: string;
  private readonly namespaces: string[] = [];
  private readonly servers: ChildProcess[] = [];
  /** The underlay's /24s (first three octets), and whether the far subnet is a bridge (see SimClusterOptions). */
  readonly lanBase: string;
  readonly farBase: string;
  private readonly farBridge: boolean;
  private readonly specs: NodeSpec[];
  /** etcd clusters started in the router (stopped by destroy). */
  private readonly etcds: EtcdCluster[] = [];
  /** Set by useEtcd: the `datastore` every conflist written from then on gets instead of `cluster`. */
  private datastore: Record<string, unknown> | undefined;
  private hostCount = 0;

  private constructor(
    readonly tag: string,
    readonly tabby: string[],
    readonly natBackend?: string,
    readonly options?: SimClusterOptions,
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
    this.clusterFile = path.join(this.dir, 'cluster.yaml');
    this.sw = `${tag}-sw`;
    this.router = `${tag}-rt`;
    this.external = `${tag}-ext`;
    this.lanBase = base24(options?.lan ?? '192.168.10.0/24');
    this.farBase = base24(options?.far ?? '192.168.20.0/24');
    this.farBridge = options !== undefined;
    const specs: NodeSpec[] = NODE_SPECS.map((n) => ({ ...n }));
    if (options?.nodes === 4) specs.push({ name: 'node-d', ip: '192.168.20.14', subnet: 'far' });
    this.specs = specs.map((n) => ({
      ...n,
      ip: `${n.subnet === 'lan' ? this.lanBase : this.farBase}.${n.ip.split('.')[3]}`,
    }));
  }

  /** The router's address on the lan subnet (where startEtcd serves). */
  get routerLanIp(): string {
    return `${this.lanBase}.1`;
  }

  /**
   * Builds the underlay. `tabby` is the command line that starts tabby (binary, or node + bundle).
   * The second argument is a tag, or a SimClusterOptions object (another underlay, a fourth node).
   */
  static async create(
    tabby: string[],
    tagOrOptions: string | SimClusterOptions = `tbc${randomBytes(3).toString('hex')}`,
    natBackend?: string,
  ): Promise<SimCluster> {
    const options = typeof tagOrOptions === 'object' ? tagOrOptions : undefined;
    const tag =
      typeof tagOrOptions === 'string' ? tagOrOptions : (options?.tag ?? `tbc${randomBytes(3).toString('hex')}`);
    const c = new SimCluster(tag, tabby, natBackend ?? options?.natBackend, options);
    try {
      await c.build();
    } catch (e) {
      await c.destroy();
      throw e;
    }
    return c;
  }

  private async netns(name: string): Promise<string> {
    await ip(undefined, ['netns', 'add', name]);
    this.namespaces.push(name);
    await mustIp(name, 'link', 'set', 'lo', 'up');
    return name;
  }

  /**
   * Runs `ip [-n ns] -batch -` over `lines`: one process for many changes (each `ip` costs 0.1-0.2 s in the
   * qemu guest). Throws with ip's stderr, which names the failing line.
   */
  private async ipBatch(ns: string | undefined, lines: string[][]): Promise<void> {
    const argv = [...(ns ? ['-n', ns] : []), '-batch', '-'];
    const r = await run('/usr/sbin/ip', argv, { input: lines.map((l) => l.join(' ')).join('\n') + '\n' });
    if (r.code !== 0) throw new Error(`ip ${argv.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  }

  private async build(): Promise<void> {
    const nodeNs = (spec: NodeSpec): string => `${this.tag}-${spec.name}`;
    const all = [this.sw, this.router, this.external, ...this.specs.map(nodeNs)];
    this.namespaces.push(...all); // first: destroy() removes whatever part of them exists
    await this.ipBatch(
      undefined,
      all.map((n) => ['netns', 'add', n]),
    );
    const lo = ['link', 'set', 'lo', 'up'];
    // A veth from `ns` (this end: its name and address) to another namespace (that end configured there).
    const veth = (name: string, addr: string | undefined, peerNs: string, peerName: string): string[][] => [
      ['link', 'add', name, 'type', 'veth', 'peer', 'name', peerName, 'netns', peerNs],
      ...(addr ? [['address', 'add', addr, 'dev', name]] : []),
      ['link', 'set', name, 'up'],
    ];
    const lan = this.specs.filter((s) => s.subnet === 'lan');
    const far = this.specs.filter((s) => s.subnet === 'far');
    // The switch: a bridge whose ports are the router's lan leg and the lan nodes' eth0.
    await this.ipBatch(this.sw, [
      lo,
      ['link', 'add', 'br0', 'type', 'bridge'],
      ['link', 'set', 'br0', 'up'],
      ...veth('p-rt', undefined, this.router, 'lan0'),
      ['link', 'set', 'p-rt', 'master', 'br0'],
      ...lan.flatMap((spec) => {
        const port = `p-${spec.name.slice(-1)}`;
        return [...veth(port, undefined, nodeNs(spec), 'eth0'), ['link', 'set', port, 'master', 'br0']];
      }),
      // With options: a second bridge for the far subnet, so that it takes more than one node.
      ...(this.farBridge
        ? [
            ['link', 'add', 'br1', 'type', 'bridge'],
            ['link', 'set', 'br1', 'up'],
            ...veth('p-rtf', undefined, this.router, 'far0'),
            ['link', 'set', 'p-rtf', 'master', 'br1'],
            ...far.flatMap((spec) => {
              const port = `p-${spec.name.slice(-1)}`;
              return [...veth(port, undefined, nodeNs(spec), 'eth0'), ['link', 'set', port, 'master', 'br1']];
            }),
          ]
        : []),
    ]);
    // The router: lan leg on the switch, far leg to node-c, and the external host (which also holds an
    // address of another pool, routed to it).
    await this.ipBatch(this.router, [
      lo,
      ['address', 'add', `${this.lanBase}.1/24`, 'dev', 'lan0'],
      ['link', 'set', 'lan0', 'up'],
      ...veth('ext0', '203.0.113.1/24', this.external, 'eth0'),
      ...(this.farBridge
        ? [
            ['address', 'add', `${this.farBase}.1/24`, 'dev', 'far0'],
            ['link', 'set', 'far0', 'up'],
          ]
        : veth('far0', `${this.farBase}.1/24`, nodeNs(far[0]), 'eth0')),
      ['route', 'add', '10.10.0.0/16', 'via', EXTERNAL_IP],
    ]);
    await nsExec(this.router, '/usr/sbin/sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    await this.ipBatch(this.external, [
      lo,
      ['address', 'add', `${EXTERNAL_IP}/24`, 'dev', 'eth0'],
      ['link', 'set', 'eth0', 'up'],
      ['address', 'add', `${OTHER_POOL_IP}/32`, 'dev', 'lo'],
      ...(this.options
        ? [
            ['route', 'add', `${this.lanBase}.0/24`, 'via', '203.0.113.1'],
            ['route', 'add', `${this.farBase}.0/24`, 'via', '203.0.113.1'],
          ]
        : [['route', 'add', '192.168.0.0/16', 'via', '203.0.113.1']]),
    ]);
    const v6 = this.options?.ipv6;
    if (v6) {
      // nodad: an address is usable at once, not tentative for a second
      await this.ipBatch(this.router, [
        ['address', 'add', `${LAN6}:1/64`, 'dev', 'lan0', 'nodad'],
        ['address', 'add', `${FAR6}:1/64`, 'dev', 'far0', 'nodad'],
        ['address', 'add', '2001:db8:ff::1/64', 'dev', 'ext0', 'nodad'],
        ['route', 'add', 'fd00:99::/48', 'via', EXTERNAL_IP6, 'dev', 'ext0', 'onlink'],
      ]);
      await nsExec(this.router, '/usr/sbin/sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
      await this.ipBatch(this.external, [
        ['address', 'add', `${EXTERNAL_IP6}/64`, 'dev', 'eth0', 'nodad'],
        ['address', 'add', `${OTHER_POOL_IP6}/128`, 'dev', 'lo'],
        ['route', 'add', '2001:db8::/32', 'via', '2001:db8:ff::1', 'dev', 'eth0', 'onlink'],
      ]);
    }
    for (const spec of this.specs) {
      const ns = nodeNs(spec);
      const six = `${spec.subnet === 'lan' ? LAN6 : FAR6}:${spec.ip.split('.')[3]}`;
      await this.ipBatch(ns, [
        lo,
        ...(v6 !== 'only' ? [['address', 'add', `${spec.ip}/24`, 'dev', 'eth0']] : []),
        ...(v6 ? [['address', 'add', `${six}/64`, 'dev', 'eth0', 'nodad']] : []),
        ['link', 'set', 'eth0', 'up'],
        ...(v6 !== 'only'
          ? [['route', 'add', 'default', 'via', `${spec.subnet === 'lan' ? this.lanBase : this.farBase}.1`]]
          : []),
        ...(v6
          ? [['route', 'add', '::/0', 'via', `${spec.subnet === 'lan' ? LAN6 : FAR6}:1`, 'dev', 'eth0', 'onlink']]
          : []),
      ]);
      const conflist = this.writeConflist(spec.name);
      const block = `10.244.${this.specs.indexOf(spec) + 1}.0/24`;
      const ip = v6 === 'only' ? '' : spec.ip;
      this.nodes.push({ name: spec.name, ns, ip, ...(v6 ? { ip6: six } : {}), prefix: 24, block, conflist });
    }
  }

  /** Writes a node's conflist: the cluster file, or the etcd datastore once useEtcd ran. */
  private writeConflist(name: string, datastore = this.datastore): string {
    const conflist = path.join(this.dir, `${name}.conflist`);
    fs.writeFileSync(
      conflist,
      JSON.stringify(
        {
          cniVersion: '1.1.0',
          name: 'tabbynet',
          plugins: [
            {
              type: 'tabby',
              logFile: path.join(this.dir, `${name}.log`),
              logLevel: 'info',
              ...(datastore ? { datastore } : { cluster: this.clusterFile }),
              nodeName: name,
              ...(this.natBackend ? { natBackend: this.natBackend } : {}),
              stateDir: path.join(this.dir, name, 'state'),
              ipam: { type: 'tabby-ipam', dataDir: path.join(this.dir, name, 'ipam') },
            },
          ],
        },
        null,
        2,
      ),
    );
    return conflist;
  }

  /** The log file tabby writes on a node (plugin and agent). */
  logFile(node: SimNode): string {
    return path.join(this.dir, `${node.name}.log`);
  }

  /**
   * Starts etcd inside the router namespace, serving clients on the router's lan address (every node
   * reaches it: the lan directly, the far subnet through the router). Stopped by destroy().
   */
  async startEtcd(opts: Omit<StartOptions, 'netns' | 'host'> = {}): Promise<EtcdCluster> {
    const etcd = await startEtcd({ ...opts, netns: this.router, host: this.routerLanIp });
    this.etcds.push(etcd);
    return etcd;
  }

  /**
   * Points the cluster at etcd instead of the cluster file: rewrites the conflists of `nodes` (default:
   * every node) with `datastore` (etcdDatastore's), and nodes added from now on get it too.
   */
  useEtcd(etcd: EtcdCluster, o: EtcdDatastoreOptions = {}, nodes: SimNode[] = this.nodes): Record<string, unknown> {
    const datastore = etcdDatastore(etcd, o);
    this.datastore = datastore;
    for (const n of nodes) this.writeConflist(n.name, datastore);
    return datastore;
  }

  /** Rewrites one node's conflist with this `datastore` object (e.g. wrong credentials). */
  setDatastore(node: SimNode, datastore: Record<string, unknown>): void {
    this.writeConflist(node.name, datastore);
  }

  /** A namespace for a pod, removed by destroy() (for ADDs run by hand). */
  podNetns(podName: string): Promise<string> {
    return this.netns(`${this.tag}-${podName}`);
  }

  /**
   * Adds a host to the lan or the far subnet (the far one needs a cluster made with options): a node
   * namespace with eth0 on that subnet's bridge, address .`hostId` (default: from .100 up), a default
   * route via the router, and its own conflist, state and IPAM directories. `join` (default true) makes
   * it one of `nodes` (countUnderlay, cleanup of pods); its namespace is removed by destroy() either way.
   */
  async addNode(
    name: string,
    subnet: 'lan' | 'far' = 'lan',
    o: { hostId?: number; join?: boolean } = {},
  ): Promise<SimNode> {
    if (subnet === 'far' && !this.farBridge)
      throw new Error('SimCluster: the far subnet takes more nodes only with options');
    const id = o.hostId ?? 100 + this.hostCount;
    this.hostCount++;
    const ns = `${this.tag}-${name}`;
    const port = `h${this.hostCount}-${randomBytes(2).toString('hex')}`;
    const base = subnet === 'lan' ? this.lanBase : this.farBase;
    this.namespaces.push(ns);
    await ip(undefined, ['netns', 'add', ns]);
    await this.ipBatch(this.sw, [
      ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns],
      ['link', 'set', port, 'master', subnet === 'lan' ? 'br0' : 'br1'],
      ['link', 'set', port, 'up'],
    ]);
    // with an IPv6 underlay (dual stack), an IPv6 address too: .id becomes ::id
    const six = this.options?.ipv6 ? `${subnet === 'lan' ? LAN6 : FAR6}:${id}` : undefined;
    await this.ipBatch(ns, [
      ['link', 'set', 'lo', 'up'],
      ['address', 'add', `${base}.${id}/24`, 'dev', 'eth0'],
      ...(six ? [['address', 'add', `${six}/64`, 'dev', 'eth0', 'nodad']] : []),
      ['link', 'set', 'eth0', 'up'],
      ['route', 'add', 'default', 'via', `${base}.1`],
      ...(six ? [['route', 'add', '::/0', 'via', `${subnet === 'lan' ? LAN6 : FAR6}:1`, 'dev', 'eth0', 'onlink']] : []),
    ]);
    const node: SimNode = {
      name,
      ns,
      ip: `${base}.${id}`,
      ...(six ? { ip6: six } : {}),
      prefix: 24,
      block: '',
      conflist: this.writeConflist(name),
    };
    if (o.join !== false) this.nodes.push(node);
    return node;
  }

  node(name: string): SimNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  writeClusterFile(yaml: string): void {
    const tmp = `${this.clusterFile}.tmp`;
    fs.writeFileSync(tmp, yaml);
    fs.renameSync(tmp, this.clusterFile);
  }

  /** The config a runtime would pass to tabby on `node` (the conflist's plugin entry). */
  pluginConfig(node: SimNode): Record<string, unknown> {
    const list = JSON.parse(fs.readFileSync(node.conflist, 'utf8'));
    return { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
  }

  /** Runs a tabby CNI command on a node. */
  cni(
    node: SimNode,
    command: string,
    containerId: string,
    netns: string,
    config = this.pluginConfig(node),
    extraEnv: Record<string, string> = {},
  ): Promise<RunResult> {
    return nsExec(node.ns, this.tabby[0], this.tabby.slice(1), {
      env: {
        ...extraEnv,
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: containerId,
        CNI_NETNS: netns,
        CNI_IFNAME: 'eth0',
        CNI_PATH: path.dirname(this.tabby[this.tabby.length - 1]),
      },
      input: JSON.stringify(config),
    });
  }

  /** Runs `tabby <args>` (the CLI) inside a node. */
  cli(node: SimNode, ...args: string[]): Promise<RunResult> {
    return nsExec(node.ns, this.tabby[0], [...this.tabby.slice(1), ...args]);
  }

  /**
   * ADD of a pod that may fail: the pod when it succeeded, and the plugin's answer either way. A failed
   * ADD's namespace is removed at once.
   */
  async tryAddPod(
    nodeOrName: SimNode | string,
    podName: string,
    config?: Record<string, unknown>,
    env?: Record<string, string>,
  ): Promise<{ pod?: Pod; run: RunResult }> {
    const node = typeof nodeOrName === 'string' ? this.node(nodeOrName) : nodeOrName;
    const ns = await this.podNetns(podName);
    const r = await this.cni(node, 'ADD', `${this.tag}-${podName}`, `/var/run/netns/${ns}`, config, env);
    if (r.code !== 0) {
      await run('/usr/sbin/ip', ['netns', 'del', ns]);
      this.namespaces.splice(this.namespaces.indexOf(ns), 1);
      return { run: r };
    }
    const result = JSON.parse(r.stdout);
    const pod = { name: podName, ns, node, ...podAddresses(result), result };
    this.pods.push(pod);
    return { pod, run: r };
  }

  async addPod(nodeName: string, podName: string): Promise<Pod> {
    const node = this.node(nodeName);
    const ns = await this.netns(`${this.tag}-${podName}`);
    const r = await this.cni(node, 'ADD', `${this.tag}-${podName}`, `/var/run/netns/${ns}`);
    if (r.code !== 0) throw new Error(`ADD ${podName} on ${nodeName} failed: ${r.stdout} ${r.stderr}`);
    const result = JSON.parse(r.stdout);
    const pod = { name: podName, ns, node, ...podAddresses(result), result };
    this.pods.push(pod);
    return pod;
  }

  async delPod(pod: Pod): Promise<RunResult> {
    const r = await this.cni(pod.node, 'DEL', `${this.tag}-${pod.name}`, `/var/run/netns/${pod.ns}`);
    this.pods.splice(this.pods.indexOf(pod), 1);
    await run('/usr/sbin/ip', ['netns', 'del', pod.ns]);
    this.namespaces.splice(this.namespaces.indexOf(pod.ns), 1);
    return r;
  }

  /** Packets the device has sent so far (the kernel's own counter). */
  async txPackets(ns: string, dev: string): Promise<number> {
    const [l] = await ipJson<{ stats64?: { tx?: { packets: number } } }[]>(ns, [
      '-s',
      'link',
      'show',
      'dev',
      dev,
    ]).catch(() => [undefined]);
    return l?.stats64?.tx?.packets ?? 0;
  }

  /** One ping with don't-fragment set, `size` bytes of payload. */
  ping(fromNs: string, dst: string, size = 56, waitS = 2): Promise<RunResult> {
    return nsExec(fromNs, '/usr/bin/ping', [
      dst.includes(':') ? '-6' : '-4',
      '-n',
      '-c',
      '1',
      '-W',
      String(waitS),
      '-M',
      'do',
      '-s',
      String(size),
      dst,
    ]);
  }

  /**
   * Pings until one reply (ARP and neighbour resolution may need a moment) or `tries` tries.
   * Where no answer is expected, fewer tries keep the test short.
   */
  async reachable(fromNs: string, dst: string, size = 56, tries = 5): Promise<boolean> {
    for (let i = 0; i < tries; i++) if ((await this.ping(fromNs, dst, size)).code === 0) return true;
    return false;
  }

  /**
   * Sends `bytes` over TCP from one namespace to a listener in another and returns how many arrived.
   * Linux TCP sets don't-fragment, so a path MTU that disagrees with the interfaces shows up as a stall.
   */
  async tcpTransfer(fromNs: string, toNs: string, toIp: string, bytes = 200_000): Promise<number> {
    const port = 5001 + Math.floor(Math.random() * 1000);
    const v6 = toIp.includes(':');
    const listen = v6 ? `TCP6-LISTEN:${port},reuseaddr` : `TCP-LISTEN:${port},reuseaddr`;
    const server = nsExec(toNs, '/usr/bin/socat', ['-u', listen, 'STDOUT'], {
      timeoutMs: 20_000,
    });
    await this.waitListening(toNs, port);
    const payload = randomBytes(bytes / 2).toString('hex');
    const to = v6 ? `TCP6:[${toIp}]:${port}` : `TCP:${toIp}:${port}`;
    await nsExec(fromNs, '/usr/bin/socat', ['-u', 'STDIN', `${to},connect-timeout=5`], {
      input: payload,
      timeoutMs: 20_000,
    });
    const got = await server;
    return got.stdout === payload ? bytes : got.stdout.length;
  }

  private async waitListening(ns: string, port: number): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const r = await nsExec(ns, '/usr/bin/ss', ['-Hltn', `sport = :${port}`]);
      if (r.stdout.trim()) return;
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error(`nothing listens on ${port} in ${ns}`);
  }

  /**
   * The source address the external host sees for a UDP datagram from `fromNs` to `dst` (EXTERNAL_IP or
   * OTHER_POOL_IP), or undefined when none arrived. UDP needs no way back, so an un-NATed pod address is
   * seen too. `sourcePort` fixes the sender's port.
   */
  async sourceSeenBy(fromNs: string, dst: string): Promise<string | undefined> {
    return (await this.udpSeenBy(fromNs, dst))?.address;
  }

  async udpSeenBy(
    fromNs: string,
    dst: string,
    sourcePort?: number,
  ): Promise<{ address: string; port: number } | undefined> {
    const port = 7000 + Math.floor(Math.random() * 1000);
    const udp = dst.includes(':') ? 'udp6' : 'udp4';
    const script = `const d=require('dgram').createSocket('${udp}');d.on('message',(m,r)=>{process.stdout.write(JSON.stringify({address:r.address,port:r.port})+'\\n');process.exit(0)});d.bind(${port},()=>process.stdout.write('ready\\n'));setTimeout(()=>process.exit(0),4000)`;
    const server = spawn('/usr/sbin/ip', ['netns', 'exec', this.external, process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.servers.push(server);
    let out = '';
    const ready = new Promise<void>((res) =>
      server.stdout!.on('data', (b) => {
        out += b;
        if (out.includes('ready')) res();
      }),
    );
    const done = new Promise<void>((res) => server.on('close', () => res()));
    await ready;
    const from = sourcePort ? `,sourceport=${sourcePort},reuseaddr` : '';
    for (let i = 0; i < 5 && !out.split('\n')[1]; i++) {
      const to = dst.includes(':') ? `UDP6:[${dst}]:${port}` : `UDP:${dst}:${port}`;
      await nsExec(fromNs, '/usr/bin/socat', ['-u', 'STDIN', `${to}${from}`], { input: 'hello\n' });
      await new Promise((res) => setTimeout(res, 100));
    }
    await done;
    const line = out.split('\n')[1]?.trim();
    return line ? JSON.parse(line) : undefined;
  }

  /** Routes in a node carrying tabby's protocol number. */
  async tabbyRoutes(node: SimNode): Promise<{ dst: string; dev?: string; gateway?: string; type?: string }[]> {
    return ipJson(node.ns, ['route', 'show', 'proto', '117']);
  }

  /** The same of IPv6 (blackholes show `dev lo`). */
  async tabbyRoutes6(node: SimNode): Promise<{ dst: string; dev?: string; gateway?: string; type?: string }[]> {
    return ipJson(node.ns, ['-6', 'route', 'show', 'proto', '117']);
  }

  /**
   * Pings `dst` from `fromNs` every `intervalS` (timestamped replies) from `leadMs` before `action` starts
   * until `settleMs` after it ends, so the replies show how long connectivity was lost while it ran.
   */
  async pingDuring<T>(
    fromNs: string,
    dst: string,
    intervalS: number,
    action: () => Promise<T>,
    leadMs = 1000,
    settleMs = 1000,
  ): Promise<PingSpan<T>> {
    // `ip netns exec` execs ping itself, so the signal below reaches ping, which then prints its summary.
    const child = spawn(
      '/usr/sbin/ip',
      ['netns', 'exec', fromNs, '/usr/bin/ping', '-4', '-n', '-D', '-i', String(intervalS), dst],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.servers.push(child);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const closed = new Promise<void>((res) => child.on('close', () => res()));
    const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
    try {
      await sleep(leadMs);
      const start = Date.now();
      const value = await action();
      const end = Date.now();
      await sleep(settleMs);
      child.kill('SIGINT');
      await Promise.race([closed, sleep(5000)]);
      const replies = [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=/gm)].map((m) =>
        Math.round(Number(m[1]) * 1000),
      );
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      return { value, sent: Number(m?.[1] ?? NaN), received: Number(m?.[2] ?? replies.length), replies, start, end };
    } finally {
      child.kill('SIGKILL');
    }
  }

  /**
   * (Re)installs, in every node, a table of the test's own counting what leaves eth0 towards each other
   * node: IPIP (protocol 4) and VXLAN (UDP 4789) packets to its address, and plain packets to its block.
   * The kernel's counters, on the underlay itself: what encapsulation a path really used.
   */
  async countUnderlay(): Promise<void> {
    for (const n of this.nodes) {
      const rules = this.nodes
        .filter((p) => p !== n)
        .flatMap((p) => [
          ...(p.ip
            ? [
                `oifname "eth0" ip daddr ${p.ip} ip protocol 4 counter comment "ipip ${p.name}"`,
                `oifname "eth0" ip daddr ${p.ip} udp dport 4789 counter comment "vxlan ${p.name}"`,
              ]
            : []),
          // a node that has claimed no block yet (etcd) has no plain counter
          ...(p.block ? [`oifname "eth0" ip daddr ${p.block} counter comment "plain ${p.name}"`] : []),
          ...(p.ip6
            ? [
                `oifname "eth0" ip6 daddr ${p.ip6} udp dport 4789 counter comment "vxlan6 ${p.name}"`,
                `oifname "eth0" ip6 daddr ${block6(this.nodes.indexOf(p) + 1)} counter comment "plain6 ${p.name}"`,
              ]
            : []),
        ]);
      const text = [
        `table inet ${UNDERLAY_TABLE}`,
        `delete table inet ${UNDERLAY_TABLE}`,
        `table inet ${UNDERLAY_TABLE} {`,
        '  chain out {',
        '    type filter hook postrouting priority 300; policy accept;',
        ...rules.map((r) => `    ${r}`),
        '  }',
        '}',
        '',
      ].join('\n');
      const r = await nsExec(n.ns, NFT, ['-f', '-'], { input: text });
      if (r.code !== 0) throw new Error(`nft -f in ${n.name}: exit ${r.code}: ${r.stderr.trim()}`);
    }
  }

  /** The counts of countUnderlay since it last ran: peer name -> packets node sent it, by kind. */
  async underlayCounts(node: SimNode): Promise<Map<string, UnderlayCount>> {
    const r = await nsExec(node.ns, NFT, ['-j', 'list', 'table', 'inet', UNDERLAY_TABLE]);
    if (r.code !== 0) throw new Error(`nft list in ${node.name}: exit ${r.code}: ${r.stderr.trim()}`);
    const counts = new Map<string, UnderlayCount>();
    for (const item of JSON.parse(r.stdout).nftables as {
      rule?: { comment?: string; expr: { counter?: { packets: number } }[] };
    }[]) {
      const [kind, peer] = item.rule?.comment?.split(' ') ?? [];
      const packets = item.rule?.expr.find((e) => e.counter)?.counter?.packets;
      if (!peer || packets === undefined) continue;
      const c = counts.get(peer) ?? { ipip: 0, vxlan: 0, plain: 0 };
      c[kind as keyof UnderlayCount] = packets;
      counts.set(peer, c);
    }
    return counts;
  }

  /** Lists the links rather than asking for one by name: a missing name would make the kernel try to load a module for it. */
  async linkExists(node: SimNode, dev: string): Promise<boolean> {
    return (await ipJson<{ ifname: string }[]>(node.ns, ['link', 'show'])).some((l) => l.ifname === dev);
  }

  /** Whether a link is up and how many IPv4 addresses it has; undefined when it does not exist. */
  async linkInfo(node: SimNode, dev: string): Promise<{ up: boolean; addresses: number } | undefined> {
    const [l] = await ipJson<{ flags?: string[]; addr_info?: { family: string }[] }[]>(node.ns, [
      'address',
      'show',
      'dev',
      dev,
    ]).catch(() => []);
    return (
      l && { up: !!l.flags?.includes('UP'), addresses: (l.addr_info ?? []).filter((x) => x.family === 'inet').length }
    );
  }

  /** Permanent FDB entries on the node's VXLAN device. */
  async fdb(node: SimNode, dev = 'vxlan.tabby'): Promise<{ mac: string; dst?: string }[]> {
    const r = await nsExec(node.ns, '/usr/sbin/bridge', ['-j', 'fdb', 'show', 'dev', dev]);
    return r.code === 0 && r.stdout.trim()
      ? JSON.parse(r.stdout).filter((f: { state?: string }) => f.state === 'permanent')
      : [];
  }

  async neighbours(node: SimNode, dev = 'vxlan.tabby'): Promise<{ dst: string; lladdr?: string }[]> {
    return ipJson(node.ns, ['neigh', 'show', 'dev', dev]).catch(() => []);
  }

  async destroy(): Promise<void> {
    for (const s of this.servers) s.kill('SIGKILL');
    await Promise.all(this.etcds.splice(0).map((e) => e.stop()));
    for (const ns of this.namespaces.splice(0).reverse()) await run('/usr/sbin/ip', ['netns', 'del', ns]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
