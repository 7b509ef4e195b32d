/**
 * SHA-1 of a string's UTF-8 bytes, in plain JavaScript: the same digest as node:crypto's. tabby
 * hashes a few short names per run (host veth names, VTEP MACs); loading node:crypto for that costs
 * each plugin process 2-4 ms, far more than the hashing itself.
 */
export function sha1(text: string): Uint8Array {
  const msg = Buffer.from(text, 'utf8');
  const len = msg.length;
  const blocks = ((len + 8) >>> 6) + 1;
  const w = new Uint32Array(blocks * 16);
  for (let i = 0; i < len; i++) w[i >>> 2] |= msg[i] << (24 - (i & 3) * 8);
  w[len >>> 2] |= 0x80 << (24 - (len & 3) * 8);
  // the length in bits, big-endian, in the last two words (a string here is far below 2^32 bits)
  w[blocks * 16 - 1] = len * 8;
  w[blocks * 16 - 2] = Math.floor(len / 0x20000000);
  let h0 = 0x67452301,
    h1 = 0xefcdab89,
    h2 = 0x98badcfe,
    h3 = 0x10325476,
    h4 = 0xc3d2e1f0;
  const x = new Uint32Array(80);
  for (let b = 0; b < blocks; b++) {
    for (let t = 0; t < 16; t++) x[t] = w[b * 16 + t];
    for (let t = 16; t < 80; t++) {
      const v = x[t - 3] ^ x[t - 8] ^ x[t - 14] ^ x[t - 16];
      x[t] = (v << 1) | (v >>> 31);
    }
    let a = h0,
      bb = h1,
      c = h2,
      d = h3,
      e = h4;
    for (let t = 0; t < 80; t++) {
      let f: number, k: number;
      if (t < 20) {
        f = (bb & c) | (~bb & d);
        k = 0x5a827999;
      } else if (t < 40) {
        f = bb ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (t < 60) {
        f = (bb & c) | (bb & d) | (c & d);
        k = 0x8f1bbcdc;
      } else {
        f = bb ^ c ^ d;
        k = 0xca62c1d6;
      }
      const tmp = (((a << 5) | (a >>> 27)) + f + e + k + x[t]) | 0;
      e = d;
      d = c;
      c = (bb << 30) | (bb >>> 2);
      bb = a;
      a = tmp;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + bb) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  const out = new Uint8Array(20);
  [h0, h1, h2, h3, h4].forEach((h, i) => {
    out[i * 4] = h >>> 24;
    out[i * 4 + 1] = (h >>> 16) & 0xff;
    out[i * 4 + 2] = (h >>> 8) & 0xff;
    out[i * 4 + 3] = h & 0xff;
  });
  return out;
}

export const sha1Hex = (text: string): string => Buffer.from(sha1(text)).toString('hex');
