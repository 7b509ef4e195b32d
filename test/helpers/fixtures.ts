// Calico resources for unit tests, with Calico's defaults (blockSize 26 unless a test says otherwise).
import type { BlockAffinity, IPPool, NodeRecord } from '../../conf/calico';
import type { DesiredVxlan } from '../../lib/dataplane/desired';
import { Cidr, parseCidr } from '../../lib/net/addr';

export const cidr = (s: string): Cidr => parseCidr(s)!;

export const pool = (name: string, c: string, extra: Partial<IPPool> = {}): IPPool => ({
  name,
  cidr: cidr(c),
  vxlanMode: 'Never',
  ipipMode: 'Never',
  natOutgoing: false,
  disabled: false,
  disableBGPExport: false,
  blockSize: 26,
  nodeSelector: 'all()',
  namespaceSelector: '',
  allowedUses: ['Workload', 'Tunnel'],
  assignmentMode: 'Automatic',
  ...extra,
});

export const nodeRec = (name: string, addr?: string, extra: Partial<NodeRecord> = {}): NodeRecord => ({
  name,
  ipv4Address: addr ? cidr(addr) : undefined,
  ...extra,
});

/** A block of `node`, named as tabby's tests name them. */
export const aff = (node: string, c: string): BlockAffinity => ({
  name: `${node}-${c.replace(/[./]/g, '-')}`,
  node,
  cidr: cidr(c),
});

/** node-a's vxlan.tabby as the planner asks for it (the dataplane tests' device). */
export const desiredVxlan = (extra: Partial<DesiredVxlan> = {}): DesiredVxlan => ({
  device: 'vxlan.tabby',
  vni: 4096,
  port: 4789,
  parent: 'eth0',
  local: '192.168.10.11',
  mac: '66:aa:bb:cc:dd:ee',
  address: '10.244.1.1',
  mtu: 1450,
  ...extra,
});
