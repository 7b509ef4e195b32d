// What both demos print once their pods run: every pod pair (reachable? encapsulated, from the VXLAN
// device's counter?), then what an external host sees of each pod (NATed to its node, or not towards a
// disabled pool). Returns the checks that failed.
import { EXTERNAL_IP, OTHER_POOL_IP, Pod, SimCluster } from '../helpers/cluster';

const subnetOf = (p: Pod): string => p.node.ip.split('.').slice(0, 3).join('.');
const label = (p: Pod): string => `${p.name}@${p.node.name.slice(-1)}`.padEnd(14);

export async function printReachability(c: SimCluster, pods: Pod[]): Promise<string[]> {
  const failed: string[] = [];
  console.log('\npod pairs:');
  console.log(`  ${'from'.padEnd(14)}${'to'.padEnd(14)}${'reachable'.padEnd(11)}${'encapsulated'.padEnd(14)}path`);
  for (const a of pods) {
    for (const b of pods) {
      if (a === b) continue;
      const before = await c.txPackets(a.node.ns, 'vxlan.tabby');
      const ok = await c.reachable(a.ns, b.ip, 1400);
      const encap = (await c.txPackets(a.node.ns, 'vxlan.tabby')) > before;
      const same = subnetOf(a) === subnetOf(b);
      const path = same ? 'same subnet: direct' : 'across subnets: VXLAN';
      console.log(
        `  ${label(a)}${label(b)}${(ok ? 'yes' : 'NO').padEnd(11)}${(encap ? 'yes' : 'no').padEnd(14)}${path}`,
      );
      if (!ok || encap === same) failed.push(`${a.name} -> ${b.name}`);
    }
  }
  console.log('\nto the outside:');
  for (const p of pods) {
    const seen = await c.sourceSeenBy(p.ns, EXTERNAL_IP);
    const other = await c.sourceSeenBy(p.ns, OTHER_POOL_IP);
    const nat = seen === p.node.ip ? 'NATed to its node' : 'NOT NATed';
    const toOther = other === p.ip ? 'not NATed' : 'NATed';
    console.log(
      `  ${p.name} (${p.ip}) -> external ${EXTERNAL_IP}: seen as ${seen ?? 'nothing'} (${nat}); ` +
        `-> disabled pool ${OTHER_POOL_IP}: seen as ${other ?? 'nothing'} (${toOther})`,
    );
    if (seen !== p.node.ip || other !== p.ip) failed.push(`NAT of ${p.name}`);
  }
  return failed;
}
