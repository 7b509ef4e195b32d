import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { documentsFromText } from '../../conf/calico';
import { ClusterFile } from '../../lib/datastore/cluster-file';
import { formatCidr } from '../../lib/net/addr';
import { bigClusterYaml, moveBigNode } from '../helpers/big-cluster';

// Counts what the YAML parser is asked to do, and whether it was loaded at all.
const yaml = vi.hoisted(() => ({ loaded: false, documents: 0, wholeParses: 0 }));
vi.mock('yaml', async (importOriginal) => {
  yaml.loaded = true;
  const real = await importOriginal<typeof import('yaml')>();
  return {
    ...real,
    parseDocument: (...a: Parameters<typeof real.parseDocument>) => {
      yaml.documents++;
      return real.parseDocument(...a);
    },
    parseAllDocuments: (...a: Parameters<typeof real.parseAllDocuments>) => {
      yaml.wholeParses++;
      return real.parseAllDocuments(...a);
    },
  };
});

let dir: string;
let file: string;
let stateDir: string;
let mtime = Date.now();
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-cluster-inc-'));
  file = path.join(dir, 'cluster.yaml');
  stateDir = path.join(dir, 'state');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes the file with a distinct mtime, as an edit on a coarse clock would not. */
function write(text: string): void {
  fs.writeFileSync(file, text);
  mtime += 5000;
  fs.utimesSync(file, new Date(mtime), new Date(mtime));
}

const cacheFile = () => path.join(stateDir, 'cluster.cache.json');
const cached = () => JSON.parse(fs.readFileSync(cacheFile(), 'utf8')) as { revision: string; docs: unknown[] };

describe('ClusterFile, one-shot and long-running', () => {
  // First in this file: nothing has loaded yaml yet.
  it('reads the JSON cache on a pod start and never loads the YAML parser', async () => {
    write('not: [yaml'); // would fail to parse: the cache must be what is read
    const ds = new ClusterFile(file, stateDir);
    const pool = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'p' },
      spec: { cidr: '10.1.0.0/16' },
    };
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(cacheFile(), JSON.stringify({ revision: await ds.revision(), docs: [pool] }));
    expect((await ds.load()).pools.map((p) => p.name)).toEqual(['p']);
    expect(yaml.loaded).toBe(false);
  });

  it('parses only the changed documents on the next load, and rewrites the JSON cache', async () => {
    const text = bigClusterYaml(200);
    write(text);
    const ds = new ClusterFile(file, stateDir);
    const before = yaml.documents;
    const r1 = await ds.load();
    expect(yaml.loaded).toBe(true); // the counting above works
    expect(yaml.documents - before).toBe(401);
    expect(r1.nodes).toHaveLength(200);

    write(moveBigNode(text, 42, '192.168.7.42/24'));
    const r2 = await ds.load();
    expect(yaml.documents - before).toBe(402);
    expect(formatCidr(r2.nodes[42].ipv4Address!)).toBe('192.168.7.42/24');
    expect(r2.affinities).toEqual(r1.affinities);
    ds.flushCache(); // a reload writes the cache once its caller's apply is done
    expect(cached().revision).toBe(await ds.revision());
    // a pod start now reads the same resources from the cache
    expect(await new ClusterFile(file, stateDir).load()).toEqual(r2);
    expect(cached().docs).toEqual(await documentsFromText(fs.readFileSync(file, 'utf8')));
  });

  it('reads nothing again while the revision stays the same', async () => {
    write(bigClusterYaml(20));
    const ds = new ClusterFile(file, stateDir);
    const r1 = await ds.load();
    const parses = yaml.documents + yaml.wholeParses;
    const r2 = await ds.load();
    expect(yaml.documents + yaml.wholeParses).toBe(parses);
    expect(r2).toEqual(r1);
    expect(r2).not.toBe(r1); // a fresh object: a caller may change its own
  });

  it('after starting from the JSON cache, parses the file once it changes', async () => {
    const text = bigClusterYaml(20, { mode: 'Always' });
    write(text);
    await new ClusterFile(file, stateDir).load(); // writes the cache
    const ds = new ClusterFile(file, stateDir);
    const docs = yaml.documents;
    await ds.load();
    expect(yaml.documents).toBe(docs); // from the cache
    write(moveBigNode(text, 3));
    expect((await ds.load()).nodes[3].ipv4Address).toBeDefined();
    expect(yaml.documents - docs).toBe(41);
  });

  it('keeps the error messages, and caches nothing for a bad file', async () => {
    const text = bigClusterYaml(5);
    write(text);
    const ds = new ClusterFile(file, stateDir);
    await ds.load();
    const rev = cached().revision;
    write(text.replace('blockSize: 26', 'blockSize: 12'));
    const blockSize = /^cluster file: document 1 \(IPPool pool-a\): spec\.blockSize: must be between 20/;
    await expect(ds.load()).rejects.toThrow(blockSize);
    write(text.replace('metadata: {name: node-2}', 'metadata: {name: [node-2}'));
    await expect(ds.load()).rejects.toThrow(/^cluster file: document 6: \(YAML\): .* at line 28, column 25/);
    expect(cached().revision).toBe(rev);
    write(text);
    expect((await ds.load()).nodes).toHaveLength(5);
  });
});
