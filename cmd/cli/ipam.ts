import * as fs from 'node:fs';
import * as path from 'node:path';
import { command, CommandGroup, table, UsageError, Values } from './command';
import { ipamStoreOf, loadPluginConfig } from './conflist';
import { clusterContextFromFlags } from './cluster';
import { DEFAULT_DATA_DIR } from '../../ipam/config';
import { Cidr, contains, formatIP, parseIP } from '../../lib/net/addr';
import { DiskStore } from '../../ipam/disk-store';
import { Reservation } from '../../ipam/store';
import { hostVethName, listHostVeths } from '../../lib/dataplane/veth';

/**
 * `tabby ipam list|release|check`: the reservations in a data directory (host-local's format, so
 * host-local's own show up too), for people (clear text) and scripts (--json).
 */

interface Opts {
  dataDir: string;
  network?: string;
  json: boolean;
  /** The flags that chose the store, as given: repeated in the commands `check` suggests. */
  given: string[];
  /** The conflist, when given: on a cluster node, `check` judges only this node's blocks. */
  config?: string;
}

const STORE_FLAGS = {
  config: {
    type: 'string',
    arg: 'CONFLIST',
    help: "read the data directory and network name from the conflist's tabby entry (its ipam.dataDir and name)",
  },
  'data-dir': {
    type: 'string',
    arg: 'DIR',
    help: `the IPAM data directory (default ${DEFAULT_DATA_DIR}, or the conflist's)`,
  },
  network: { type: 'string', arg: 'N', help: "only this network (default: every one, or the conflist's)" },
  json: { type: 'boolean', help: 'as JSON, for scripts' },
} as const;

type StoreFlags = Values<typeof STORE_FLAGS>;

/** A word as a shell reads it back (paths in the suggested commands). */
const shellWord = (w: string): string => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

function storeOf(f: StoreFlags): Opts {
  const fromConf = f.config !== undefined ? ipamStoreOf(f.config) : undefined;
  const dataDir = f['data-dir'] ?? fromConf?.dataDir ?? DEFAULT_DATA_DIR;
  if (!path.isAbsolute(dataDir)) throw new UsageError(`--data-dir must be an absolute path, got "${dataDir}"`);
  const given: string[] = [];
  if (f.config !== undefined) given.push('--config', f.config);
  if (f['data-dir'] !== undefined) given.push('--data-dir', f['data-dir']);
  if (f.network !== undefined) given.push('--network', f.network);
  return { dataDir, network: f.network ?? fromConf?.network, json: f.json, given, config: f.config };
}

