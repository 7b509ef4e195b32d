import { clusterYaml, DISABLED_OTHER_POOL, EXTERNAL_IP, ipipPool, OTHER_POOL_IP, Pod, SimCluster, vxlanPool } from './cluster';

/**
 * The multi-node scenarios of issue "IP pools across nodes", as plain functions returning named checks,
 * so the same code runs under vitest on this machine (VXLAN) and inside the qemu guest (IPIP), where
 * test/scenarios/run.ts prints them as result lines.
 */

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export type Encap = 'vxlan' | 'ipip';
export type Mode = 'Always' | 'CrossSubnet' | 'Never';

const sameSubnet = (a: Pod, b: Pod): boolean => a.node.ip.startsWith('192.168.10.') && b.node.ip.startsWith('192.168.10.');
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
  const checks: Check[] = [];
  const check = (name: string, ok: boolean, detail = ''): void => { checks.push({ name, ok, detail }); };
  const pool = encap === 'vxlan' ? vxlanPool(mode, natOutgoing) : ipipPool(mode, natOutgoing);
  c.writeClusterFile(clusterYaml(pool, DISABLED_OTHER_POOL));
  const pods: Pod[] = [];
  try {
    for (const n of c.nodes) pods.push(await c.addPod(n.name, `${encap}-${mode}-${n.name.slice(-1)}`.toLowerCase()));
    const wantMtu = 1500 - (mode === 'Never' ? 0 : encap === 'vxlan' ? 50 : 20);
    for (const p of pods) check(`${p.name}: MTU ${wantMtu}`, p.result.interfaces?.[1]?.mtu === wantMtu, `result says ${p.result.interfaces?.[1]?.mtu}`);
    const dev = tunnelDev(encap);
    for (const a of pods) {
      for (const b of pods) {
        if (a === b) continue;
        const want = expectedPath(mode, a, b);
        const pair = `${a.name} -> ${b.name}`;
        const before = await c.txPackets(a.node.ns, dev);
        const reachable = await c.reachable(a.ns, b.ip, wantMtu - 28, want.reachable ? 5 : 2);
        const after = await c.txPackets(a.node.ns, dev);
        check(`${pair}: ${want.reachable ? 'reachable' : 'unreachable'} by ping (DF, ${wantMtu - 28} bytes)`, reachable === want.reachable, `reachable=${reachable}`);
        if (want.reachable) {
          check(`${pair}: ${want.encapsulated ? 'encapsulated' : 'not encapsulated'}`, (after > before) === want.encapsulated, `${dev} tx packets ${before} -> ${after}`);
          const got = await c.tcpTransfer(a.ns, b.ns, b.ip, 200_000);
          check(`${pair}: TCP transfer of 200000 bytes`, got === 200_000, `received ${got}`);
        }
      }
    }
    for (const p of pods) {
      const seen = await c.sourceSeenBy(p.ns, EXTERNAL_IP);
      if (natOutgoing) check(`${p.name} -> external: NATed to ${p.node.ip}`, seen === p.node.ip, `external saw ${seen ?? 'nothing'}`);
      else check(`${p.name} -> external: not NATed`, seen === p.ip, `external saw ${seen ?? 'nothing'}`);
      const other = await c.sourceSeenBy(p.ns, OTHER_POOL_IP);
      check(`${p.name} -> disabled pool address ${OTHER_POOL_IP}: never NATed`, other === p.ip, `saw ${other ?? 'nothing'}`);
    }
  } finally {
    for (const p of pods) {
      const r = await c.delPod(p);
      check(`DEL ${p.name}`, r.code === 0, r.stdout + r.stderr);
    }
  }
  return checks;
}

