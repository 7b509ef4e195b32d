import { configError } from '../lib/cni/errors';
import { DNS, fromAny, Result } from '../lib/cni/result';
import { Level, LEVELS } from '../lib/log';
import { Attachment } from '../lib/cni/attachment';
import { hostname } from 'node:os';
import { isObj, Obj, optInt, optObj, optStr, reqStr } from './fields';
import { validAutodetectMethod } from './autodetect';
import { EtcdConf, parseDatastoreConf } from './datastore';

/** The `tabby` plugin's configuration (one entry of a conflist, as the runtime hands it over). */
export interface NetConf {
  name: string;
  cniVersion: string;
  /** 0 means: work it out from the host's interfaces. */
  mtu: number;
  logFile?: string;
  logLevel: Level;
  ipamType: string;
  dns?: DNS;
  prevResult?: Result;
  /** Set when the network spans nodes: pools, nodes and blocks come from the cluster datastore. */
  cluster?: ClusterConf;
  raw: Obj;
}

export interface ClusterConf {
  /** The cluster file (Calico resources), when the cluster is described by one. */
  file?: string;
  /** etcd, when the cluster is described there (`datastore`). Exactly one of the two is set. */
  etcd?: EtcdConf;
  nodeName: string;
  /** How to find this node's address when its Node record has none (Calico's IP_AUTODETECTION_METHOD). */
  ipAutodetectionMethod?: string;
  /** The same for the node's IPv6 address (Calico's IP6_AUTODETECTION_METHOD), when its record has none. */
  ipAutodetectionMethodV6?: string;
  natBackend: 'auto' | 'nftables' | 'iptables';
  /** Where tabby keeps per-node runtime state (the parsed cluster cache, what was last applied). */
  stateDir: string;
}

export const DEFAULT_STATE_DIR = '/run/tabby';
const NAT_BACKENDS = ['auto', 'nftables', 'iptables'];

function parseClusterConf(raw: Obj): ClusterConf | undefined {
  const file = optStr(raw, 'cluster', '') || undefined;
  const etcd = parseDatastoreConf(raw);
  if (!file && !etcd) return undefined;
  if (file && etcd) throw configError('datastore', 'cannot be given with "cluster": choose one datastore');
  if (file && !file.startsWith('/')) throw configError('cluster', `must be an absolute path, got "${file}"`);
  const nodeName = optStr(raw, 'nodeName', '') || hostname();
  const method = optStr(raw, 'ipAutodetectionMethod', '');
  const bad = method ? validAutodetectMethod(method) : undefined;
  if (bad) throw configError('ipAutodetectionMethod', bad);
  const method6 = optStr(raw, 'ipAutodetectionMethodV6', '');
  const bad6 = method6 ? validAutodetectMethod(method6) : undefined;
  if (bad6) throw configError('ipAutodetectionMethodV6', bad6);
  const natBackend = optStr(raw, 'natBackend', '') ?? 'auto';
  if (!NAT_BACKENDS.includes(natBackend))
    throw configError('natBackend', `must be one of ${NAT_BACKENDS.join(', ')}, got "${natBackend}"`);
  const stateDir = optStr(raw, 'stateDir', '') || DEFAULT_STATE_DIR;
  if (!stateDir.startsWith('/')) throw configError('stateDir', `must be an absolute path, got "${stateDir}"`);
  return {
    file,
    etcd,
    nodeName,
    ipAutodetectionMethod: method || undefined,
    ...(method6 ? { ipAutodetectionMethodV6: method6 } : {}),
    natBackend: natBackend as ClusterConf['natBackend'],
    stateDir,
  };
}

export const IN_PROCESS_IPAM = 'tabby-ipam';

export function parseNetConf(raw: Obj, cniVersion: string): NetConf {
  if (Array.isArray(raw.plugins) && raw.type === undefined) {
    // The README's conflist piped in by hand: a runtime hands each plugin one entry of it.
    throw configError(
      'plugins',
      'this is a network configuration list: a runtime passes each plugin one entry of "plugins" (with the ' +
        "list's name and cniVersion). Run it with a CNI runtime or cnitool, or pipe in the tabby entry alone",
    );
  }
  const ipam = optObj(raw, 'ipam', '');
  if (!ipam) throw configError('ipam', 'is required');
  const logLevel = optStr(raw, 'logLevel', '') ?? 'info';
  if (!(LEVELS as string[]).includes(logLevel))
    throw configError('logLevel', `must be one of ${LEVELS.join(', ')}, got "${logLevel}"`);
  const logFile = optStr(raw, 'logFile', '');
  if (logFile !== undefined && !logFile.startsWith('/'))
    throw configError('logFile', `must be an absolute path, got "${logFile}"`);
  const dns = optObj(raw, 'dns', '');
  return {
    name: reqStr(raw, 'name', ''),
    cniVersion,
    mtu: optInt(raw, 'mtu', '', 0, 65535) ?? 0,
    logFile,
    logLevel: logLevel as Level,
    ipamType: reqStr(ipam, 'type', 'ipam'),
    dns: dns && Object.keys(dns).length ? (dns as DNS) : undefined,
    prevResult: raw.prevResult !== undefined ? fromAny(raw.prevResult) : undefined,
    cluster: parseClusterConf(raw),
    raw,
  };
}

export function validMtu(mtu: number): void {
  if (mtu !== 0 && mtu < 68) throw configError('mtu', `must be 0 (auto) or at least 68, got ${mtu}`);
}

/**
 * The GC request's list of attachments to keep: `cni.dev/valid-attachments`, or the legacy
 * `cni.dev/attachments`. With neither, every attachment is garbage (cnitool gc sends none).
 */
export function validAttachments(raw: Obj): Attachment[] {
  const key = raw['cni.dev/valid-attachments'] !== undefined ? 'cni.dev/valid-attachments' : 'cni.dev/attachments';
  const list = raw[key];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw configError(key, 'must be a list');
  return list.map((a, i) => {
    if (!isObj(a)) throw configError(`${key}[${i}]`, 'must be an object');
    return { containerId: reqStr(a, 'containerID', `${key}[${i}]`), ifname: reqStr(a, 'ifname', `${key}[${i}]`) };
  });
}