/** The networks of a data directory: each subdirectory is one. */
function networks(o: Opts): string[] {
  if (o.network !== undefined) return [o.network];
  try {
    return fs
      .readdirSync(o.dataDir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read data directory ${o.dataDir}: ${(e as Error).message}`);
  }
}

interface Row extends Reservation {
  network: string;
}

const ipOrder = (a: string, b: string): number => {
  const [x, y] = [parseIP(a), parseIP(b)];
  if (!x || !y) return a.localeCompare(b);
  return x.family - y.family || (x.value < y.value ? -1 : x.value > y.value ? 1 : 0);
};

function reservations(o: Opts): Row[] {
  return networks(o).flatMap((network) =>
    new DiskStore(o.dataDir, network)
      .list(true)
      .map((r) => ({ network, ...r }))
      .sort((a, b) => ipOrder(a.ip, b.ip)),
  );
}

/** "42s", "3m12s", "2h05m", "3d04h". */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor((s % 86400) / 3600))}h`;
}

const now = () => Date.now();

function toJson(r: Row, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    network: r.network,
    ip: r.ip,
    containerId: r.containerId,
    ifname: r.ifname,
    ...(r.since !== undefined
      ? { since: new Date(r.since).toISOString(), ageSeconds: Math.floor((now() - r.since) / 1000) }
      : {}),
    ...extra,
  };
}

const HEADER = ['NETWORK', 'IP', 'CONTAINER', 'INTERFACE', 'AGE'];
const cells = (r: Row): string[] => [
  r.network,
  r.ip,
  r.containerId || '-',
  r.ifname || '-',
  r.since !== undefined ? formatAge(now() - r.since) : '-',
];
const where = (o: Opts): string => (o.network !== undefined ? `network ${o.network} of ${o.dataDir}` : o.dataDir);

function list(o: Opts): number {
  const rows = reservations(o);
  if (o.json) process.stdout.write(JSON.stringify(rows.map((r) => toJson(r))) + '\n');
  else if (rows.length === 0) process.stdout.write(`no reservations in ${where(o)}\n`);
  else process.stdout.write(table([HEADER, ...rows.map(cells)]) + '\n');
  return 0;
}

async function release(o: Opts, given: string): Promise<number> {
  const addr = parseIP(given);
  if (!addr) throw new UsageError(`"${given}" is not an IP address`);
  const ip = formatIP(addr); // host-local's file name for it
  const holders = networks(o).filter((n) => fs.existsSync(path.join(o.dataDir, n, ip)));
  if (holders.length === 0) throw new Error(`${ip} is not reserved in ${where(o)}`);
  if (holders.length > 1)
    throw new Error(`${ip} is reserved in networks ${holders.join(', ')}: say which with --network`);
  const network = holders[0];
  const store = new DiskStore(o.dataDir, network);
  const gone = await store.withLock(() => {
    const r = store.list(true).find((x) => x.ip === ip);
    return r && store.release(ip) ? { network, ...r } : undefined;
  });
  if (!gone) throw new Error(`${ip} is not reserved in network ${network} of ${o.dataDir} (released meanwhile)`);
  const veth = gone.ifname ? hostVethName(gone.containerId, gone.ifname) : undefined;
  const live = veth !== undefined && (await listHostVeths()).some((v) => v.name === veth);
  if (o.json) {
    process.stdout.write(
      JSON.stringify({ released: toJson(gone, veth ? { hostVeth: veth, hostVethExists: live } : {}) }) + '\n',
    );
  } else {
    process.stdout.write(
      `released ${ip} (container ${gone.containerId || '-'}, interface ${gone.ifname || '-'}) in network ${network}\n`,
    );
  }
  if (live)
    process.stderr.write(
      `warning: host veth ${veth} of ${gone.containerId}/${gone.ifname} still exists: its pod may still use ${ip}\n`,
    );
  return 0;
}

/** Reservations whose container is gone: no host veth for the attachment in this network namespace. */
async function check(o: Opts): Promise<number> {
  const hostVeths = await listHostVeths();
  const veths = new Set(hostVeths.map((v) => v.name));
  // Without --network, only networks a tabby veth names are judged: another plugin's reservations
  // (bridge + host-local, say) have no tabby veth and are not "gone".
  const ours = new Set(hostVeths.flatMap((v) => (v.owner ? [v.owner.network] : [])));
  // On a cluster node only reservations in this node's blocks are its own to judge (a data directory
  // may be shared); the others are listed as not checked.
  const blocks = await nodeBlocks(o);
  const all = reservations(o);
  const mine = blocks ? all.filter((r) => blocks.some((b) => inBlock(b, r.ip))) : all;
  const foreign = all.length - mine.length;
  const rows = o.network ? mine : mine.filter((r) => ours.has(r.network));
  const skipped = [...new Set(all.filter((r) => !rows.includes(r)).map((r) => r.network))];
  const judged = rows.map((r) => {
    const veth = r.ifname ? hostVethName(r.containerId, r.ifname) : undefined;
    return { r, veth, gone: veth !== undefined && !veths.has(veth) };
  });
  const gone = judged.filter((j) => j.gone);
  const unknown = judged.filter((j) => j.veth === undefined);
  if (o.json) {
    process.stdout.write(
      JSON.stringify({
        checked: rows.length,
        gone: gone.map((j) => toJson(j.r, { hostVeth: j.veth })),
        unknown: unknown.map((j) => toJson(j.r, { reason: 'legacy reservation without an interface name' })),
        notChecked: skipped,
        ...(blocks ? { outsideNodeBlocks: foreign } : {}),
      }) + '\n',
    );
  } else {
    const out: string[] = [];
    if (gone.length === 0) out.push(`${rows.length} reservation(s) in ${where(o)}, none whose container is gone\n`);
    else {
      out.push(
        `${gone.length} of ${rows.length} reservation(s) in ${where(o)} belong to containers that are gone (no host veth):\n`,
      );
      out.push(table([[...HEADER, 'HOST VETH'], ...gone.map((j) => [...cells(j.r), j.veth!])]) + '\n');
      out.push(
        `release them with \`${releaseAdvice(
          o,
          gone.map((j) => j.r.network),
        )}\`, or have the runtime run CNI GC\n`,
      );
    }
    for (const j of unknown)
      out.push(`cannot tell: ${j.r.ip} in ${j.r.network} (container ${j.r.containerId || '-'}) names no interface\n`);
    for (const n of skipped)
      out.push(`not checked: network ${n} (no tabby interface names it; pass --network ${n} to check it)\n`);
    if (foreign) out.push(`not checked: ${foreign} reservation(s) outside this node's blocks\n`);
    process.stdout.write(out.join(''));
  }
  return gone.length ? 1 : 0;
}

/** This node's blocks when the conflist names a cluster (file or etcd); undefined otherwise. */
async function nodeBlocks(o: Opts): Promise<Cidr[] | undefined> {
  if (o.config === undefined) return undefined;
  const raw = loadPluginConfig(o.config);
  if (raw.cluster === undefined && raw.datastore === undefined) return undefined;
  return (await clusterContextFromFlags({ config: o.config }).nodeIpam({ lastGood: true })).blocks;
}

const inBlock = (b: Cidr, ip: string): boolean => {
  const a = parseIP(ip);
  return a !== undefined && contains(b, a);
};

/** The release command for these reservations, with the flags that chose the store as they were given. */
function releaseAdvice(o: Opts, networks: string[]): string {
  const nets = [...new Set(networks)];
  // the network is known when --network or the conflist named it; else the one the reservations are in
  const network = o.network !== undefined ? [] : ['--network', nets.length === 1 ? nets[0] : 'N'];
  return ['tabby', 'ipam', 'release', 'IP', ...o.given, ...network].map(shellWord).join(' ');
}

export const ipamCommand: CommandGroup = {
  name: 'ipam',
  summary: "the IPAM reservations of this node's data directory",
  subcommands: [
    command({
      name: 'ipam list',
      summary: 'reservations: network, IP, container, interface, age',
      options: STORE_FLAGS,
      run: (f) => list(storeOf(f)),
    }),
    command({
      name: 'ipam release',
      summary: 'release one reservation, under the IPAM lock',
      options: STORE_FLAGS,
      positionals: [{ name: 'IP', help: 'the reserved address to release' }],
      run: (f, [ip]) => release(storeOf(f), ip),
    }),
    command({
      name: 'ipam check',
      summary: 'reservations whose container is gone (no host veth); exit 1 if any',
      options: STORE_FLAGS,
      run: (f) => check(storeOf(f)),
    }),
  ],
};
