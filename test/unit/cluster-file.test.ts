import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterFile } from '../../lib/datastore/cluster-file';
import { Datastore } from '../../lib/datastore/datastore';
import { formatCidr } from '../../lib/net/addr';
import { expectCniErrorAsync } from './cni-error';

const YAML = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-a}
spec: {cidr: 10.244.0.0/16, blockSize: 24, vxlanMode: CrossSubnet, natOutgoing: true}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 192.168.10.11/24}}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: node-a-10-244-1-0-24}
spec: {node: node-a, cidr: 10.244.1.0/24}
`;

let dir: string;
let file: string;
let stateDir: string;
let cache: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-cluster-'));
  file = path.join(dir, 'cluster.yaml');
  stateDir = path.join(dir, 'state', 'node-a'); // does not exist yet
  cache = path.join(stateDir, 'cluster.cache.json');
  fs.writeFileSync(file, YAML);
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const readCache = () => JSON.parse(fs.readFileSync(cache, 'utf8')) as { revision: string; docs: Record<string, any>[] };

describe('ClusterFile', () => {
  it('is a Datastore that describes itself', () => {
    const ds: Datastore = new ClusterFile(file, stateDir);
    expect(ds.description).toBe(`file ${file}`);
  });

  it('parses the YAML and writes the parsed documents to the cache, keyed by the revision', async () => {
    const ds = new ClusterFile(file, stateDir);
    const r = await ds.load();
    expect(r.pools.map((p) => [p.name, formatCidr(p.cidr), p.vxlanMode, p.natOutgoing])).toEqual([
      ['pool-a', '10.244.0.0/16', 'CrossSubnet', true],
    ]);
    expect(r.nodes.map((n) => n.name)).toEqual(['node-a']);
    expect(r.affinities.map((a) => formatCidr(a.cidr))).toEqual(['10.244.1.0/24']);
    const c = readCache();
    expect(c.revision).toBe(await ds.revision());
    expect(c.docs.map((d) => d.kind)).toEqual(['IPPool', 'Node', 'BlockAffinity']);
    expect(c.docs[0].spec).toEqual({
      cidr: '10.244.0.0/16',
      blockSize: 24,
      vxlanMode: 'CrossSubnet',
      natOutgoing: true,
    });
    expect(fs.readdirSync(stateDir)).toEqual(['cluster.cache.json']); // no temp file left behind
  });

  it('reads the cache, not the file, while the revision matches', async () => {
    await new ClusterFile(file, stateDir).load();
    // Edit the cached documents only: what load returns shows where it came from.
    const c = readCache();
    c.docs[0].metadata.name = 'from-the-cache';
    fs.writeFileSync(cache, JSON.stringify(c));
    const r = await new ClusterFile(file, stateDir).load();
    expect(r.pools.map((p) => p.name)).toEqual(['from-the-cache']);
  });

  it('still validates what comes from the cache, and falls back to the file when it does not pass', async () => {
    await new ClusterFile(file, stateDir).load();
    const c = readCache();
    c.docs[0].spec.blockSize = 99;
    fs.writeFileSync(cache, JSON.stringify(c));
    const r = await new ClusterFile(file, stateDir).load();
    expect(r.pools[0].blockSize).toBe(24);
    expect(readCache().docs[0].spec.blockSize).toBe(24);
  });

  it('changes the revision when the file changes, and parses it again', async () => {
    const ds = new ClusterFile(file, stateDir);
    await ds.load();
    const before = await ds.revision();
    expect(await ds.revision()).toBe(before); // stable while nothing changes
    fs.writeFileSync(file, YAML.replace('natOutgoing: true', 'natOutgoing: false'));
    const t = new Date(Date.now() + 5000);
    fs.utimesSync(file, t, t); // a distinct mtime even on a coarse clock
    const after = await ds.revision();
    expect(after).not.toBe(before);
    const r = await ds.load();
    expect(r.pools[0].natOutgoing).toBe(false);
    ds.flushCache(); // a reload writes the cache once its caller's apply is done
    expect(readCache().revision).toBe(after);
  });

  it('changes the revision on a same-size rewrite (mtime) and on a replaced file (inode)', async () => {
    const ds = new ClusterFile(file, stateDir);
    const r0 = await ds.revision();
    const t = new Date(Date.now() + 10_000);
    fs.utimesSync(file, t, t);
    const r1 = await ds.revision();
    expect(r1).not.toBe(r0);
    const tmp = `${file}.new`;
    fs.writeFileSync(tmp, YAML);
    fs.utimesSync(tmp, t, t);
    fs.renameSync(tmp, file); // same size, same mtime, another inode
    expect(await ds.revision()).not.toBe(r1);
  });

  it('reparses when the cache is corrupt, and rewrites it', async () => {
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(cache, '{not json');
    const r = await new ClusterFile(file, stateDir).load();
    expect(r.pools).toHaveLength(1);
    expect(readCache().docs).toHaveLength(3);
  });

  it('reads a JSON cluster file (a List kind)', async () => {
    const json = path.join(dir, 'cluster.json');
    fs.writeFileSync(
      json,
      JSON.stringify(
        {
          apiVersion: 'projectcalico.org/v3',
          kind: 'IPPoolList',
          items: [
            {
              apiVersion: 'projectcalico.org/v3',
              kind: 'IPPool',
              metadata: { name: 'p' },
              spec: { cidr: '10.1.0.0/16', ipipMode: 'Always' },
            },
          ],
        },
        null,
        2,
      ),
    );
    const ds = new ClusterFile(json, stateDir);
    const r = await ds.load();
    expect(r.pools.map((p) => [p.name, p.ipipMode, p.blockSize])).toEqual([['p', 'Always', 26]]);
    expect(readCache().revision).toBe(await ds.revision());
    expect((await new ClusterFile(json, stateDir).load()).pools[0].name).toBe('p');
  });

  it('works without a cache directory', async () => {
    const r = await new ClusterFile(file).load();
    expect(r.pools).toHaveLength(1);
    expect(fs.existsSync(stateDir)).toBe(false);
  });

  it('names the file when it is missing', async () => {
    const gone = path.join(dir, 'gone.yaml');
    await expectCniErrorAsync(
      new ClusterFile(gone, stateDir).load(),
      7,
      new RegExp(`cluster file ${gone.replace(/[.]/g, '\\.')}:.*ENOENT`),
    );
    await expectCniErrorAsync(new ClusterFile(gone, stateDir).revision(), 7, /ENOENT/);
  });

  it('rejects a bad file and caches nothing', async () => {
    fs.writeFileSync(file, YAML.replace('blockSize: 24', 'blockSize: 12'));
    await expectCniErrorAsync(
      new ClusterFile(file, stateDir).load(),
      7,
      /document 1 \(IPPool pool-a\): spec\.blockSize/,
    );
    expect(fs.existsSync(cache)).toBe(false);
  });
});
