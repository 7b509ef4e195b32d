/**
 * A large cluster file for scale tests and measurements (no vitest here): one IPPool and, per node, a Node
 * and a BlockAffinity, in the format of clusterYaml (flow mappings, `---` between documents).
 */

export interface BigClusterOptions {
  mode?: 'Always' | 'CrossSubnet' | 'Never';
  blockSize?: number;
}

const POOL_BASE = 10 << 24; // 10.0.0.0/8
const NODE_BASE = ((172 << 24) | (16 << 16)) >>> 0; // 172.16.0.0/12

const dotted = (v: number): string => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');

/** Node i's underlay address: all nodes share 172.16.0.0/12, so they are one subnet. */
export const bigNodeAddress = (i: number): string => `${dotted(NODE_BASE + i + 1)}/12`;

/** Node i's block: the i-th block of the pool. */
export const bigNodeBlock = (i: number, blockSize = 26): string =>
  `${dotted(POOL_BASE + i * 2 ** (32 - blockSize))}/${blockSize}`;

const nodeDoc = (i: number, address: string): string =>
  `apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node-${i}}\nspec: {bgp: {ipv4Address: ${address}}}`;

/** A cluster file with `n` nodes, one block each, in one VXLAN pool (10.0.0.0/8) with natOutgoing. */
export function bigClusterYaml(n: number, opts: BigClusterOptions = {}): string {
  const { mode = 'CrossSubnet', blockSize = 26 } = opts;
  if (n > 2 ** (blockSize - 8) || n >= 2 ** 20 - 2) {
    throw new Error(`${n} nodes do not fit in 10.0.0.0/8 and 172.16.0.0/12`);
  }
  const docs = [
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-a}\n' +
      `spec: {cidr: 10.0.0.0/8, blockSize: ${blockSize}, vxlanMode: ${mode}, natOutgoing: true}`,
  ];
  for (let i = 0; i < n; i++) {
    const block = bigNodeBlock(i, blockSize);
    docs.push(nodeDoc(i, bigNodeAddress(i)));
    const name = `node-${i}-${block.replace(/[./]/g, '-')}`;
    docs.push(
      'apiVersion: projectcalico.org/v3\nkind: BlockAffinity\n' +
        `metadata: {name: ${name}}\nspec: {node: node-${i}, cidr: ${block}}`,
    );
  }
  return docs.join('\n---\n') + '\n';
}

/** The same file with node i moved to `address` (by default into another subnet): one document changes. */
export function moveBigNode(yaml: string, i: number, address = `192.168.${(i >> 8) & 255}.${i & 255}/24`): string {
  const before = nodeDoc(i, bigNodeAddress(i));
  const at = yaml.indexOf(`${before}\n`);
  if (at < 0) throw new Error(`node-${i} is not at its original address in this file`);
  return yaml.slice(0, at) + nodeDoc(i, address) + yaml.slice(at + before.length);
}
