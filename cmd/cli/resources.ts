// `tabby apply`, `tabby get`, `tabby delete`: the cluster in etcd, for people. Everything an apply
// writes is validated first, all of it: a bad document changes nothing.
import { command, table, UsageError } from './command';
import { clusterContextFromFlags, CONFIG_FLAG } from './cluster';
import { ipamStoreOf } from './conflist';
import { readText } from './files';
import { documentsFromText, ClusterResources, IPPool, resourcesFromDocuments } from '../../conf/calico';
import { contains, formatCidr, formatIP, overlaps, parseCidr, parseIP } from '../../lib/net/addr';
import { ownerOf, ResourceKind } from '../../lib/datastore/etcd-keys';
import { DiskStore } from '../../ipam/disk-store';
import { isObj } from '../../conf/fields';

const APPLIED_KINDS: Record<string, ResourceKind> = {
  IPPool: 'IPPool',
  Node: 'Node',
  IPAMConfig: 'IPAMConfiguration',
  IPAMConfiguration: 'IPAMConfiguration',
};

function etcdOf(args: { config: string }) {
  const ctx = clusterContextFromFlags(args);
  const etcd = ctx.etcd;
  if (!etcd) throw new Error('this command edits a cluster in etcd; with a cluster file, edit the file');
  return { ctx, etcd };
}

/** The documents of a file, each a resource (List kinds unrolled), validated alone and together. */
export async function readManifest(
  file: string,
): Promise<{ docs: { kind: ResourceKind; name: string; doc: object }[]; r: ClusterResources }> {
  const text = readText(file);
  const rename = (e: unknown) => {
    if (e instanceof Error) e.message = e.message.replace(/^cluster file: /, `${file}: `);
    return e;
  };
  let raw: unknown[];
  let r: ClusterResources;
  try {
    raw = await documentsFromText(text);
    r = resourcesFromDocuments(raw);
  } catch (e) {
    throw rename(e);
  }
  const docs = raw
    .flatMap((d) => (isObj(d) && Array.isArray(d.items) && String(d.kind ?? '').endsWith('List') ? d.items : [d]))
    .filter(isObj)
    .map((doc, i) => {
      const kind = APPLIED_KINDS[String(doc.kind)];
      if (!kind) {
        throw new Error(
          `${file}: document ${i + 1} (${doc.kind}): tabby apply takes IPPool, Node and IPAMConfiguration` +
            (doc.kind === 'BlockAffinity' ? '; blocks are claimed by the nodes themselves' : ''),
        );
      }
      const name = String((doc.metadata as { name?: string }).name);
      return { kind, name, doc: { ...doc, kind } };
    });
  return { docs, r };
}

/** Pools that would overlap once applied, or change a blockSize that blocks were cut with. */
function checkAgainstStore(file: string, incoming: IPPool[], stored: ClusterResources): void {
  for (const p of incoming) {
    for (const q of stored.pools) {
      if (q.name !== p.name && overlaps(p.cidr, q.cidr)) {
        throw new Error(
          `${file}: IPPool ${p.name}: spec.cidr: ${formatCidr(p.cidr)} overlaps IPPool ${q.name} (${formatCidr(q.cidr)})`,
        );
      }
      const blocks = stored.affinities.filter((a) => contains(q.cidr, a.cidr.ip));
      if (
        q.name === p.name &&
        blocks.length &&
        (q.blockSize !== p.blockSize || formatCidr(q.cidr) !== formatCidr(p.cidr))
      ) {
        throw new Error(
          `${file}: IPPool ${p.name}: spec.cidr and spec.blockSize cannot change while nodes hold ${blocks.length} of its blocks`,
        );
      }
    }
  }
}

export const applyCommand = command({
  name: 'apply',
  summary: 'write IPPools, Nodes and the IPAMConfiguration to etcd (all validated first)',
  options: {
    config: CONFIG_FLAG,
    filename: {
      type: 'string',
      short: 'f',
      arg: 'FILE',
      required: true,
      help: 'the resources: YAML documents or JSON, as in a cluster file',
    },
  },
  async run(args) {
    const file = args.filename;
    const { etcd } = etcdOf(args);
    const { docs, r } = await readManifest(file);
    checkAgainstStore(file, r.pools, await etcd.loadFresh());
    for (const d of docs) {
      await etcd.putResource(d.kind, d.name, d.doc);
      process.stdout.write(`${d.kind} ${d.name}: applied\n`);
    }
    etcd.close();
    return 0;
  },
});

type Output = 'table' | 'json' | 'yaml';

async function print(rows: Record<string, unknown>[], header: string[], out: Output): Promise<void> {
  if (out === 'json') process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  else if (out === 'yaml') process.stdout.write((await import('yaml')).stringify(rows));
  else
    process.stdout.write(
      table([header.map((h) => h.toUpperCase()), ...rows.map((x) => header.map((h) => String(x[h] ?? '-')))]) + '\n',
    );
}

/** Addresses in use per block of this node, from its own IPAM store (what this node knows). */
function inUse(dataDir: string, network: string, cidr: string): number | undefined {
  const block = parseCidr(cidr)!;
  try {
    return new DiskStore(dataDir, network).list().filter((x) => {
      const ip = parseIP(x.ip);
      return ip !== undefined && ip.family === block.ip.family && contains(block, ip);
    }).length;
  } catch {
    return undefined;
  }
}

