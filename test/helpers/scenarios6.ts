// The IPv6 scenarios of issue #11 (IPv6 and dual stack across nodes), as plain functions returning named
// checks like scenarios.ts: a pool of each mode on an IPv6-only or dual-stack underlay, every pod pair on
// each family by ping (full pod MTU, don't-fragment) and TCP, the tunnel device's own counters, the
// underlay's counters, and NAT towards an external IPv6 host.
import {
  clusterYaml6,
  DISABLED_OTHER_POOL,
  DISABLED_OTHER_POOL6,
  EXTERNAL_IP,
  EXTERNAL_IP6,
  OTHER_POOL_IP,
  OTHER_POOL_IP6,
  Pod,
  SimCluster,
  SimNode,
  vxlanPool,
  vxlanPool6,
} from './cluster';
import type { Check, Mode } from './scenarios';

function checker(): { checks: Check[]; check: (name: string, ok: boolean, detail?: string) => void } {
  const checks: Check[] = [];
  let last = Date.now();
  const check = (name: string, ok: boolean, detail = ''): void => {
    checks.push({ name, ok, detail, ms: Date.now() - last });
    last = Date.now();
  };
  return { checks, check };
}

const onLan = (n: SimNode): boolean => n.name === 'node-a' || n.name === 'node-b';

/** Whether traffic between two nodes' pods flows, and encapsulated, under a pool mode (both subnets /24, /64). */
export function expectedPath6(mode: Mode, a: SimNode, b: SimNode): { reachable: boolean; encapsulated: boolean } {
  if (mode === 'Always') return { reachable: true, encapsulated: true };
  if (onLan(a) && onLan(b)) return { reachable: true, encapsulated: false };
  return mode === 'CrossSubnet' ? { reachable: true, encapsulated: true } : { reachable: false, encapsulated: false };
}

/** Pod MTU: the host's 1500 less the largest overhead in use (IPv6 VXLAN 70, IPv4 VXLAN 50). */
export const podMtu6 = (v6: Mode, v4?: Mode): number => 1500 - (v6 !== 'Never' ? 70 : v4 && v4 !== 'Never' ? 50 : 0);

export interface Scenario6 {
  /** The IPv6 pool's mode. */
  v6: Mode;
  /** With an IPv4 pool too (a dual-stack underlay): its mode. */
  v4?: Mode;
  natOutgoing?: boolean;
  /** Check NAT towards the external host (default true; a mode that changes nothing for NAT may skip it). */
  natChecks?: boolean;
  /** Check every pod pair (default true; a run about NAT alone may skip them). */
  pairs?: boolean;
  /** Prefix of the pod names. */
  tag: string;
}

/**
 * One IPv6 pool (and, dual stack, one IPv4 pool) over the cluster's underlay: a pod per node with an
 * address of each family, every pair and family by ping and TCP at the pod MTU, encapsulation from
 * vxlan-v6.tabby's (and vxlan.tabby's) packet counters and the underlay's, then NAT of each family
 * towards the external host and never towards a disabled pool. Removes its pods at the end.
 */
