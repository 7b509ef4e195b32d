// Shared by the per-pod pools tests on both datastores (test/integration/pod-pools.test.ts,
// test/etcd/pod-pools.test.ts): ADDs carrying the pod's annotations as containerd passes them, and what
// a node holds, to show that a refused ADD changed nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Pod, SimCluster, SimNode } from './cluster';
import { ipJson, RunResult } from './proc';

export const POD_ANNOTATIONS = 'io.kubernetes.cri.pod-annotations';
export const IP_ADDRS = 'cni.projectcalico.org/ipAddrs';
export const IPV4_POOLS = 'cni.projectcalico.org/ipv4pools';

/** The node's plugin config with the pod's annotations in runtimeConfig (and any other keys given). */
export function annotated(
  c: SimCluster,
  node: SimNode,
  annotations: Record<string, string>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    ...c.pluginConfig(node),
    ...extra,
    runtimeConfig: { [POD_ANNOTATIONS]: { 'kubernetes.io/config.source': 'api', ...annotations } },
  };
}

/**
 * Everything an ADD could leave behind on a node: links, routes (every table but `local`, which the
 * kernel fills for addresses, IPv6 link-local ones a moment after a link comes up), reservations.
 */
export async function nodeState(c: SimCluster, node: SimNode): Promise<string> {
  const links = (await ipJson<{ ifname: string }[]>(node.ns, ['link', 'show'])).map((l) => l.ifname).sort();
  const routes = (await ipJson<{ table?: string }[]>(node.ns, ['route', 'show', 'table', 'all']))
    .filter((r) => r.table !== 'local')
    .map((r) => JSON.stringify(r));
  const dir = path.join(c.dir, node.name, 'ipam', 'tabbynet');
  const reserved = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => /^[0-9a-f.:]+$/.test(f) && /[.:]/.test(f))
        .sort()
        .map((f) => `${f}=${fs.readFileSync(path.join(dir, f), 'utf8')}`)
    : [];
  return JSON.stringify({ links, routes: routes.sort(), reserved }, null, 1);
}

/** The CNI error JSON a failed ADD printed on stdout. */
export function cniError(r: RunResult): { code: number; msg: string } {
  if (r.code === 0) throw new Error(`expected the ADD to fail, it succeeded: ${r.stdout}`);
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`no CNI error JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
}

const ipValue = (ip: string) => ip.split('.').reduce((v, o) => v * 256 + Number(o), 0);
export function inCidr(ip: string, cidr: string): boolean {
  const [net, len] = cidr.split('/');
  const size = 2 ** (32 - Number(len));
  return Math.floor(ipValue(ip) / size) === Math.floor(ipValue(net) / size);
}

/** The pod's addresses from its ADD result, without prefixes. */
export const podIps = (p: Pod): string[] =>
  (p.result.ips as { address: string }[]).map((x) => String(x.address).split('/')[0]);
