// Files replaced whole: a reader sees the old content or the new, never half of either.
import * as fs from 'node:fs';
import * as path from 'node:path';

// Unique enough beside the destination: the pid, and a random part for several writes in one process.
const tmpName = (dest: string): string =>
  path.join(path.dirname(dest), `.${path.basename(dest)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    /* not every filesystem lets a directory be fsynced */
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Puts a file in place so that no reader ever sees half of it: `fill` writes a temp file beside `dest`,
 * which is synced and renamed over it (a running executable keeps its old inode, so no ETXTBSY).
 */
export function replaceAtomically(dest: string, fill: (tmp: string) => void, durable = true): void {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = tmpName(dest);
  try {
    fill(tmp);
    if (durable) {
      const fd = fs.openSync(tmp, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    fs.renameSync(tmp, dest);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  if (durable) fsyncDir(path.dirname(dest));
}

/**
 * Writes `data` to `dest` atomically (write, then rename), with `mode`. `durable: false` skips the
 * fsyncs: for state that is rebuilt anyway after a crash (under /run, which a reboot empties).
 */
export function writeAtomic(dest: string, data: Buffer | string, mode = 0o644, durable = true): void {
  replaceAtomically(
    dest,
    (tmp) => {
      fs.writeFileSync(tmp, data, { flag: 'wx', mode });
      fs.chmodSync(tmp, mode);
    },
    durable,
  );
}

export function symlinkAtomic(target: string, dest: string): void {
  const tmp = tmpName(dest);
  fs.symlinkSync(target, tmp);
  try {
    fs.renameSync(tmp, dest);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
