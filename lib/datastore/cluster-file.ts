import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniError, Code } from '../cni/errors';
import { ClusterResources, parseClusterText, resourcesFromDocuments } from '../../conf/calico';
import { Datastore } from './datastore';

/**
 * The cluster file: multi-document YAML (or JSON) of Calico resources. Parsing YAML costs tens of
 * milliseconds, so the parsed documents are cached as JSON in `cacheDir`, keyed by the file's identity
 * (device, inode, size, mtime); a pod start reads the cache, never the YAML parser.
 */
export class ClusterFile implements Datastore {
  readonly description: string;

  constructor(private readonly file: string, private readonly cacheDir?: string) {
    this.description = `file ${file}`;
  }

  async revision(): Promise<string> {
    const st = this.stat();
    return `file:${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  }

  async load(): Promise<ClusterResources> {
    const rev = await this.revision();
    const cache = this.cacheDir ? path.join(this.cacheDir, 'cluster.cache.json') : undefined;
    if (cache) {
      try {
        const c = JSON.parse(fs.readFileSync(cache, 'utf8')) as { revision: string; docs: unknown[] };
        if (c.revision === rev) return resourcesFromDocuments(c.docs);
      } catch { /* no cache yet, or unreadable: parse the file */ }
    }
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      throw new CniError(Code.InvalidNetworkConfig, `cluster file ${this.file}: ${(e as Error).message}`);
    }
    const docs: unknown[] = [];
    const resources = await parseClusterText(text, docs);
    if (cache) {
      try {
        fs.mkdirSync(path.dirname(cache), { recursive: true });
        const tmp = `${cache}.${process.pid}`;
        fs.writeFileSync(tmp, JSON.stringify({ revision: rev, docs }));
        fs.renameSync(tmp, cache);
      } catch { /* a cache we cannot write only costs time */ }
    }
    return resources;
  }

  private stat(): fs.Stats {
    try {
      return fs.statSync(this.file);
    } catch (e) {
      throw new CniError(Code.InvalidNetworkConfig, `cluster file ${this.file}: ${(e as Error).message}`);
    }
  }
}
