import * as path from 'node:path';
import { printReachability } from './reachability';
import { clusterYaml, DISABLED_OTHER_POOL, Pod, SimCluster, vxlanPool } from '../helpers/cluster';

/**
 * The multi-node demo: three nodes on two subnets, a VXLAN CrossSubnet pool with natOutgoing, one pod per
 * node. Prints, for every pod pair, whether it is reachable and whether the path was encapsulated (read
 * from the VXLAN device's packet counter), then what an external host sees. Cleans up after itself.
 */

const bin = path.resolve(process.argv[2] ?? 'dist/tabby');
const tabby = bin.endsWith('.js') ? [process.execPath, bin] : [bin];

async function main(): Promise<number> {
  const c = await SimCluster.create(tabby, `tabbydemo${process.pid}`);
  let failures = 0;
  try {
    c.writeClusterFile(clusterYaml(vxlanPool('CrossSubnet', true), DISABLED_OTHER_POOL));
    console.log(
      `cluster file (${c.clusterFile}):\n${clusterYaml(vxlanPool('CrossSubnet', true), DISABLED_OTHER_POOL).replace(/^/gm, '  ')}`,
    );
    const pods: Pod[] = [];
    for (const n of c.nodes) pods.push(await c.addPod(n.name, `pod-${n.name.slice(-1)}`));
    for (const p of pods)
      console.log(`${p.name} on ${p.node.name} (${p.node.ip}): ${p.ip}, MTU ${p.result.interfaces[1].mtu}`);

    const status = await c.cli(c.node('node-a'), 'status', '--config', c.node('node-a').conflist);
    console.log(`\n$ tabby status   (on node-a)\n${status.stdout}${status.stderr}`);

    failures += (await printReachability(c, pods)).length;
    for (const p of [...c.pods]) {
      const r = await c.delPod(p);
      if (r.code !== 0) failures++;
    }
    console.log(`\nremoved ${pods.length} pods`);
  } finally {
    await c.destroy();
  }
  console.log(failures === 0 ? 'demo: OK' : `demo: ${failures} check(s) FAILED`);
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
