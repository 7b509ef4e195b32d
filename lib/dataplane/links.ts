import * as os from 'node:os';
import * as fs from 'node:fs';

/** Facts about links in tabby's own namespace, read from sysfs (no process spawned). */

export const linkExists = (name: string): boolean => fs.existsSync(`/sys/class/net/${name}`);

// Calico's pattern for "host" interfaces when it works out the MTU (felix int_dataplane.go).
const HOST_IFACE_RE = /^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)$/;
export const FALLBACK_HOST_MTU = 1460;

/**
 * The smallest MTU among up host interfaces, as Calico computes it; 1460 when none is found. Read once
 * per process (a plugin process lives for one command); a long-running agent asks for a `fresh` read.
 */
export function hostMtu(fresh = false): number {
  if (fresh || cachedHostMtu === undefined) cachedHostMtu = readHostMtu();
  return cachedHostMtu;
}

let cachedHostMtu: number | undefined;

function readHostMtu(): number {
  let min: number | undefined;
  let names: string[] = [];
  try {
    names = fs.readdirSync('/sys/class/net');
  } catch {
    /* no sysfs: fall back */
  }
  for (const name of names) {
    if (!HOST_IFACE_RE.test(name)) continue;
    try {
      const oper = fs.readFileSync(`/sys/class/net/${name}/operstate`, 'utf8').trim();
      if (oper !== 'up' && oper !== 'unknown') continue;
      const mtu = Number(fs.readFileSync(`/sys/class/net/${name}/mtu`, 'utf8'));
      if (mtu > 0 && (min === undefined || mtu < min)) min = mtu;
    } catch {
      /* link went away */
    }
  }
  return min ?? FALLBACK_HOST_MTU;
}

/**
 * Whether this kernel can make an ipip device: the module is loaded (or built in), or can be loaded.
 * For `tabby plan` to warn early; an apply finds out for itself and fails with code 104.
 */
export function ipipSupported(): boolean {
  if (fs.existsSync('/sys/module/ipip') || fs.existsSync('/sys/class/net/tunl0')) return true;
  const release = os.release();
  const dir = `/lib/modules/${release}/kernel/net/ipv4`;
  try {
    return fs.readdirSync(dir).some((f) => f.startsWith('ipip.ko'));
  } catch {
    return false;
  }
}
