import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniError, Code } from '../cni/errors';
import { ClusterResources, resourcesFromDocuments } from '../../conf/calico';
import { DocumentCache } from '../../conf/cluster-documents';
import { Datastore, Watcher } from './datastore';
import { watchFile } from './watch-file';

// The JSON of each frozen document (what a DocumentCache returns): the next load of a changed file writes
// the cache again, and only the changed documents are new objects.
const json = new WeakMap<object, string>();

/** A document as JSON.stringify writes it inside an array. */
function jsonOf(doc: unknown): string {
  const frozen = typeof doc === 'object' && doc !== null && Object.isFrozen(doc);
  const known = frozen ? json.get(doc) : undefined;
  if (known !== undefined) return known;
  const text = JSON.stringify(doc) ?? 'null';
  if (frozen) json.set(doc, text);
  return text;
}

/**
 * The cluster file: multi-document YAML (or JSON) of Calico resources. Parsing YAML costs tens of
 * milliseconds, so the parsed documents are cached as JSON in `cacheDir`, keyed by the file's identity
 * (device, inode, size, mtime); a pod start reads the cache, never the YAML parser.
 *
 * A long-running process keeps one instance: it parses only the documents that changed since its last
 * load, and reads the JSON cache only until it has parsed the file itself.
 */
const CACHE_DELAY_MS = 250;

export class ClusterFile implements Datastore {
  readonly description: string;
  readonly remote = false;
  private readonly documents = new DocumentCache();
  /** The documents this instance last parsed from the file, and the revision they are of. */
  private parsed?: { revision: string; docs: unknown[] };
  private cacheTimer?: NodeJS.Timeout;
  private pendingCache?: { rev: string; docs: unknown[] };

  constructor(
    private readonly file: string,
    private readonly cacheDir?: string,
  ) {
    this.description = `file ${file}`;
  }

  watch(onChange: (reason: string) => void): Watcher {
    return watchFile(this.file, () => onChange('cluster file changed'));
  }

  async revision(): Promise<string> {
    const st = this.stat();
    return `file:${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  }

  async load(): Promise<ClusterResources> {
    const rev = await this.revision();
    // Validated again each time: the documents are frozen, so only the checks across resources cost anything.
    if (this.parsed?.revision === rev) return resourcesFromDocuments(this.parsed.docs);
    const cached = this.parsed ? undefined : this.fromCache(rev);
    if (cached) return cached;
    const docs = await this.documents.documents(this.text());
    const resources = resourcesFromDocuments(docs);
    const reload = this.parsed !== undefined;
    this.parsed = { revision: rev, docs };
    if (!reload) this.writeCache(rev, docs);
    else {
      // A long-running process (the agent) writes the cache for other processes once its apply is done:
      // a change reaches the kernel without waiting for 1 MB of JSON at 5,000 nodes.
      clearTimeout(this.cacheTimer);
      this.pendingCache = { rev, docs };
      this.cacheTimer = setTimeout(() => this.flushCache(), CACHE_DELAY_MS);
      this.cacheTimer.unref();
    }
    return resources;
  }

  /** Writes now the JSON cache a reload deferred. */
  flushCache(): void {
    clearTimeout(this.cacheTimer);
    const p = this.pendingCache;
    this.pendingCache = undefined;
    if (p) this.writeCache(p.rev, p.docs);
  }

  private get cacheFile(): string | undefined {
    return this.cacheDir ? path.join(this.cacheDir, 'cluster.cache.json') : undefined;
  }

  /** The resources of the JSON cache when it is of this revision and still valid. */
  private fromCache(rev: string): ClusterResources | undefined {
    if (!this.cacheFile) return undefined;
    try {
      const c = JSON.parse(fs.readFileSync(this.cacheFile, 'utf8')) as { revision: string; docs: unknown[] };
      if (c.revision === rev) return resourcesFromDocuments(c.docs);
    } catch {
      /* no cache yet, or unreadable: parse the file */
    }
    return undefined;
  }

  private writeCache(rev: string, docs: unknown[]): void {
    const cache = this.cacheFile;
    if (!cache) return;
    try {
      fs.mkdirSync(path.dirname(cache), { recursive: true });
      const tmp = `${cache}.${process.pid}`;
      fs.writeFileSync(tmp, `{"revision":${JSON.stringify(rev)},"docs":[${docs.map(jsonOf).join(',')}]}`);
      fs.renameSync(tmp, cache);
    } catch {
      /* a cache we cannot write only costs time */
    }
  }

  private text(): string {
    try {
      return fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      throw new CniError(Code.InvalidNetworkConfig, `cluster file ${this.file}: ${(e as Error).message}`);
    }
  }

  private stat(): fs.Stats {
    try {
      return fs.statSync(this.file);
    } catch (e) {
      throw new CniError(Code.InvalidNetworkConfig, `cluster file ${this.file}: ${(e as Error).message}`);
    }
  }
}
