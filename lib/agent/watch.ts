// What wakes the agent besides its resync timer and its datastore's watch: the kernel's link and
// address events (`ip monitor`): tabby's tunnel device deleted, or the node's address changed.
import { ChildProcess, spawn } from 'node:child_process';
import { which } from '../exec';
import { log } from '../log';
import { HOST_VETH_PREFIX } from '../dataplane/veth';
import { IPIP_DEVICE, VXLAN_DEVICE, VXLAN_V6_DEVICE } from '../dataplane/devices';
import type { Watcher } from '../datastore/datastore';
import { notANodeInterface } from '../cluster/identity';

/** Whether a line of `ip -o monitor link address` calls for a resync, and why. */
export function kernelEventReason(line: string): string | undefined {
  // e.g. "Deleted 7: vxlan.tabby: <BROADCAST,...>" or "3: eth0    inet 192.168.10.11/24 brd ... scope global eth0"
  const m = /^(Deleted )?(?:\[\w+\]\s*)?\d+: ([^:@\s]+)(?:@\S+)?:?\s+(.*)$/.exec(line.trim());
  if (!m) return undefined;
  const [, deleted, dev, rest] = m;
  if (dev.startsWith(HOST_VETH_PREFIX)) return undefined; // pods come and go
  // kube-proxy in IPVS mode adds an address to kube-ipvs0 for every Service: none of those is the node's
  const ours = dev === VXLAN_DEVICE || dev === VXLAN_V6_DEVICE || dev === IPIP_DEVICE;
  const isAddress = /^inet6? /.test(rest);
  if (ours && !isAddress && deleted) return `${dev} was deleted`;
  // an IPv6 node address is a global one; link-local ones come with every link
  const nodeAddress = rest.startsWith('inet ') || (rest.startsWith('inet6 ') && / scope global/.test(rest));
  if (!ours && isAddress && nodeAddress && !notANodeInterface(dev)) {
    return `address ${deleted ? 'removed from' : 'added to'} ${dev}`;
  }
  return undefined;
}

/** Runs `ip -o monitor link address` and calls `onEvent` with the reason of each event that matters. */
export function watchKernel(onEvent: (reason: string) => void): Watcher {
  let child: ChildProcess | undefined;
  let closed = false;
  const start = (): void => {
    child = spawn(which('ip'), ['-o', 'monitor', 'link', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) {
        const reason = kernelEventReason(l);
        if (reason) onEvent(reason);
      }
    });
    child.on('exit', () => {
      if (closed) return;
      log.warn('ip monitor exited; restarting it');
      setTimeout(start, 1000).unref();
    });
    child.on('error', (e) => log.warn(`ip monitor: ${e.message}`));
  };
  start();
  return {
    close() {
      closed = true;
      child?.kill();
    },
  };
}
