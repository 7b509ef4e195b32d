import {
  clusterYaml,
  DISABLED_OTHER_POOL,
  EXTERNAL_IP,
  ipipPool,
  OTHER_POOL_IP,
  PingSpan,
  Pod,
  SimCluster,
  vxlanPool,
} from './cluster';

/**
 * The multi-node scenarios of issue "IP pools across nodes", as plain functions returning named checks,
 * so the same code runs under vitest on this machine (VXLAN) and inside the qemu guest (IPIP), where
 * test/qemu/multinode-runner.ts prints them as result lines.
 *
 * A knob for slow machines (the qemu guest's control run), from the environment: TABBY_NAT_CHECK=first
 * makes the NAT checks for the first pod only, not for every pod.
 */

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** Milliseconds since the scenario's previous check (or its start). */
  ms?: number;
}

/** A list of checks and the function adding to it, timing each. */
function checker(): { checks: Check[]; check: (name: string, ok: boolean, detail?: string) => void } {
  const checks: Check[] = [];
  let last = Date.now();
  const check = (name: string, ok: boolean, detail = ''): void => {
    const now = Date.now();
    checks.push({ name, ok, detail, ms: now - last });
    last = now;
  };
  return { checks, check };
}

export type Encap = 'vxlan' | 'ipip';
export type Mode = 'Always' | 'CrossSubnet' | 'Never';

const sameSubnet = (a: Pod, b: Pod): boolean =>
  a.node.ip.startsWith('192.168.10.') && b.node.ip.startsWith('192.168.10.');
const tunnelDev = (encap: Encap): string => (encap === 'vxlan' ? 'vxlan.tabby' : 'tunl0');

/** Whether traffic between two pods is encapsulated, and whether it flows at all, under a pool mode. */
export function expectedPath(mode: Mode, a: Pod, b: Pod): { reachable: boolean; encapsulated: boolean } {
  if (mode === 'Always') return { reachable: true, encapsulated: true };
  if (sameSubnet(a, b)) return { reachable: true, encapsulated: false };
  return mode === 'CrossSubnet' ? { reachable: true, encapsulated: true } : { reachable: false, encapsulated: false };
}

/**
 * One pool of `encap` in `mode`: a pod per node, then every pair by ping (payload up to the pod MTU with
 * don't-fragment) and by TCP, the tunnel counters, and NAT towards the external host and another pool.
 * Removes its pods at the end.
 */
