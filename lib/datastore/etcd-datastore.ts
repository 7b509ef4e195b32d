// The cluster in etcd (layout in etcd-keys.ts). One-shot processes read it with one range; the agent
// keeps every key of the prefix in memory, follows a watch from the revision it read, and rebuilds
// the resources from memory on each change (unchanged documents keep their parsed form). After a
// reconnect that cannot resume, or a compacted revision, it reads everything again.
import { ClusterResources, resourcesFromDocuments } from '../../conf/calico';
import type { EtcdConf } from '../../conf/datastore';
import { contains, formatCidr } from '../net/addr';
import { log } from '../log';
import type { Datastore, Watcher } from './datastore';
import { EtcdClient } from './etcd/client';
import type { KeyValue } from './etcd/wire';
import { BlockRecord, EtcdKeys, ownerOf, ResourceKind } from './etcd-keys';

interface Held {
  value: string;
  modRevision: string;
  /** The parsed, frozen document (resources) or record (blocks), reused while the value is unchanged. */
  parsed?: unknown;
}

const MAX_BACKOFF_MS = 10_000;

export class EtcdDatastore implements Datastore {
  readonly description: string;
  readonly remote = true;
  readonly keys: EtcdKeys;
  private client?: EtcdClient;
  /** Every key under the prefix, while a watch keeps it current. */
  private live?: { revision: string; kvs: Map<string, Held> };
  private readonly memo = new Map<string, Held>();

  constructor(private readonly conf: EtcdConf) {
    this.keys = new EtcdKeys(conf.prefix);
    const n = conf.endpoints.length;
    this.description = `etcd (${n} endpoint${n === 1 ? '' : 's'}, prefix ${conf.prefix})`;
  }

  /** The client, made on first use (reading TLS files then). */
  etcd(): EtcdClient {
    return (this.client ??= new EtcdClient({
      endpoints: this.conf.endpoints,
      caFile: this.conf.caFile,
      certFile: this.conf.certFile,
      keyFile: this.conf.keyFile,
      username: this.conf.username,
      password: this.conf.password,
    }));
  }

  close(): void {
    this.client?.close();
  }

  async revision(): Promise<string> {
    if (this.live) return `etcd:${this.live.revision}`;
    return `etcd:${(await this.etcd().range({ prefix: this.conf.prefix + '/' }, { keysOnly: true, limit: 1 })).revision}`;
  }

  async load(): Promise<ClusterResources> {
    const kvs = this.live?.kvs ?? (await this.readAll()).kvs;
    return this.resourcesFrom(kvs);
  }

  /** The resources as etcd holds them now, whatever the watch has delivered so far. */
  async loadFresh(): Promise<ClusterResources> {
    return this.resourcesFrom((await this.readAll()).kvs);
  }

  watch(onChange: (reason: string) => void, onError: (e: Error) => void): Watcher {
    let closed = false;
    let handle: { close(): void } | undefined;
    let failures = 0;
    const start = async (reason: string): Promise<void> => {
      try {
        const all = await this.readAll();
        if (closed) return;
        this.live = all;
        failures = 0;
        onChange(reason);
        handle = this.etcd().watch(
          { prefix: this.conf.prefix + '/' },
          { startRevision: BigInt(all.revision) + 1n },
          (events, revision) => {
            const kvs = this.live?.kvs;
            if (!kvs) return;
            for (const e of events) {
              if (e.type === 'delete') kvs.delete(e.key);
              else kvs.set(e.key, this.held(e.key, e.value ?? '', e.modRevision));
            }
            this.live!.revision = revision;
            onChange('datastore changed');
          },
          (err) => restart(err),
        );
      } catch (e) {
        restart(e as Error);
      }
    };
    const restart = (err: Error): void => {
      this.live = undefined;
      if (closed) return;
      onError(err);
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** failures++);
      log.warn(`etcd watch ended (${err.message}); reading everything again in ${delay} ms`);
      setTimeout(() => void start('resync after the watch ended'), delay).unref();
    };
    void start('first read');
    return {
      close: () => {
        closed = true;
        handle?.close();
        this.live = undefined;
      },
    };
  }

  /** Every key under the prefix, with the revision it was read at. */
  private async readAll(): Promise<{ revision: string; kvs: Map<string, Held> }> {
    const r = await this.etcd().range({ prefix: this.conf.prefix + '/' });
    return {
      revision: r.revision,
      kvs: new Map(r.kvs.map((kv) => [kv.key, this.held(kv.key, kv.value, kv.modRevision)])),
    };
  }

  private held(key: string, value: string, modRevision: string): Held {
    const known = this.memo.get(key);
    if (known && known.value === value) {
      known.modRevision = modRevision;
      return known;
    }
    const h: Held = { value, modRevision };
    this.memo.set(key, h);
    return h;
  }

  /** Resources from stored keys: pools, nodes, the IPAM config, and blocks as the affinities they are. */
  private resourcesFrom(kvs: Map<string, Held>): ClusterResources {
    const docs: unknown[] = [];
    const blocks: { key: string; record: BlockRecord }[] = [];
    for (const [key, h] of [...kvs].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (this.keys.resourceOf(key)) docs.push(parseOnce(h, key));
      else if (this.keys.blockCidr(key)) blocks.push({ key, record: parseOnce(h, key) as BlockRecord });
    }
    const r = resourcesFromDocuments(docs);
    r.affinities = blocks.flatMap(({ key, record }) => {
      const cidr = this.keys.blockCidr(key)!;
      const node = ownerOf(record);
      const pool = r.pools.find((p) => contains(p.cidr, cidr.ip));
      // a block of a pool deleted with --force, or of another size, is not routed: said once per load
      if (!node || !pool || pool.blockSize !== cidr.prefix) {
        log.debug(`etcd: block ${formatCidr(cidr)} (${record.affinity}) is in no pool of its size: ignored`);
        return [];
      }
      return [{ name: `${node}-${formatCidr(cidr).replace(/[./:]/g, '-')}`, node, cidr }];
    });
    return r;
  }

  // Writes, for `tabby apply/delete`, registration and block claims.

  async getResource(kind: ResourceKind, name: string): Promise<KeyValue | undefined> {
    return this.etcd().get(this.keys.resource(kind, name));
  }

  async putResource(kind: ResourceKind, name: string, doc: object): Promise<void> {
    await this.etcd().put(this.keys.resource(kind, name), JSON.stringify(doc));
  }

  async deleteResource(kind: ResourceKind, name: string): Promise<boolean> {
    return (await this.etcd().delete(this.keys.resource(kind, name))).deleted > 0;
  }

  /** Every block record, with its owner and revision. */
  async blockRecords(): Promise<{ key: string; record: BlockRecord; modRevision: string }[]> {
    const r = await this.etcd().range({ prefix: this.keys.blocks });
    return r.kvs.flatMap((kv) => {
      try {
        return [{ key: kv.key, record: JSON.parse(kv.value) as BlockRecord, modRevision: kv.modRevision }];
      } catch {
        return [];
      }
    });
  }
}

function parseOnce(h: Held, key: string): unknown {
  if (h.parsed === undefined) {
    try {
      h.parsed = Object.freeze(JSON.parse(h.value));
    } catch {
      throw new Error(`etcd key ${key}: not JSON`);
    }
  }
  return h.parsed;
}
