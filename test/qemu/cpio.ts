/**
 * A minimal writer of the "newc" cpio format, the one the Linux kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst). Uncompressed: the kernel takes it as is.
 */

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer; mode?: number }
  | { kind: 'char'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');
const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);

function record(
  ino: number,
  mode: number,
  name: string,
  data: Buffer,
  nlink: number,
  rdev: [number, number] = [0, 0],
): Buffer[] {
  const nameBuf = Buffer.from(`${name}\0`);
  const header = Buffer.from(
    '070701' + [ino, mode, 0, 0, nlink, 0, data.length, 0, 0, rdev[0], rdev[1], nameBuf.length, 0].map(hex8).join(''),
    'ascii',
  );
  return [header, nameBuf, pad4(header.length + nameBuf.length), data, pad4(data.length)];
}

/** The archive holding these entries (paths relative to the root, without a leading slash), in order. */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    if (e.kind === 'dir') parts.push(...record(ino++, S_IFDIR | (e.mode ?? 0o755), name, Buffer.alloc(0), 2));
    else if (e.kind === 'file') parts.push(...record(ino++, S_IFREG | (e.mode ?? 0o644), name, e.data, 1));
    else parts.push(...record(ino++, S_IFCHR | (e.mode ?? 0o600), name, Buffer.alloc(0), 1, [e.major, e.minor]));
  }
  parts.push(...record(0, 0, 'TRAILER!!!', Buffer.alloc(0), 1));
  return Buffer.concat(parts);
}
