import { command, table } from './command';
import { loadPluginConfig } from './conflist';
import { parseNetConf } from '../../conf/netconf';
import { ClusterContext, NodeMode } from '../../lib/cluster/context';
import { OverlayPlan, PlannedRoute, Unreachable } from '../../lib/cluster/plan';
import { formatCidr } from '../../lib/net/addr';
import { blocksOf, poolOf } from '../../lib/cluster/identity';
import { log } from '../../lib/log';
import { DriftItem, isDrift } from '../../lib/dataplane/drift';

/** `tabby plan`, `tabby reconcile`, `tabby status`, `tabby teardown`: the cluster overlay, for people. */

export { loadPluginConfig } from './conflist';

/** The flag every cluster command takes: the node's conflist. */
export const CONFIG_FLAG = {
  type: 'string',
  arg: 'CONFLIST',
  required: true,
  help: "the node's conflist (or a single tabby config): the cluster file or datastore and nodeName come from its tabby entry",
} as const;

/** The node's cluster context from `--config CONFLIST`. */
export function clusterContextFromFlags(args: { config: string }): ClusterContext {
  const file = args.config;
  const raw = loadPluginConfig(file);
  const conf = parseNetConf(raw, String(raw.cniVersion ?? '1.1.0'));
  if (!conf.cluster) throw new Error(`${file}: the tabby plugin has no "cluster" file or "datastore" configured`);
  log.configure({ file: conf.logFile, level: conf.logLevel });
  return new ClusterContext(conf.cluster);
}

function printPlan(p: OverlayPlan): void {
  const out: string[] = [];
  out.push(`node ${p.node.name}: ${nodeAddresses(p)}, pod MTU ${p.mtu}`);
  for (const v of [p.vxlan, p.vxlanV6]) {
    if (!v) continue;
    out.push(
      `device ${v.device}: VNI ${v.vni}, port ${v.port}, local ${v.local}, parent ${v.parent}, MAC ${v.mac}, address ${v.address ?? '-'}, mtu ${v.mtu}`,
    );
  }
  if (p.ipip) out.push(`device ${p.ipip.device}: address ${p.ipip.address ?? '-'}, mtu ${p.ipip.mtu}`);
  out.push('', 'routes:');
  out.push(
    p.routes.length
      ? table(
          p.routes.map((r) => [
            r.dst,
            r.kind === 'blackhole' ? 'blackhole' : `via ${r.via} dev ${r.dev} onlink`,
            `# ${r.reason}`,
          ]),
        )
      : '  (none)',
  );
  if (p.fdb.length) out.push('', 'fdb:', table(p.fdb.map((f) => [f.mac, `dst ${f.dst}`, `# VTEP of ${f.peer}`])));
  if (p.neighbours.length)
    out.push(
      '',
      'neighbours:',
      table(p.neighbours.map((n) => [n.ip, `lladdr ${n.mac}`, `# tunnel address of ${n.peer}`])),
    );
  if (p.fdbV6.length)
    out.push('', 'fdb (IPv6):', table(p.fdbV6.map((f) => [f.mac, `dst ${f.dst}`, `# IPv6 VTEP of ${f.peer}`])));
  if (p.neighboursV6.length)
    out.push(
      '',
      'neighbours (IPv6):',
      table(p.neighboursV6.map((n) => [n.ip, `lladdr ${n.mac}`, `# IPv6 tunnel address of ${n.peer}`])),
    );
  out.push(
    '',
    `NAT: pools ${p.nat.allPools.join(', ') || '-'}; masquerade from ${p.nat.natPools.join(', ') || '(none)'}; host traffic out of ${p.nat.tunnelDevices.join(', ') || '(no tunnel)'}`,
  );
  for (const u of p.unreachable) out.push(`unreachable: ${u.peer} ${u.block}: ${u.reason}`);
  for (const w of p.warnings) out.push(`warning: ${w}`);
  process.stdout.write(out.join('\n') + '\n');
}

/** `192.168.10.11/24 on eth0, 2001:db8::11/64 on eth0`: the node's underlay addresses of each family. */
function nodeAddresses(p: OverlayPlan): string {
  const v4 = p.node.address ? `${p.node.address} on ${p.node.parent}` : undefined;
  const v6 = p.node.address6 ? `${p.node.address6} on ${p.node.parent6}` : undefined;
  return [v4, v6].filter(Boolean).join(', ') || `no address on ${p.node.parent}`;
}

/** How a peer is reached in one address family: the path of its first route, or why it is not. */
function familyPath(routes: PlannedRoute[], cannot: Unreachable[], address: string) {
  return {
    address,
    path: routes[0]?.kind ?? 'unreachable',
    encapsulated: routes.some((x) => x.kind === 'vxlan' || x.kind === 'ipip'),
    blocks: [...routes.map((x) => x.dst), ...cannot.map((u) => u.block)],
    reason: routes[0]?.reason ?? cannot[0]?.reason ?? 'no blocks',
  };
}

