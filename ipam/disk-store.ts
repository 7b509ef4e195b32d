import * as fs from 'node:fs';
import * as path from 'node:path';
import { Attachment } from '../lib/cni/attachment';
import { IpamStore, Reservation } from './store';
import { withDirLock } from './lock';
import { CniError, Code } from '../lib/cni/errors';

const LAST_RESERVED = 'last_reserved_ip.';

/** host-local's file name for an IP (':' is kept on Linux). */
const isReservationFile = (name: string): boolean =>
  !name.startsWith(LAST_RESERVED) &&
  name !== 'lock' &&
  !name.startsWith('tabby.') &&
  (name.includes('.') || name.includes(':'));

/**
 * host-local's on-disk format: `<dataDir>/<network>/<ip>` holding `<containerID>\r\n<ifname>`
 * (CRLF, no trailing newline), and `last_reserved_ip.<rangeset index>`.
 */
export class DiskStore implements IpamStore {
  readonly dir: string;

  constructor(dataDir: string, network: string) {
    this.dir = path.join(dataDir, network);
  }

  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw new CniError(Code.IOFailure, `cannot create IPAM directory ${this.dir}: ${(e as Error).message}`);
    }
    return withDirLock(this.dir, fn);
  }

  reserve(ip: string, who: Attachment, rangeSetIndex: number): boolean {
    const file = path.join(this.dir, ip);
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw new CniError(Code.IOFailure, `cannot reserve ${ip} in ${this.dir}: ${(e as Error).message}`);
    }
    try {
      fs.writeSync(fd, `${who.containerId}\r\n${who.ifname}`);
    } catch (e) {
      fs.rmSync(file, { force: true }); // an empty file would hold the address for nobody
      throw new CniError(Code.IOFailure, `cannot reserve ${ip} in ${this.dir}: ${(e as Error).message}`);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.writeFileSync(path.join(this.dir, LAST_RESERVED + rangeSetIndex), ip, { mode: 0o644 });
    } catch {
      // only a hint for where the next search starts: the reservation stands without it
    }
    return true;
  }

  lastReserved(rangeSetIndex: number): string | undefined {
    try {
      return fs.readFileSync(path.join(this.dir, LAST_RESERVED + rangeSetIndex), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  list(withAge = false): Reservation[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new CniError(Code.IOFailure, `cannot read IPAM directory ${this.dir}: ${(e as Error).message}`);
    }
    const out: Reservation[] = [];
    for (const name of names) {
      if (!isReservationFile(name)) continue;
      const file = path.join(this.dir, name);
      let content: string;
      let since: number | undefined;
      try {
        content = fs.readFileSync(file, 'utf8');
        if (withAge) since = fs.statSync(file).mtimeMs;
      } catch {
        continue; // released meanwhile, or not a file
      }
      // host-local writes `id\r\nifname`; very old versions wrote just `id`
      const [containerId, ifname = ''] = content.split(/\r?\n/);
      out.push({ ip: name, containerId: containerId.trim(), ifname: ifname.trim(), since });
    }
    return out;
  }

  reservedIps(): string[] {
    try {
      return fs.readdirSync(this.dir).filter(isReservationFile);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new CniError(Code.IOFailure, `cannot read IPAM directory ${this.dir}: ${(e as Error).message}`);
    }
  }

  holder(ip: string): Attachment | undefined {
    let content: string;
    try {
      content = fs.readFileSync(path.join(this.dir, ip), 'utf8');
    } catch {
      return undefined;
    }
    const [containerId, ifname = ''] = content.split(/\r?\n/);
    return { containerId: containerId.trim(), ifname: ifname.trim() };
  }

  release(ip: string): boolean {
    try {
      fs.unlinkSync(path.join(this.dir, ip));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw new CniError(Code.IOFailure, `cannot release ${ip} in ${this.dir}: ${(e as Error).message}`);
    }
  }

  probeWritable(): void {
    const probe = path.join(this.dir, 'tabby.probe');
    fs.writeFileSync(probe, '');
    fs.unlinkSync(probe);
  }
}