export async function poolModeScenario(c: SimCluster, encap: Encap, mode: Mode, natOutgoing = true): Promise<Check[]> {
  const { checks, check } = checker();
  const pool = encap === 'vxlan' ? vxlanPool(mode, natOutgoing) : ipipPool(mode, natOutgoing);
  c.writeClusterFile(clusterYaml(pool, DISABLED_OTHER_POOL));
  const pods: Pod[] = [];
  try {
    await c.countUnderlay();
    // Nodes are independent: their pods start at once, as they would (and the qemu guest, slow to start processes, gains a lot).
    const added = await Promise.allSettled(
      c.nodes.map((n) => c.addPod(n.name, `${encap}-${mode}-${n.name.slice(-1)}`.toLowerCase())),
    );
    for (const r of added) if (r.status === 'fulfilled') pods.push(r.value);
    for (const r of added) if (r.status === 'rejected') throw r.reason;
    const wantMtu = 1500 - (mode === 'Never' ? 0 : encap === 'vxlan' ? 50 : 20);
    for (const p of pods)
      check(
        `${p.name}: MTU ${wantMtu}`,
        p.result.interfaces?.[1]?.mtu === wantMtu,
        `result says ${p.result.interfaces?.[1]?.mtu}`,
      );
    const dev = tunnelDev(encap);
    for (const a of pods) {
      for (const b of pods) {
        if (a === b) continue;
        const want = expectedPath(mode, a, b);
        const pair = `${a.name} -> ${b.name}`;
        const before = await c.txPackets(a.node.ns, dev);
        const reachable = await c.reachable(a.ns, b.ip, wantMtu - 28, want.reachable ? 5 : 2);
        const after = await c.txPackets(a.node.ns, dev);
        check(
          `${pair}: ${want.reachable ? 'reachable' : 'unreachable'} by ping (DF, ${wantMtu - 28} bytes)`,
          reachable === want.reachable,
          `reachable=${reachable}`,
        );
        if (want.reachable) {
          check(
            `${pair}: ${want.encapsulated ? 'encapsulated' : 'not encapsulated'}`,
            after > before === want.encapsulated,
            `${dev} tx packets ${before} -> ${after}`,
          );
          const got = await c.tcpTransfer(a.ns, b.ns, b.ip, 200_000);
          check(`${pair}: TCP transfer of 200000 bytes`, got === 200_000, `received ${got}`);
        }
      }
    }
    // The underlay's own view of all the traffic above, per node pair and direction.
    const other: Encap = encap === 'vxlan' ? 'ipip' : 'vxlan';
    const wire = encap === 'vxlan' ? 'VXLAN (UDP 4789)' : 'IPIP (protocol 4)';
    for (const a of pods) {
      const counts = await c.underlayCounts(a.node);
      for (const b of pods) {
        if (a === b) continue;
        const want = expectedPath(mode, a, b);
        const n = counts.get(b.node.name) ?? { ipip: 0, vxlan: 0, plain: 0 };
        const detail = `${a.node.name} eth0 -> ${b.node.name}: ${n.ipip} IPIP, ${n.vxlan} VXLAN, ${n.plain} plain pod packets`;
        const pair = `underlay ${a.node.name} -> ${b.node.name}`;
        if (want.encapsulated) check(`${pair}: ${wire} only`, n[encap] > 0 && n[other] === 0 && n.plain === 0, detail);
        else if (want.reachable)
          check(`${pair}: plain pod packets only`, n.plain > 0 && n.ipip === 0 && n.vxlan === 0, detail);
        else check(`${pair}: nothing encapsulated`, n.ipip === 0 && n.vxlan === 0, detail);
      }
    }
    for (const p of process.env.TABBY_NAT_CHECK === 'first' ? pods.slice(0, 1) : pods) {
      const seen = await c.sourceSeenBy(p.ns, EXTERNAL_IP);
      if (natOutgoing)
        check(`${p.name} -> external: NATed to ${p.node.ip}`, seen === p.node.ip, `external saw ${seen ?? 'nothing'}`);
      else check(`${p.name} -> external: not NATed`, seen === p.ip, `external saw ${seen ?? 'nothing'}`);
      const other = await c.sourceSeenBy(p.ns, OTHER_POOL_IP);
      check(
        `${p.name} -> disabled pool address ${OTHER_POOL_IP}: never NATed`,
        other === p.ip,
        `saw ${other ?? 'nothing'}`,
      );
    }
  } finally {
    const dels = await Promise.all(pods.map((p) => c.delPod(p)));
    dels.forEach((r, i) => check(`DEL ${pods[i].name}`, r.code === 0, r.stdout + r.stderr));
  }
  return checks;
}

/** A node leaves the cluster file; `tabby reconcile` on the others removes its routes, FDB entries and neighbours. */
export async function nodeRemovalScenario(c: SimCluster, encap: Encap): Promise<Check[]> {
  const { checks, check } = checker();
  const pool = encap === 'vxlan' ? vxlanPool('Always') : ipipPool('Always');
  c.writeClusterFile(clusterYaml(pool));
  const a = c.node('node-a');
  let r = await c.cli(a, 'reconcile', '--config', a.conflist);
  check('reconcile with three nodes', r.code === 0, r.stdout + r.stderr);
  const before = await c.tabbyRoutes(a);
  check(
    "node-a routes node-c's block 10.244.3.0/24",
    before.some((x) => x.dst === '10.244.3.0/24'),
    JSON.stringify(before),
  );
  c.writeClusterFile(clusterYaml(pool, '', ['node-a', 'node-b']));
  r = await c.cli(a, 'reconcile', '--config', a.conflist);
  check('reconcile after node-c left', r.code === 0, r.stdout + r.stderr);
  const after = await c.tabbyRoutes(a);
  check("node-c's route is gone", !after.some((x) => x.dst === '10.244.3.0/24'), JSON.stringify(after));
  check(
    "node-b's route stays",
    after.some((x) => x.dst === '10.244.2.0/24'),
    JSON.stringify(after),
  );
  if (encap === 'vxlan') {
    const fdb = await c.fdb(a);
    check("node-c's FDB entry is gone", !fdb.some((f) => f.dst === '192.168.20.13'), JSON.stringify(fdb));
    check(
      "node-b's FDB entry stays",
      fdb.some((f) => f.dst === '192.168.10.12'),
      JSON.stringify(fdb),
    );
    const neigh = await c.neighbours(a);
    check("node-c's neighbour is gone", !neigh.some((n) => n.dst === '10.244.3.1'), JSON.stringify(neigh));
  }
  return checks;
}

/**
 * How long connectivity was lost while an action ran, from a ping across it: the longest time between two
 * consecutive replies where the later one came after the action started. Valid only when replies came
 * after the action ended too (the ping spanned it), otherwise undefined.
 */