const isV6 = (cidr: string): boolean => cidr.includes(':');

/** What a reconcile would do about each item that is not in sync. */
const ACTION: Record<DriftItem['state'], string> = {
  'in sync': 'keep',
  missing: 'add',
  different: 'change',
  foreign: 'remove',
};

/** The items not in sync, one line each (another program's route is left alone, and says so). */
function driftLines(items: DriftItem[], verb: (i: DriftItem) => string): string[] {
  return items.filter(isDrift).map((i) => `  ${verb(i)} ${i.kind} ${i.what}${i.detail ? `  # ${i.detail}` : ''}`);
}

const leftAlone = (i: DriftItem): boolean => i.state === 'foreign' && /left alone/.test(i.detail ?? '');

export const planCommand = command({
  name: 'plan',
  summary: 'what tabby would install on this node, and why (changes nothing)',
  options: {
    config: CONFIG_FLAG,
    json: { type: 'boolean', help: 'the whole plan (or with --diff, the items not in sync) as JSON, for scripts' },
    diff: { type: 'boolean', help: 'only what `tabby reconcile` would change in the kernel' },
  },
  async run(args) {
    const ctx = clusterContextFromFlags(args);
    if (args.diff) {
      const { items } = await ctx.drift();
      if (args.json) process.stdout.write(JSON.stringify(items.filter(isDrift), null, 2) + '\n');
      else {
        const lines = driftLines(items, (i) => (leftAlone(i) ? 'leave' : ACTION[i.state]));
        process.stdout.write(lines.length ? `reconcile would:\n${lines.join('\n')}\n` : 'nothing to change\n');
      }
      return 0;
    }
    const plan = await ctx.plan();
    if (args.json) process.stdout.write(JSON.stringify(plan, null, 2) + '\n');
    else printPlan(plan);
    return 0;
  },
});

export const teardownCommand = command({
  name: 'teardown',
  summary: "take this node's overlay down on purpose (tunnels, routes to other nodes, NAT)",
  options: { config: CONFIG_FLAG },
  details: 'Pods keep their local wiring. Stop the agent first: it would bring the overlay back.',
  async run(args) {
    const { changes } = await clusterContextFromFlags(args).teardown();
    process.stdout.write(
      changes.length ? changes.map((c) => `changed: ${c}`).join('\n') + '\n' : 'nothing to take down\n',
    );
    return 0;
  },
});

export const reconcileCommand = command({
  name: 'reconcile',
  summary: 'apply the cluster now on this node: nodes joined or left, pools edited',
  options: { config: CONFIG_FLAG, json: { type: 'boolean', help: 'the changes as JSON, for scripts' } },
  async run(args) {
    const { changes, nat } = await clusterContextFromFlags(args).reconcile();
    if (args.json) process.stdout.write(JSON.stringify({ changes, nat }) + '\n');
    else
      process.stdout.write(
        changes.length
          ? changes.map((c) => `changed: ${c}`).join('\n') + `\nNAT via ${nat}\n`
          : `nothing to change (NAT via ${nat})\n`,
      );
    return 0;
  },
});

function groupBy<T>(items: T[], key: (t: T) => string | undefined): Map<string | undefined, T[]> {
  const out = new Map<string | undefined, T[]>();
  for (const t of items) {
    const k = key(t);
    const list = out.get(k);
    if (list) list.push(t);
    else out.set(k, [t]);
  }
  return out;
}

const MODE_TEXT: Record<NodeMode, string> = {
  agent: 'agent (tabby agent keeps the overlay; pod starts read its snapshot)',
  'agent-catching-up': 'agent, catching up with a datastore change',
  'no-agent': 'no agent (each pod start brings the overlay up to date itself)',
};

export const statusCommand = command({
  name: 'status',
  summary: 'this node, its pools and blocks, its peers and how each is reached, and the kernel against the plan',
  options: { config: CONFIG_FLAG, json: { type: 'boolean', help: 'as JSON, for scripts' } },
  async run(args) {
    const ctx = clusterContextFromFlags(args);
    const r = await ctx.resources();
    const { plan, items } = await ctx.drift();
    const routesOf = groupBy(plan.routes, (x) => x.peer);
    const unreachableOf = groupBy(plan.unreachable, (u) => u.peer);
    const nodeOf = new Map(r.nodes.map((n) => [n.name, n]));
    const peers = [...new Set(r.affinities.map((a) => a.node))]
      .filter((n) => n !== plan.node.name)
      .sort()
      .map((name) => {
        const routes = routesOf.get(name) ?? [];
        const cannot = unreachableOf.get(name) ?? [];
        const node = nodeOf.get(name);
        const address6 = node?.ipv6Address ? formatCidr(node.ipv6Address) : '-';
        const v6Routes = routes.filter((x) => isV6(x.dst));
        const v6Cannot = cannot.filter((u) => isV6(u.block));
        const hasV4 = routes.length + cannot.length > v6Routes.length + v6Cannot.length;
        return {
          name,
          address: node?.ipv4Address ? formatCidr(node.ipv4Address) : hasV4 ? '-' : address6,
          path: routes[0]?.kind ?? 'unreachable',
          encapsulated: routes.some((x) => x.kind === 'vxlan' || x.kind === 'ipip'),
          blocks: [...routes.map((x) => x.dst), ...cannot.map((u) => u.block)],
          reason: routes[0]?.reason ?? cannot[0]?.reason ?? 'no blocks',
          // each family apart, when the peer has IPv6 blocks: a dual-stack peer has a path of each
          ...(v6Routes.length + v6Cannot.length
            ? {
                ...(hasV4
                  ? {
                      ipv4: familyPath(
                        routes.filter((x) => !isV6(x.dst)),
                        cannot.filter((u) => !isV6(u.block)),
                        node?.ipv4Address ? formatCidr(node.ipv4Address) : '-',
                      ),
                    }
                  : {}),
                ipv6: familyPath(v6Routes, v6Cannot, address6),
              }
            : {}),
        };
      });
    const status = {
      mode: await ctx.mode(),
      node: {
        ...plan.node,
        vxlan: plan.vxlan && { mac: plan.vxlan.mac, address: plan.vxlan.address },
        vxlanV6: plan.vxlanV6 && { mac: plan.vxlanV6.mac, address: plan.vxlanV6.address },
        ipip: plan.ipip && { address: plan.ipip.address },
        mtu: plan.mtu,
      },
      datastore: ctx.datastore.description,
      pools: r.pools.map((p) => ({
        name: p.name,
        cidr: formatCidr(p.cidr),
        vxlanMode: p.vxlanMode,
        ipipMode: p.ipipMode,
        natOutgoing: p.natOutgoing,
        disabled: p.disabled,
        blockSize: p.blockSize,
      })),
      blocks: blocksOf(r, plan.node.name).map((b) => ({ cidr: formatCidr(b.cidr), pool: poolOf(r, b.cidr)?.name })),
      peers,
      dataplane: items,
    };
    if (args.json) {
      process.stdout.write(JSON.stringify(status, null, 2) + '\n');
      return 0;
    }
    const out = [
      `node ${plan.node.name}: ${nodeAddresses(plan)} (datastore: ${status.datastore})`,
      `  mode: ${MODE_TEXT[status.mode]}`,
      ...(plan.vxlan ? [`  VXLAN: VTEP ${plan.vxlan.mac}, tunnel address ${plan.vxlan.address ?? '-'}`] : []),
      ...(plan.vxlanV6
        ? [`  VXLAN (IPv6): VTEP ${plan.vxlanV6.mac}, tunnel address ${plan.vxlanV6.address ?? '-'}`]
        : []),
      ...(plan.ipip ? [`  IPIP: tunnel address ${plan.ipip.address ?? '-'}`] : []),
      `  pod MTU ${plan.mtu}`,
      '',
      'pools:',
      table([
        ['NAME', 'CIDR', 'VXLAN', 'IPIP', 'NAT', 'DISABLED'],
        ...status.pools.map((p) => [
          p.name,
          p.cidr,
          p.vxlanMode,
          p.ipipMode,
          String(p.natOutgoing),
          String(p.disabled),
        ]),
      ]),
      '',
      `blocks of ${plan.node.name}: ${status.blocks.map((b) => `${b.cidr} (${b.pool})`).join(', ') || '(none)'}`,
      '',
      'peers:',
      peers.length
        ? table([
            ['PEER', 'ADDRESS', 'PATH', 'ENCAPSULATED', 'WHY'],
            // one row per family: a dual-stack peer shows its IPv4 path and its IPv6 one
            ...peers.flatMap((p) =>
              (p.ipv6 ? [p.ipv4, p.ipv6] : [p]).flatMap((f) =>
                f ? [[p.name, f.address, f.path, f.encapsulated ? 'yes' : 'no', f.reason]] : [],
              ),
            ),
          ])
        : '  (none)',
      '',
      ...dataplaneSummary(items),
    ];
    process.stdout.write(out.join('\n') + '\n');
    return 0;
  },
});

/** The kernel against the plan: a count of what is in sync, then each item that is not. */
function dataplaneSummary(items: DriftItem[]): string[] {
  const inSync = items.filter((i) => !isDrift(i));
  const counts = new Map<string, number>();
  for (const i of inSync) counts.set(i.kind, (counts.get(i.kind) ?? 0) + 1);
  const drift = driftLines(items, (i) => i.state.padEnd(9));
  return [
    `dataplane: ${drift.length ? `${drift.length} item(s) not in sync` : 'in sync'}; in sync: ${[...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'nothing'}`,
    ...drift,
    ...(drift.some((l) => !/left alone/.test(l))
      ? ['  (`tabby plan --diff` shows what `tabby reconcile` would change)']
      : []),
  ];
}