/** A node leaves the cluster file; `tabby reconcile` on the others removes its routes, FDB entries and neighbours. */
export async function nodeRemovalScenario(c: SimCluster, encap: Encap): Promise<Check[]> {
  const checks: Check[] = [];
  const check = (name: string, ok: boolean, detail = ''): void => { checks.push({ name, ok, detail }); };
  const pool = encap === 'vxlan' ? vxlanPool('Always') : ipipPool('Always');
  c.writeClusterFile(clusterYaml(pool));
  const a = c.node('node-a');
  let r = await c.cli(a, 'reconcile', '--config', a.conflist);
  check('reconcile with three nodes', r.code === 0, r.stdout + r.stderr);
  const before = await c.tabbyRoutes(a);
  check('node-a routes node-c\'s block 10.244.3.0/24', before.some((x) => x.dst === '10.244.3.0/24'), JSON.stringify(before));
  c.writeClusterFile(clusterYaml(pool, '', ['node-a', 'node-b']));
  r = await c.cli(a, 'reconcile', '--config', a.conflist);
  check('reconcile after node-c left', r.code === 0, r.stdout + r.stderr);
  const after = await c.tabbyRoutes(a);
  check('node-c\'s route is gone', !after.some((x) => x.dst === '10.244.3.0/24'), JSON.stringify(after));
  check('node-b\'s route stays', after.some((x) => x.dst === '10.244.2.0/24'), JSON.stringify(after));
  if (encap === 'vxlan') {
    const fdb = await c.fdb(a);
    check('node-c\'s FDB entry is gone', !fdb.some((f) => f.dst === '192.168.20.13'), JSON.stringify(fdb));
    check('node-b\'s FDB entry stays', fdb.some((f) => f.dst === '192.168.10.12'), JSON.stringify(fdb));
    const neigh = await c.neighbours(a);
    check('node-c\'s neighbour is gone', !neigh.some((n) => n.dst === '10.244.3.1'), JSON.stringify(neigh));
  }
  return checks;
}

/**
 * Switches a pool VXLAN -> IPIP -> VXLAN with `tabby reconcile` on every node while a cross-subnet pair
 * of pods pings every 20 ms. Pods made before the switch keep working; no device, route or FDB entry
 * of the old mode is left; the detail of the "disruption" checks gives how long pings went unanswered.
 */
export async function encapSwitchScenario(c: SimCluster): Promise<Check[]> {
  const checks: Check[] = [];
  const check = (name: string, ok: boolean, detail = ''): void => { checks.push({ name, ok, detail }); };
  c.writeClusterFile(clusterYaml(vxlanPool('Always')));
  const a = await c.addPod('node-a', 'switch-a');
  const cc = await c.addPod('node-c', 'switch-c');
  try {
    check('before: pods reach each other over VXLAN', await c.reachable(a.ns, cc.ip), '');
    for (const [to, pool] of [['ipip', ipipPool('Always')], ['vxlan', vxlanPool('Always')]] as const) {
      const pinger = c.pingFor(a.ns, cc.ip, 0.02, 6);
      await new Promise((res) => setTimeout(res, 1000));
      c.writeClusterFile(clusterYaml(pool));
      const results = await Promise.all(c.nodes.map((n) => c.cli(n, 'reconcile', '--config', n.conflist)));
      results.forEach((r, i) => check(`switch to ${to}: reconcile on ${c.nodes[i].name}`, r.code === 0, r.stdout + r.stderr));
      const { sent, received } = await pinger;
      const lostMs = (sent - received) * 20;
      check(`switch to ${to}: disruption`, received > 0 && lostMs < 5000, `${sent - received} of ${sent} pings lost: about ${lostMs} ms without connectivity`);
      check(`after switch to ${to}: old pods still reach each other`, await c.reachable(a.ns, cc.ip), '');
      for (const n of c.nodes) {
        const routes = await c.tabbyRoutes(n);
        const stale = routes.filter((r) => r.dev === (to === 'ipip' ? 'vxlan.tabby' : 'tunl0'));
        check(`after switch to ${to}: ${n.name} has no route of the old mode`, stale.length === 0, JSON.stringify(stale));
        if (to === 'ipip') {
          const vx = await c.linkExists(n, 'vxlan.tabby');
          check(`after switch to ipip: ${n.name} has no vxlan.tabby (and so no FDB entries)`, !vx, '');
        } else {
          const t = await c.linkInfo(n, 'tunl0');
          check(`after switch to vxlan: ${n.name}'s tunl0 is down with no address`, !t || (!t.up && t.addresses === 0), JSON.stringify(t));
        }
      }
    }
  } finally {
    for (const p of [a, cc]) await c.delPod(p);
  }
  return checks;
}
