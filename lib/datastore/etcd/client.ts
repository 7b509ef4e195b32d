// An etcd v3 client with no dependencies, over etcd's JSON gateway (POST /v3/...): no gRPC stack and no
// .proto file to ship beside the one-file executable, nothing to load at start (the etcd3 package costs
// ~200 ms to require), and a call costs a few milliseconds on a kept-alive connection. Keys and values
// are strings; revisions and lease IDs are decimal strings, never lossy numbers. Every call is bounded
// by `timeoutMs`, failover included (EtcdUnavailableError after that), and no message names a secret
// or an endpoint URL.
import { log } from '../../log';
import { Auth, authRequired } from './auth';
import { checkCredentials, EtcdClientOptions, parseEndpoints, readTls } from './config';
import { Attempt, Endpoints, Retryable } from './failover';
import { EtcdAuthError, EtcdLeaseNotFoundError, EtcdRequestError } from './errors';
import { Redactor } from './redact';
import { checkReply, TokenRejected } from './reply';
import { Reply, Transport, TransportFailure } from './transport';
import { cmp, Compare, decodeTxn, encodePut, encodeRangeRequest, encodeTxn, op } from './txn';
import type { RawRange, TxnRequest, TxnResult } from './txn';
import { Watch, WatchHandle, OnEvents, OnError } from './watch';
import { decodeKv, encodeRange, headerRevision, int64 } from './wire';
import type { Int64, Int64Arg, KeyRange, KeyValue } from './wire';

export type { EtcdClientOptions } from './config';

export interface RangeOptions {
  keysOnly?: boolean;
  limit?: number;
  /** Read the store as it was at this revision. */
  revision?: Int64Arg;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** The store's revision when it was read. */
  revision: Int64;
  /** Number of keys in the range (more than kvs.length when limited). */
  count: number;
  more: boolean;
}

export interface CasResult {
  succeeded: boolean;
  revision: Int64;
  /** When refused: the key as it is now (undefined if absent). */
  current?: KeyValue;
}

export interface Lease {
  id: Int64;
  ttl: number;
}

export interface EtcdStatus {
  version: string;
  memberId: string;
  leader: string;
  revision: Int64;
  raftTerm: string;
  dbSize: number;
}

const DEFAULT_TIMEOUT_MS = 5000;
const CLIENT_CERT_HINT = ' (etcd wants a client certificate: set datastore.certFile and datastore.keyFile)';

export class EtcdClient {
  private readonly endpoints: Endpoints;
  private readonly transport: Transport;
  private readonly auth: Auth;
  private readonly redact = new Redactor();
  private readonly watches = new Set<WatchHandle>();
  private readonly hasClientCert: boolean;

