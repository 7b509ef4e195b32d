// The client's options, checked once at construction: endpoint URLs, and the TLS files read from disk
// (so a wrong path fails at start, naming the config field, not at the first request).
import * as fs from 'node:fs';
import type { SecureContext } from 'node:tls';
import { configError } from '../../cni/errors';

export interface EtcdClientOptions {
  /** http:// or https:// URLs of etcd members (their client URLs). */
  endpoints: string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  /** Bound on one call, retries and failover included (default 5000). */
  timeoutMs?: number;
}

export interface TlsMaterial {
  /** Made once from caFile/certFile/keyFile; undefined means the system's CAs and no client certificate. */
  secureContext?: SecureContext;
}

export interface Endpoint {
  /** 0-based position in the configured list. */
  index: number;
  url: URL;
  /** What messages call it: "etcd endpoint 2 of 3", never the URL. */
  label: string;
  tls: boolean;
}

const FIELD = 'datastore';

export function parseEndpoints(urls: readonly string[]): Endpoint[] {
  if (!Array.isArray(urls) || urls.length === 0) {
    throw configError(`${FIELD}.endpoints`, 'at least one URL is required');
  }
  return urls.map((text, index) => {
    const field = `${FIELD}.endpoints[${index}]`;
    let url: URL;
    try {
      url = new URL(String(text));
    } catch {
      throw configError(field, 'not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw configError(field, 'must start with http:// or https://');
    }
    if (url.username || url.password) throw configError(field, 'must not hold credentials (use username/password)');
    return { index, url, label: `etcd endpoint ${index + 1} of ${urls.length}`, tls: url.protocol === 'https:' };
  });
}

function readFile(field: string, file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw configError(`${FIELD}.${field}`, `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Reads caFile/certFile/keyFile into the one TLS context every connection shares. */
export function readTls(opts: EtcdClientOptions): TlsMaterial {
  if (!!opts.certFile !== !!opts.keyFile) {
    throw configError(`${FIELD}.${opts.certFile ? 'keyFile' : 'certFile'}`, 'certFile and keyFile go together');
  }
  const ca = readFile('caFile', opts.caFile);
  const cert = readFile('certFile', opts.certFile);
  const key = readFile('keyFile', opts.keyFile);
  if (!ca && !cert) return {};
  const { createSecureContext } = require('node:tls') as typeof import('node:tls');
  if (ca) checkCa(ca);
  try {
    return { secureContext: createSecureContext({ ca, cert, key }) };
  } catch {
    // OpenSSL's message is dropped (it could quote the file); find the field at fault instead.
    try {
      createSecureContext({ cert });
    } catch {
      throw configError(`${FIELD}.certFile`, 'not a PEM certificate');
    }
    throw configError(`${FIELD}.keyFile`, 'not a PEM private key matching certFile');
  }
}

// createSecureContext skips a CA it cannot parse without a word, so parse it here.
function checkCa(ca: Buffer): void {
  const { X509Certificate } = require('node:crypto') as typeof import('node:crypto');
  try {
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM');
    new X509Certificate(ca);
  } catch {
    throw configError(`${FIELD}.caFile`, 'not a PEM certificate');
  }
}

export function checkCredentials(opts: EtcdClientOptions): void {
  if (opts.username && !opts.password) throw configError(`${FIELD}.password`, 'required with username');
  if (opts.password && !opts.username) throw configError(`${FIELD}.username`, 'required with password');
}
