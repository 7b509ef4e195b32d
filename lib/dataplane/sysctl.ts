import * as fs from 'node:fs';
import { CniError, Code } from '../cni/errors';

/** Writes sysctls of the namespace tabby runs in, straight through /proc (no process spawned). */
export function setSysctls(values: Record<string, string>): void {
  for (const [key, value] of Object.entries(values)) {
    const file = `/proc/sys/${key.replace(/\./g, '/')}`;
    try {
      if (readSysctl(key) === value) continue;
      fs.writeFileSync(file, value);
    } catch (e) {
      throw new CniError(Code.KernelOperationFailed, `sysctl ${key}=${value}: ${(e as Error).message}`);
    }
  }
}

export function readSysctl(key: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/sys/${key.replace(/\./g, '/')}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
