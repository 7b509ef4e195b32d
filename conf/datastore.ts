// The `datastore` key of the tabby plugin entry: where the cluster is described when it is not a
// cluster file. Today that is etcd. Errors name the field and never echo a credential.
import { configError } from '../lib/cni/errors';
import { Obj, optArr, optObj, optStr, reqStr } from './fields';

export interface EtcdConf {
  type: 'etcd';
  endpoints: string[];
  /** Every key tabby writes starts with it (default /tabby). */
  prefix: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
}

export const DEFAULT_ETCD_PREFIX = '/tabby';
const ENDPOINT_RE = /^https?:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}\/?$/;

function absolutePath(o: Obj, key: string): string | undefined {
  const v = optStr(o, key, 'datastore');
  if (v === undefined || v === '') return undefined;
  if (!v.startsWith('/')) throw configError(`datastore.${key}`, 'must be an absolute path');
  return v;
}

/** The `datastore` object, or undefined when the entry has none. */
export function parseDatastoreConf(raw: Obj): EtcdConf | undefined {
  const d = optObj(raw, 'datastore', '');
  if (!d) return undefined;
  const type = reqStr(d, 'type', 'datastore');
  if (type !== 'etcd') throw configError('datastore.type', `must be "etcd", got ${JSON.stringify(type)}`);
  const list = optArr(d, 'endpoints', 'datastore');
  if (!list || list.length === 0) throw configError('datastore.endpoints', 'needs at least one endpoint');
  const endpoints = list.map((e, i) => {
    // the value is not echoed: an endpoint may carry credentials (user:pass@host)
    if (typeof e !== 'string' || !ENDPOINT_RE.test(e)) {
      throw configError(`datastore.endpoints[${i}]`, 'must be an http:// or https:// URL with a host and a port');
    }
    return e.replace(/\/$/, '');
  });
  const prefix = optStr(d, 'prefix', 'datastore') || DEFAULT_ETCD_PREFIX;
  if (!/^\/[A-Za-z0-9._/-]*[^/]$/.test(prefix) && prefix !== '/') {
    throw configError('datastore.prefix', 'must be an absolute key path without a trailing slash, e.g. /tabby');
  }
  const username = optStr(d, 'username', 'datastore') || undefined;
  const password = typeof d.password === 'string' ? d.password : undefined;
  if (d.password !== undefined && typeof d.password !== 'string')
    throw configError('datastore.password', 'must be a string');
  if (password !== undefined && !username) throw configError('datastore.username', 'is required with a password');
  const conf: EtcdConf = {
    type: 'etcd',
    endpoints,
    prefix,
    caFile: absolutePath(d, 'caFile'),
    certFile: absolutePath(d, 'certFile'),
    keyFile: absolutePath(d, 'keyFile'),
    username,
    password,
  };
  if (!!conf.certFile !== !!conf.keyFile) {
    throw configError(conf.certFile ? 'datastore.keyFile' : 'datastore.certFile', 'is required with the other');
  }
  return conf;
}
