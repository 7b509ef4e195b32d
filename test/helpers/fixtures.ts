// Calico resources for unit tests, with Calico's defaults (blockSize 26 unless a test says otherwise).
import type { BlockAffinity, IPPool, NodeRecord } from '../../conf/calico';
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
