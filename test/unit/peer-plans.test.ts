import { describe, expect, it } from 'vitest';
import { DocumentCache } from '../../conf/cluster-documents';
import { resourcesFromDocuments } from '../../conf/calico';
import { parseCidr } from '../../lib/net/addr';
import { LocalNode, PeerPlans, planOverlay } from '../../lib/cluster/plan';
import { bigClusterYaml, bigNodeAddress, moveBigNode } from '../helpers/big-cluster';

// The agent re-plans after a change with a PeerPlans cache: the plan must be the one planned from
// scratch, and the peers whose documents did not change keep what was planned for them.

const local: LocalNode = { name: 'node-0', address: parseCidr(bigNodeAddress(0))!, parent: 'eth0', hostMtu: 1500 };

describe('planning again after a change', () => {
  it('equals a plan from scratch, and reuses the unchanged peers', async () => {
    const docs = new DocumentCache();
    const text = bigClusterYaml(300, { mode: 'CrossSubnet' });
    const cache = new PeerPlans();
    const first = planOverlay(resourcesFromDocuments(await docs.documents(text)), local, cache);
    const moved = moveBigNode(text, 7); // node-7 leaves node-0's subnet: through the tunnel now
    const r = resourcesFromDocuments(await docs.documents(moved));
    const again = planOverlay(r, local, cache);
    expect(again).toEqual(planOverlay(r, local));
    const routeOf = (p: typeof first, peer: string) => p.routes.find((x) => x.peer === peer)!;
    expect(routeOf(again, 'node-8')).toBe(routeOf(first, 'node-8')); // the same object: not planned again
    expect(routeOf(again, 'node-7')).not.toEqual(routeOf(first, 'node-7'));
    expect(routeOf(again, 'node-7').kind).toBe('vxlan');
  });

  it('plans everything again when this node moved', async () => {
    const docs = new DocumentCache();
    const r = resourcesFromDocuments(await docs.documents(bigClusterYaml(50, { mode: 'CrossSubnet' })));
    const cache = new PeerPlans();
    planOverlay(r, local, cache);
    const elsewhere = { ...local, address: parseCidr('10.1.2.3/24')! };
    expect(planOverlay(r, elsewhere, cache)).toEqual(planOverlay(r, elsewhere));
  });
});
