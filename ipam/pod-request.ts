// What one pod asks of IPAM: fixed addresses, or pools per address family. The Calico annotations come
// from the pod's annotations, which containerd (and CRI-O) put in runtimeConfig under
// `io.kubernetes.cri.pod-annotations` when the conflist declares that capability; the CNI arguments
// (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips) serve runtimes that do not send annotations.
//
// Precedence (calico-datastore.md §6.2):
//   1. `cni.projectcalico.org/ipAddrs`: exactly these addresses (at most one per family), nothing else;
//      the CNI arguments are then ignored, as Calico writes the annotation over CNI_ARGS IP.
//   2. Otherwise CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips, all of them, as host-local reads them:
//      each address goes to the rangeset (family) that holds it, and the other families get one each.
//   3. `cni.projectcalico.org/ipv4pools` / `ipv6pools` choose the pools of a family that got no address
//      from 1 or 2.
//   4. Otherwise the pools that select this node.
import { configError } from '../lib/cni/errors';
import { CniEnv } from '../lib/cni/env';
import { Addr, formatIP, parseIP } from '../lib/net/addr';
import { isObj, Obj, optArr, optObj, shown } from '../conf/fields';

export type Family = 4 | 6;

export const POD_ANNOTATIONS = 'io.kubernetes.cri.pod-annotations';
export const IP_ADDRS = 'cni.projectcalico.org/ipAddrs';
export const IP_ADDRS_NO_IPAM = 'cni.projectcalico.org/ipAddrsNoIpam';
export const IPV4_POOLS = 'cni.projectcalico.org/ipv4pools';
export const IPV6_POOLS = 'cni.projectcalico.org/ipv6pools';

export interface PodRequest {
  /** The addresses asked for. */
  addresses: Addr[];
  /** From ipAddrs: the pod gets exactly these. From the CNI arguments: every rangeset still gets one. */
  exact: boolean;
  /** Pool names or CIDRs chosen by annotation, for the families that got no requested address. */
  pools: Partial<Record<Family, string[]>>;
  /** Where the pool choice came from, per family (the annotation's field, for errors). */
  poolField: Partial<Record<Family, string>>;
  /** Sources given but overruled by a higher one (for the log). */
  ignored: string[];
}

export const annotationField = (key: string): string => `runtimeConfig["${POD_ANNOTATIONS}"]["${key}"]`;

/** The pod's annotations, when the runtime passed them (an object of strings). */
function annotationsOf(config: Obj): Obj {
  const rc = optObj(config, 'runtimeConfig', '') ?? {};
  const a = rc[POD_ANNOTATIONS];
  if (a === undefined || a === null) return {};
  if (!isObj(a)) throw configError(`runtimeConfig["${POD_ANNOTATIONS}"]`, 'must be an object of strings');
  return a;
}

/** A Calico list annotation: a JSON list of strings; absent or empty is undefined. */
function stringList(annotations: Obj, key: string): string[] | undefined {
  const raw = annotations[key];
  if (raw === undefined || raw === null || raw === '') return undefined;
  const field = annotationField(key);
  if (typeof raw !== 'string') throw configError(field, `must be a string holding a JSON list, got ${shown(raw)}`);
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    throw configError(field, `${shown(raw)} is not JSON (a list of strings, e.g. ["10.244.1.5"])`);
  }
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || s.trim() === ''))
    throw configError(field, `${shown(raw)} is not a JSON list of non-empty strings`);
  return list.length ? (list as string[]).map((s) => s.trim()) : undefined;
}

/** CNI_ARGS IP= (comma-separated), args.cni.ips, runtimeConfig.ips: all of them, without duplicates. */
export function argumentIPs(config: Obj, env: CniEnv): Addr[] {
  const out: Addr[] = [];
  const add = (s: unknown, field: string): void => {
    if (typeof s !== 'string') throw configError(field, 'must be a string');
    const a = parseIP(s.split('/')[0]);
    if (!a) throw configError(field, `"${s}" is not an IP address`);
    out.push(a);
  };
  const ipArg = env.args.get('IP');
  if (ipArg) ipArg.split(',').forEach((s) => add(s, 'CNI_ARGS IP'));
  const argsIps = optObj(optObj(config, 'args', '') ?? {}, 'cni', 'args');
  (optArr(argsIps ?? {}, 'ips', 'args.cni') ?? []).forEach((s, i) => add(s, `args.cni.ips[${i}]`));
  const rc = optObj(config, 'runtimeConfig', '') ?? {};
  (optArr(rc, 'ips', 'runtimeConfig') ?? []).forEach((s, i) => add(s, `runtimeConfig.ips[${i}]`));
  const seen = new Set<string>();
  return out.filter((a) => !seen.has(formatIP(a)) && !!seen.add(formatIP(a)));
}

/** Reads what the pod asks for (ADD only: the other commands never look at it). */
export function podRequest(config: Obj, env: CniEnv): PodRequest {
  const none: PodRequest = { addresses: [], exact: false, pools: {}, poolField: {}, ignored: [] };
  if (env.command !== 'ADD') return none;
  const ann = annotationsOf(config);
  if (stringList(ann, IP_ADDRS_NO_IPAM))
    throw configError(annotationField(IP_ADDRS_NO_IPAM), `is not supported by tabby: use ${IP_ADDRS}`);
  const fromArgs = argumentIPs(config, env);
  const pinned = stringList(ann, IP_ADDRS);
  const req: PodRequest = { ...none, pools: {}, poolField: {}, ignored: [] };
  if (pinned) {
    const field = annotationField(IP_ADDRS);
    req.addresses = pinned.map((s) => {
      const a = parseIP(s);
      if (!a) throw configError(field, `"${s}" is not an IP address (no prefix length)`);
      return a;
    });
    for (const fam of [4, 6] as const) {
      if (req.addresses.filter((a) => a.family === fam).length > 1)
        throw configError(field, `holds more than one IPv${fam} address (Calico allows one of each family)`);
    }
    req.exact = true;
    if (fromArgs.length) req.ignored.push(`the CNI arguments' ${fromArgs.map(formatIP).join(', ')} (${IP_ADDRS} wins)`);
  } else {
    req.addresses = fromArgs;
  }
  for (const [fam, key] of [
    [4, IPV4_POOLS],
    [6, IPV6_POOLS],
  ] as const) {
    const list = stringList(ann, key);
    if (!list) continue;
    if (req.exact || req.addresses.some((a) => a.family === fam)) {
      req.ignored.push(`${key} (an address of that family was asked for)`);
      continue;
    }
    req.pools[fam] = list;
    req.poolField[fam] = annotationField(key);
  }
  return req;
}

/** Whether the pod asked for anything at all. */
export const asksForAnything = (r: PodRequest): boolean =>
  r.addresses.length > 0 || r.pools[4] !== undefined || r.pools[6] !== undefined;
