import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha1, sha1Hex } from '../../lib/sha1';

// lib/sha1.ts stands in for node:crypto (cheaper to load); it must agree with it byte for byte.
describe('sha1', () => {
  const ref = (s: string) => createHash('sha1').update(s).digest('hex');

  it('matches node:crypto on the standard vectors and every length across block boundaries', () => {
    expect(sha1Hex('')).toBe('da39a3ee5e6b4b0d3255bfef95601890afd80709');
    expect(sha1Hex('abc')).toBe('a9993e364706816aba3e25717850c26c9cd0d89d');
    for (let n = 0; n <= 200; n++) expect(sha1Hex('x'.repeat(n))).toBe(ref('x'.repeat(n)));
  });

  it('hashes the UTF-8 bytes of non-ASCII text', () => {
    for (const s of ['é', 'nœud-1', '节点', '🙂'.repeat(40)]) expect(sha1Hex(s)).toBe(ref(s));
  });

  it('returns the 20 raw bytes', () => {
    const b = sha1('node-1');
    expect(b).toHaveLength(20);
    expect(Buffer.from(b).toString('hex')).toBe(ref('node-1'));
  });
});
