// Which block of a pool a node tries first, as Calico does: a start that depends on the node's name
// (FNV-1a of it), then every block in address order with wraparound. Nodes start in different places,
// so they rarely race for one block, and a node always probes in the same order.
import { Cidr, sizeOf } from '../lib/net/addr';

/** FNV-1a, 32 bits, over the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(text, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** How many blocks of `blockSize` the pool holds. */
export const blockCount = (pool: Cidr, blockSize: number): bigint => 1n << BigInt(blockSize - pool.prefix);

/** The pool's blocks in the order `node` tries them. */
export function* blockCandidates(pool: Cidr, blockSize: number, node: string): Generator<Cidr> {
  const n = blockCount(pool, blockSize);
  const step = sizeOf({ ip: pool.ip, prefix: blockSize });
  const base = pool.ip.value & ~(sizeOf(pool) - 1n);
  const start = BigInt(fnv1a32(node)) % n;
  for (let i = 0n; i < n; i++) {
    const index = (start + i) % n;
    yield { ip: { family: pool.ip.family, value: base + index * step }, prefix: blockSize };
  }
}