export function disruption(span: PingSpan<unknown>): { gapMs: number; baselineMs: number } | undefined {
  const r = [...span.replies].sort((x, y) => x - y);
  if (!r.some((t) => t > span.end)) return undefined;
  let gapMs = 0;
  let baselineMs = 0;
  for (let i = 1; i < r.length; i++) {
    if (r[i] >= span.start) gapMs = Math.max(gapMs, r[i] - r[i - 1]);
    else baselineMs = Math.max(baselineMs, r[i] - r[i - 1]);
  }
  if (r[0] >= span.start) gapMs = Math.max(gapMs, r[0] - span.start);
  return { gapMs, baselineMs };
}

/**
 * Switches a pool VXLAN -> IPIP -> VXLAN with `tabby reconcile` on every node (all at once, as each node
 * would on its own) while a pod on node-a pings a pod on node-c, on another subnet, every 20 ms. Pods made
 * before the switch keep working, through the new tunnel; no device, route or FDB entry of the old mode is
 * left; the detail of the "disruption" checks gives the longest time without a reply during each switch.
 */
export async function encapSwitchScenario(c: SimCluster): Promise<Check[]> {
  const { checks, check } = checker();
  const INTERVAL_S = 0.02;
  c.writeClusterFile(clusterYaml(vxlanPool('Always')));
  const b = c.node('node-b'); // no pods: its overlay comes from reconcile alone
  // All at once: the nodes are independent, and the qemu guest is slow.
  const reconcileB = c.cli(b, 'reconcile', '--config', b.conflist);
  const added = await Promise.allSettled([c.addPod('node-a', 'switch-a'), c.addPod('node-c', 'switch-c')]);
  const made = added.flatMap((p) => (p.status === 'fulfilled' ? [p.value] : []));
  try {
    const rb = await reconcileB;
    for (const p of added) if (p.status === 'rejected') throw p.reason;
    const [a, cc] = made;
    check('before: node-b reconciled to VXLAN', rb.code === 0, rb.stdout + rb.stderr);
    check('before: pods reach each other over VXLAN', await c.reachable(a.ns, cc.ip), '');
    for (const [to, pool] of [
      ['ipip', ipipPool('Always')],
      ['vxlan', vxlanPool('Always')],
    ] as const) {
      const [newDev, oldDev] = to === 'ipip' ? ['tunl0', 'vxlan.tabby'] : ['vxlan.tabby', 'tunl0'];
      const span = await c.pingDuring(a.ns, cc.ip, INTERVAL_S, () => {
        c.writeClusterFile(clusterYaml(pool));
        const t0 = Date.now();
        return Promise.all(
          c.nodes.map(async (n) => ({ ...(await c.cli(n, 'reconcile', '--config', n.conflist)), ms: Date.now() - t0 })),
        );
      });
      span.value.forEach((r, i) =>
        check(
          `switch to ${to}: reconcile on ${c.nodes[i].name}`,
          r.code === 0,
          `done after ${r.ms} ms\n${r.stdout}${r.stderr}`,
        ),
      );
      const d = disruption(span);
      check(
        `switch to ${to}: disruption`,
        d !== undefined && d.gapMs < 5000,
        d === undefined
          ? `no reply after the reconciles ended (${span.received} of ${span.sent} answered)`
          : `longest time without a reply: ${d.gapMs} ms (before the switch: ${d.baselineMs} ms; a ping every ${INTERVAL_S * 1000} ms); ` +
              `${span.sent - span.received} of ${span.sent} pings unanswered; the reconciles on ${c.nodes.map((n) => n.name).join(', ')} ended after ${span.value.map((r) => r.ms).join(', ')} ms`,
      );
      const before = await c.txPackets(a.node.ns, newDev);
      const ok = await c.reachable(a.ns, cc.ip);
      const after = await c.txPackets(a.node.ns, newDev);
      check(
        `after switch to ${to}: old pods still reach each other, through ${newDev}`,
        ok && after > before,
        `reachable=${ok}, ${newDev} tx packets ${before} -> ${after}`,
      );
      for (const n of c.nodes) {
        const routes = await c.tabbyRoutes(n);
        const stale = routes.filter((r) => r.dev === oldDev);
        check(
          `after switch to ${to}: ${n.name} has no route of the old mode`,
          stale.length === 0,
          JSON.stringify(stale),
        );
        if (to === 'ipip') {
          const vx = await c.linkExists(n, 'vxlan.tabby');
          check(`after switch to ipip: ${n.name} has no vxlan.tabby (and so no FDB entries)`, !vx, '');
        } else {
          const t = await c.linkInfo(n, 'tunl0');
          check(
            `after switch to vxlan: ${n.name}'s tunl0 is down with no address`,
            !t || (!t.up && t.addresses === 0),
            JSON.stringify(t),
          );
        }
      }
    }
  } finally {
    await Promise.all(made.map((p) => c.delPod(p)));
  }
  return checks;
}