export async function ipv6PoolScenario(c: SimCluster, o: Scenario6): Promise<Check[]> {
  const { checks, check } = checker();
  const nat = o.natOutgoing ?? true;
  const dual = o.v4 !== undefined;
  c.writeClusterFile(
    clusterYaml6({
      v6: vxlanPool6(o.v6, nat),
      v4: dual ? vxlanPool(o.v4!, nat) : undefined,
      underlay: dual ? 'dual' : 'only',
      extra: [DISABLED_OTHER_POOL6, ...(dual ? [DISABLED_OTHER_POOL] : [])].join('\n---\n'),
    }),
  );
  const pods: Pod[] = [];
  try {
    await c.countUnderlay();
    const added = await Promise.allSettled(c.nodes.map((n) => c.addPod(n.name, `${o.tag}-${n.name.slice(-1)}`)));
    for (const r of added) if (r.status === 'fulfilled') pods.push(r.value);
    for (const r of added) if (r.status === 'rejected') throw r.reason;
    const mtu = podMtu6(o.v6, o.v4);
    for (const p of pods) {
      check(
        `${p.name}: MTU ${mtu}`,
        p.result.interfaces?.[1]?.mtu === mtu,
        `result says ${p.result.interfaces?.[1]?.mtu}`,
      );
      const fams = (p.result.ips as { address: string }[]).map((x) => (x.address.includes(':') ? 6 : 4));
      check(
        `${p.name}: ${dual ? 'one address of each family' : 'one IPv6 address'}`,
        JSON.stringify(fams) === JSON.stringify(dual ? [4, 6] : [6]),
        JSON.stringify(p.result.ips),
      );
    }
    const families = [
      { fam: 6, mode: o.v6, dev: 'vxlan-v6.tabby', addr: (p: Pod) => p.ip6!, header: 48 },
      ...(dual ? [{ fam: 4, mode: o.v4!, dev: 'vxlan.tabby', addr: (p: Pod) => p.ip, header: 28 }] : []),
    ];
    for (const a of o.pairs === false ? [] : pods) {
      for (const b of pods) {
        if (a === b) continue;
        const want = expectedPath6(o.v6, a.node, b.node);
        for (const f of families) {
          const w = f.fam === 6 ? want : expectedPath6(f.mode, a.node, b.node);
          const pair = `IPv${f.fam} ${a.name} -> ${b.name}`;
          const before = await c.txPackets(a.node.ns, f.dev);
          const size = mtu - f.header;
          // an answer not expected is waited for one second, once
          const reachable = w.reachable
            ? await c.reachable(a.ns, f.addr(b), size)
            : (await c.ping(a.ns, f.addr(b), size, 1)).code === 0;
          const after = await c.txPackets(a.node.ns, f.dev);
          check(
            `${pair}: ${w.reachable ? 'reachable' : 'unreachable'} by ping (DF, ${size} bytes)`,
            reachable === w.reachable,
            `reachable=${reachable}`,
          );
          if (!w.reachable) continue;
          check(
            `${pair}: ${w.encapsulated ? `through ${f.dev}` : 'not encapsulated'}`,
            after > before === w.encapsulated,
            `${f.dev} tx packets ${before} -> ${after}`,
          );
          const got = await c.tcpTransfer(a.ns, b.ns, f.addr(b), 200_000);
          check(`${pair}: TCP transfer of 200000 bytes`, got === 200_000, `received ${got}`);
        }
      }
    }
    // The IPv6 underlay's view of the traffic above.
    for (const a of o.pairs === false ? [] : pods) {
      const counts = await c.underlayCounts(a.node);
      for (const b of pods) {
        if (a === b) continue;
        const want = expectedPath6(o.v6, a.node, b.node);
        const n = counts.get(b.node.name);
        const [vx, plain] = [n?.vxlan6 ?? 0, n?.plain6 ?? 0];
        const detail = `${a.node.name} eth0 -> ${b.node.name}: ${vx} IPv6 VXLAN, ${plain} plain IPv6 pod packets`;
        const pair = `IPv6 underlay ${a.node.name} -> ${b.node.name}`;
        if (want.encapsulated) check(`${pair}: VXLAN over IPv6 only`, vx > 0 && plain === 0, detail);
        else if (want.reachable) check(`${pair}: plain pod packets only`, plain > 0 && vx === 0, detail);
        else check(`${pair}: nothing encapsulated`, vx === 0, detail);
      }
    }
    for (const p of o.natChecks === false ? [] : pods) {
      const seen = await c.sourceSeenBy(p.ns, EXTERNAL_IP6);
      const want = nat ? p.node.ip6 : p.ip6;
      check(`${p.name} -> external IPv6 host: ${nat ? `NATed to ${want}` : 'not NATed'}`, seen === want, `saw ${seen}`);
      const other = await c.sourceSeenBy(p.ns, OTHER_POOL_IP6);
      check(`${p.name} -> disabled IPv6 pool address: never NATed`, other === p.ip6, `saw ${other ?? 'nothing'}`);
      if (dual) {
        const seen4 = await c.sourceSeenBy(p.ns, EXTERNAL_IP);
        check(`${p.name} -> external IPv4 host: NATed to ${p.node.ip}`, !nat || seen4 === p.node.ip, `saw ${seen4}`);
        const other4 = await c.sourceSeenBy(p.ns, OTHER_POOL_IP);
        check(`${p.name} -> disabled IPv4 pool address: never NATed`, other4 === p.ip, `saw ${other4}`);
      }
    }
  } finally {
    const dels = await Promise.all(pods.map((p) => c.delPod(p)));
    dels.forEach((r, i) => check(`DEL ${pods[i].name}`, r.code === 0, r.stdout + r.stderr));
  }
  return checks;
}