  constructor(opts: EtcdClientOptions) {
    const list = parseEndpoints(opts.endpoints);
    checkCredentials(opts);
    for (const ep of list) this.redact.endpoint(ep.url, ep.label);
    this.transport = new Transport(list.some((ep) => ep.tls) ? readTls(opts) : {});
    this.endpoints = new Endpoints(list, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const creds = opts.username ? { username: opts.username, password: opts.password ?? '' } : undefined;
    this.auth = new Auth(creds, (a, body) => this.post(a, '/v3/auth/authenticate', body, {}), this.redact);
    this.hasClientCert = !!opts.certFile;
  }

  /** One key, or undefined. */
  async get(key: string): Promise<KeyValue | undefined> {
    return (await this.read('get', key, {})).kvs[0];
  }

  /** All keys under a prefix (a string), or in [key, rangeEnd). */
  range(range: string | KeyRange, opts: RangeOptions = {}): Promise<RangeResult> {
    return this.read('range', typeof range === 'string' ? { prefix: range } : range, opts);
  }

  /** Writes a key. A put retried after a timeout may have been applied twice: same value, two revisions. */
  async put(key: string, value: string, opts: { lease?: Int64Arg } = {}): Promise<{ revision: Int64 }> {
    const lease = opts.lease !== undefined ? int64(opts.lease, 'lease') : undefined;
    const { json } = await this.call('put', '/v3/kv/put', encodePut(key, value, lease)).catch(leaseGone(lease));
    return { revision: headerRevision(json) };
  }

  /** Deletes one key (a string), or every key under {prefix} or in {key, rangeEnd}. */
  async delete(range: string | KeyRange): Promise<{ deleted: number; revision: Int64 }> {
    const body = await this.call('delete', '/v3/kv/deleterange', encodeRange(range));
    return { deleted: Number(body.json.deleted ?? 0), revision: headerRevision(body.json) };
  }

  async txn(t: TxnRequest): Promise<TxnResult> {
    const { json, maybeApplied } = await this.call('txn', '/v3/kv/txn', encodeTxn(t));
    return { ...decodeTxn(json), ...(maybeApplied ? { uncertain: true as const } : {}) };
  }

  /** Writes the key only if it does not exist; when refused, `current` is what is there. */
  async createIfAbsent(key: string, value: string, opts: { lease?: Int64Arg } = {}): Promise<CasResult> {
    return this.conditionalPut(key, value, cmp.absent(key), opts.lease);
  }

  /** Writes the key only if it was last modified at `modRevision` (it is unchanged since it was read). */
  async compareAndSwap(key: string, value: string, modRevision: Int64Arg): Promise<CasResult> {
    return this.conditionalPut(key, value, cmp.modRevision(key, modRevision));
  }

  async grant(ttlSeconds: number): Promise<Lease> {
    const body = await this.call('lease grant', '/v3/lease/grant', { TTL: String(Math.ceil(ttlSeconds)) });
    return { id: String(body.json.ID), ttl: Number(body.json.TTL) };
  }

  /** Refreshes a lease once; resolves with its TTL, EtcdLeaseNotFoundError if it expired. */
  async keepAlive(id: Int64Arg): Promise<number> {
    const lease = int64(id, 'lease');
    const body = await this.call('lease keepalive', '/v3/lease/keepalive', { ID: lease });
    const ttl = Number(body.json.result?.TTL ?? body.json.TTL ?? 0);
    if (ttl <= 0) throw new EtcdLeaseNotFoundError(lease);
    return ttl;
  }

  /** Revokes a lease and deletes its keys; a lease already gone is fine. */
  async revoke(id: Int64Arg): Promise<void> {
    const lease = int64(id, 'lease');
    await this.call('lease revoke', '/v3/lease/revoke', { ID: lease }).catch((e) => {
      if (!isLeaseNotFound(e)) throw e;
    });
  }

  /** The answering member's status: a cheap health check. */
  async status(): Promise<EtcdStatus> {
    const { json } = await this.call('status', '/v3/maintenance/status', {});
    return {
      version: String(json.version ?? ''),
      memberId: String(json.header?.member_id ?? ''),
      leader: String(json.leader ?? ''),
      revision: headerRevision(json),
      raftTerm: String(json.raftTerm ?? '0'),
      dbSize: Number(json.dbSize ?? 0),
    };
  }

  /** Drops the history before `revision` (watches that start earlier get EtcdCompactedError). */
  async compact(revision: Int64Arg): Promise<void> {
    await this.call('compact', '/v3/kv/compaction', { revision: int64(revision, 'revision'), physical: true });
  }

  /**
   * Watches every key under a prefix (a string) or in {key, rangeEnd}, from `startRevision` (replaying
   * history) or from now. See watch.ts for reconnection; `onError` is called once when it ends on its own.
   */
  watch(
    range: string | KeyRange,
    opts: { startRevision?: Int64Arg },
    onEvents: OnEvents,
    onError: OnError,
  ): WatchHandle {
    const what = typeof range === 'string' ? { prefix: range } : range;
    const start = opts.startRevision !== undefined ? int64(opts.startRevision, 'startRevision') : undefined;
    const deps = { endpoints: this.endpoints, transport: this.transport, auth: this.auth, redact: this.redact };
    const w = new Watch(deps, what, start, onEvents, (err) => {
      this.watches.delete(handle);
      onError(err);
    });
    const handle: WatchHandle = {
      ready: w.ready,
      get nextRevision() {
        return w.nextRevision;
      },
      close: () => {
        this.watches.delete(handle);
        w.close();
      },
    };
    this.watches.add(handle);
    return handle;
  }

  /** Closes watches and idle connections. */
  close(): void {
    for (const w of [...this.watches]) w.close();
    this.transport.close();
  }

  private async read(what: string, range: string | KeyRange, opts: RangeOptions): Promise<RangeResult> {
    const revision = opts.revision !== undefined ? int64(opts.revision, 'revision') : undefined;
    const reply = await this.call(what, '/v3/kv/range', encodeRangeRequest(range, { ...opts, revision }));
    const json: RawRange = reply.json;
    return {
      kvs: (json.kvs ?? []).map(decodeKv),
      revision: headerRevision(json),
      count: Number(json.count ?? 0),
      more: !!json.more,
    };
  }

  private async conditionalPut(key: string, value: string, compare: Compare, lease?: Int64Arg): Promise<CasResult> {
    const leaseId = lease !== undefined ? int64(lease, 'lease') : undefined;
    const t = { compare: [compare], success: [op.put(key, value, { lease: leaseId })], failure: [op.range(key)] };
    const { json, maybeApplied } = await this.call('txn', '/v3/kv/txn', encodeTxn(t)).catch(leaseGone(leaseId));
    const res = decodeTxn(json);
    const first = res.responses[0];
    const current = !res.succeeded && first?.type === 'range' ? first.kvs[0] : undefined;
    if (current && maybeApplied && current.value === value) {
      // An earlier attempt got no answer but was applied: the refusal is our own write.
      log.debug('etcd: a retried conditional put found its own earlier write');
      return { succeeded: true, revision: current.modRevision };
    }
    return { succeeded: res.succeeded, revision: res.revision, ...(current ? { current } : {}) };
  }

  /** One call with failover and (re-)authentication; resolves with the answer's body. */
  private call(what: string, path: string, body: unknown): Promise<{ json: any; maybeApplied: boolean }> {
    return this.endpoints.run(what, async (a) => {
      for (let retriedAuth = false; ; retriedAuth = true) {
        const headers = await this.auth.headers(a);
        const reply = await this.post(a, path, body, headers);
        try {
          return { json: checkReply(reply, a.endpoint, what, this.redact), maybeApplied: a.maybeApplied };
        } catch (e) {
          if (!(e instanceof TokenRejected)) throw e;
          if (!this.auth.configured) throw authRequired();
          if (retriedAuth) throw new EtcdAuthError('etcd: the auth token was rejected again after re-authenticating');
          this.auth.rejected(headers);
        }
      }
    });
  }

  private tlsHint(reason: string): string {
    if (!/certificate required|bad certificate|unknown ca/.test(reason)) return '';
    return this.hasClientCert ? ' (etcd does not accept the client certificate)' : CLIENT_CERT_HINT;
  }

  private async post(a: Attempt, path: string, body: unknown, headers: Record<string, string>): Promise<Reply> {
    try {
      return await this.transport.post(a.endpoint, path, body, headers, a.timeoutMs);
    } catch (e) {
      if (!(e instanceof TransportFailure)) throw e;
      if (e.kind !== 'tls') throw new Retryable(e.reason, e.sent);
      throw new Retryable(e.reason + this.tlsHint(e.reason), false, true);
    }
  }
}

const isLeaseNotFound = (e: unknown): boolean =>
  e instanceof EtcdRequestError && /requested lease not found/.test(e.message);

/** A rejection handler: "requested lease not found" becomes EtcdLeaseNotFoundError for a call that named a lease. */
function leaseGone(lease: string | undefined): (e: unknown) => never {
  return (e) => {
    throw lease !== undefined && isLeaseNotFound(e) ? new EtcdLeaseNotFoundError(lease) : e;
  };
}
