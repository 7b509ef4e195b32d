import { describe, expect, it } from 'vitest';
import type { ClusterResources } from '../../conf/calico';
import { RefusedRead, refuseRead, refuseSelfAsPeer, ownerOfHost } from '../../lib/cluster/guard';
import { aff, cidr, nodeRec, pool } from '../helpers/fixtures';

const resources = (extra: Partial<ClusterResources> = {}): ClusterResources => ({
  pools: [pool('p', '10.244.0.0/16', { blockSize: 24, vxlanMode: 'Always' })],
  nodes: [nodeRec('node-a', '192.168.10.11/24'), nodeRec('node-b', '192.168.10.12/24')],
  affinities: [aff('node-a', '10.244.1.0/24'), aff('node-b', '10.244.2.0/24')],
  ...extra,
});
const host = [{ ifname: 'eth0', cidr: cidr('192.168.10.11/24') }];
const g = (nodeName: string, extra = {}) => ({ nodeName, datastore: 'file /c.yaml', requireRecord: true, ...extra });

describe('refuseRead', () => {
  it('accepts a sound read', () => {
    expect(refuseRead(resources(), g('node-a'))).toBeUndefined();
  });

  it('refuses a read with no IPPool (an empty or truncated file), as try-again-later, naming the way out', () => {
    const e = refuseRead(resources({ pools: [] }), g('node-a'))!;
    expect(e).toBeInstanceOf(RefusedRead);
    expect(e.code).toBe(11);
    expect(e.message).toMatch(/file \/c\.yaml holds no IPPool: refused \(the dataplane stays as last applied\)/);
    expect(e.message).toMatch(/tabby teardown/);
  });

  it('refuses a node that is not there, listing the nodes and the one owning this host address', () => {
    const e = refuseRead(resources(), g('Node-A', { host }))!;
    expect(e.code).toBe(7);
    expect(e.message).toMatch(/node "Node-A" is not in file \/c\.yaml/);
    expect(e.message).toMatch(/Nodes there: node-a, node-b/);
    expect(e.message).toMatch(/Node node-a owns this host's address: is this host node-a\?/);
  });

  it('takes a BlockAffinity alone as a record of the node (no Node document)', () => {
    expect(refuseRead(resources({ nodes: [] }), g('node-b'))).toBeUndefined();
  });

  it('lets a node that registers itself (etcd, no agent) begin without a record', () => {
    expect(refuseRead(resources(), g('node-z', { requireRecord: false }))).toBeUndefined();
    expect(refuseRead(resources({ pools: [] }), g('node-z', { requireRecord: false }))).toBeDefined();
  });
});

describe('refuseSelfAsPeer', () => {
  it("refuses a peer at this host's own address, and accepts the node's own record", () => {
    expect(refuseSelfAsPeer(resources(), 'node-a', host)).toBeUndefined();
    const e = refuseSelfAsPeer(resources(), 'node-x', host)!;
    expect(e.code).toBe(7);
    expect(e.message).toMatch(/Node node-a has address 192\.168\.10\.11\/24, which is this host's own \(on eth0\)/);
    expect(e.message).toMatch(/Is this host node-a\? nodeName is "node-x"/);
  });

  it('names the owner of a host address', () => {
    expect(ownerOfHost(resources(), host)).toBe('node-a');
    expect(ownerOfHost(resources(), [{ ifname: 'eth0', cidr: cidr('10.9.9.9/24') }])).toBeUndefined();
  });
});