/**
 * An IPv6 pool switched CrossSubnet -> Never -> Always with `tabby reconcile` on every node,
 * while pods made at the start stay: after each switch node-a's route to node-b's block and node-c's is
 * the mode's (tunnel or direct, or none), vxlan-v6.tabby exists only when a mode needs it, and the pods
 * reach each other wherever the mode says.
 */
export async function ipv6ModeSwitchScenario(c: SimCluster): Promise<Check[]> {
  const { checks, check } = checker();
  const write = (mode: Mode) => c.writeClusterFile(clusterYaml6({ v6: vxlanPool6(mode), underlay: 'only' }));
  write('CrossSubnet');
  const pods = await Promise.all([
    c.addPod('node-a', 'sw6-a'),
    c.addPod('node-b', 'sw6-b'),
    c.addPod('node-c', 'sw6-c'),
  ]);
  const [pa, pb, pc] = pods;
  const a = c.node('node-a');
  try {
    for (const mode of ['Never', 'Always'] as Mode[]) {
      write(mode);
      const runs = await Promise.all(c.nodes.map((n) => c.cli(n, 'reconcile', '--config', n.conflist)));
      runs.forEach((r, i) => check(`${mode}: reconcile on ${c.nodes[i].name}`, r.code === 0, r.stdout + r.stderr));
      const routes = await c.tabbyRoutes6(a);
      const toB = routes.find((r) => r.dst === 'fd00:10::200/122');
      const toC = routes.find((r) => r.dst === 'fd00:10::300/122');
      const wantB = mode === 'Always' ? 'vxlan-v6.tabby' : 'eth0';
      check(`${mode}: node-a routes node-b's block on ${wantB}`, toB?.dev === wantB, JSON.stringify(toB));
      check(
        `${mode}: node-a routes node-c's block ${mode === 'Never' ? 'not at all' : 'on vxlan-v6.tabby'}`,
        mode === 'Never' ? toC === undefined : toC?.dev === 'vxlan-v6.tabby',
        JSON.stringify(toC),
      );
      const dev = await c.linkExists(a, 'vxlan-v6.tabby');
      check(`${mode}: vxlan-v6.tabby ${mode === 'Never' ? 'is gone' : 'exists'}`, dev === (mode !== 'Never'), '');
      // the pods keep the MTU they were made with (CrossSubnet: 1430)
      check(`${mode}: old pods a -> b`, await c.reachable(pa.ns, pb.ip6!, podMtu6('Always') - 48), '');
      const farOk =
        mode === 'Never' ? (await c.ping(pa.ns, pc.ip6!, 56, 1)).code === 0 : await c.reachable(pa.ns, pc.ip6!);
      check(
        `${mode}: old pods a -> c ${mode === 'Never' ? 'unreachable' : 'reachable'}`,
        farOk === (mode !== 'Never'),
        '',
      );
    }
  } finally {
    await Promise.all(pods.map((p) => c.delPod(p)));
  }
  return checks;
}