export const getCommand = command({
  name: 'get',
  summary: 'what the etcd datastore holds: pools, nodes or blocks',
  options: {
    config: CONFIG_FLAG,
    output: { type: 'string', short: 'o', arg: 'json|yaml', help: 'as JSON or YAML (default: a table)' },
  },
  positionals: [{ name: 'pools|nodes|blocks', help: 'what to list' }],
  async run(args, [what]) {
    if (!['pools', 'nodes', 'blocks', 'pool', 'node', 'block'].includes(what))
      throw new UsageError(`get what: pools, nodes or blocks, not "${what}"`);
    const out = (args.output ?? 'table') as Output;
    if (!['table', 'json', 'yaml'].includes(out)) throw new UsageError(`-o: json or yaml, got "${out}"`);
    const { ctx, etcd } = etcdOf(args);
    const r = await etcd.loadFresh();
    if (what.startsWith('pool')) {
      const rows = r.pools.map((p) => ({
        name: p.name,
        cidr: formatCidr(p.cidr),
        blockSize: p.blockSize,
        vxlanMode: p.vxlanMode,
        ipipMode: p.ipipMode,
        natOutgoing: p.natOutgoing,
        disabled: p.disabled,
        nodeSelector: p.nodeSelector,
        blocks: r.affinities.filter((a) => contains(p.cidr, a.cidr.ip)).length,
      }));
      await print(
        rows,
        ['name', 'cidr', 'blockSize', 'vxlanMode', 'ipipMode', 'natOutgoing', 'disabled', 'nodeSelector', 'blocks'],
        out,
      );
    } else if (what.startsWith('node')) {
      const rows = r.nodes.map((n) => ({
        name: n.name,
        address: n.ipv4Address ? formatCidr(n.ipv4Address) : undefined,
        vxlanTunnelAddr: n.ipv4VXLANTunnelAddr && formatIP(n.ipv4VXLANTunnelAddr),
        vtepMac: n.vxlanTunnelMACAddr,
        labels:
          Object.entries(n.labels ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(',') || undefined,
        blocks: r.affinities.filter((a) => a.node === n.name).length,
        address6: n.ipv6Address ? formatCidr(n.ipv6Address) : undefined,
        vxlanTunnelAddrV6: n.ipv6VXLANTunnelAddr && formatIP(n.ipv6VXLANTunnelAddr),
        vtepMacV6: n.vxlanTunnelMACAddrV6,
      }));
      // the IPv6 columns only in a cluster with IPv6 node addresses
      const v6 = rows.some((x) => x.address6) ? ['address6', 'vxlanTunnelAddrV6', 'vtepMacV6'] : [];
      await print(rows, ['name', 'address', 'vxlanTunnelAddr', 'vtepMac', ...v6, 'labels', 'blocks'], out);
    } else {
      const raw = ctx.conf;
      const plugin = ipamStoreOf(args.config);
      const rows = (await etcd.blockRecords()).map(({ record }) => {
        const owner = ownerOf(record);
        const pool = r.pools.find((p) => contains(p.cidr, parseCidr(record.cidr)!.ip));
        const used = owner === raw.nodeName ? inUse(plugin.dataDir, plugin.network, record.cidr) : undefined;
        return { cidr: record.cidr, pool: pool?.name, owner, claimed: record.affinity_claim_time, inUse: used };
      });
      await print(rows, ['cidr', 'pool', 'owner', 'claimed', 'inUse'], out);
    }
    etcd.close();
    return 0;
  },
});

export const deleteCommand = command({
  name: 'delete',
  summary: 'a pool (refused while nodes hold its blocks, unless --force), or a node and its blocks, from etcd',
  options: {
    config: CONFIG_FLAG,
    force: { type: 'boolean', help: 'delete a pool even while nodes hold its blocks (they go with it)' },
  },
  positionals: [
    { name: 'pool|node', help: 'what to delete' },
    { name: 'NAME', help: 'its name' },
  ],
  async run(args, [kind, name]) {
    if (!['pool', 'node'].includes(kind)) throw new UsageError(`delete pool NAME or delete node NAME, not "${kind}"`);
    const { etcd } = etcdOf(args);
    const records = await etcd.blockRecords();
    if (kind === 'pool') {
      const kv = await etcd.getResource('IPPool', name);
      if (!kv) throw new Error(`IPPool ${name}: not found`);
      const cidr = parseCidr(JSON.parse(kv.value).spec?.cidr ?? '');
      const held = records.filter((b) => cidr && contains(cidr, parseCidr(b.record.cidr)!.ip));
      if (held.length && !args.force) {
        const owners = [...new Set(held.map((b) => ownerOf(b.record)))].join(', ');
        throw new Error(
          `IPPool ${name}: nodes still hold ${held.length} of its blocks (${owners}); disable it (spec.disabled: true), or --force`,
        );
      }
      await etcd.deleteResource('IPPool', name);
      for (const b of held) await etcd.etcd().delete(b.key);
      process.stdout.write(`IPPool ${name}: deleted${held.length ? `, with ${held.length} block(s)` : ''}\n`);
    } else {
      const existed = await etcd.deleteResource('Node', name);
      const mine = records.filter((b) => ownerOf(b.record) === name);
      for (const b of mine) await etcd.etcd().delete(b.key);
      if (!existed && !mine.length) throw new Error(`Node ${name}: not found`);
      process.stdout.write(`Node ${name}: deleted, ${mine.length} block(s) released\n`);
    }
    etcd.close();
    return 0;
  },
});
