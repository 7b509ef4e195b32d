import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

// The product's folders form a one-way hierarchy: each layer imports only the layers below it, so
// there are no cycles between folders. This reads every import and fails on an edge pointing up.

const ROOT = path.join(__dirname, '../..');

/** Bottom first. A file belongs to the longest layer path that contains it. */
const LAYERS = [
  'lib', // log, exec, fs, sha1, about, net/addr: no tabby concept above plain mechanics
  'lib/cni', // the CNI protocol
  'conf', // configuration and Calico resources, parsed and validated
  'ipam', // addresses and the on-disk store
  'lib/dataplane', // the kernel: iproute2 and nftables
  'lib/datastore', // where the cluster is described
  'lib/cluster', // what each node should hold, and keeping it applied
  'lib/agent', // the node daemon's loop, watches, health and metrics
  'cmd/plugin', // program: the CNI plugin and its tabby-ipam face
  'cmd/cli', // program: the command line for people
  'cmd', // the entry point choosing between the two
];

const rank = (layer: string) => LAYERS.indexOf(layer);

function layerOf(file: string): string {
  const rel = path.relative(ROOT, file);
  const dir = path.dirname(rel);
  const fits = LAYERS.filter((l) => dir === l || dir.startsWith(l + '/'));
  return fits.sort((a, b) => b.length - a.length)[0] ?? dir;
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]);
  return specs.map((s) => path.resolve(path.dirname(file), s) + '.ts');
}

const files = ['cmd', 'lib', 'conf', 'ipam'].flatMap((d) => sources(path.join(ROOT, d)));

describe('layers', () => {
  it('every product file sits in a known layer', () => {
    const unknown = files.filter((f) => rank(layerOf(f)) < 0).map((f) => path.relative(ROOT, f));
    expect(unknown).toEqual([]);
  });

  it('every import points to the same layer or one below', () => {
    const upward: string[] = [];
    for (const f of files) {
      const from = layerOf(f);
      for (const target of importsOf(f)) {
        const to = layerOf(target);
        if (rank(to) > rank(from))
          upward.push(`${path.relative(ROOT, f)} (${from}) imports ${path.relative(ROOT, target)} (${to})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('the two programs do not import each other', () => {
    const crossing = files.flatMap((f) => {
      const from = layerOf(f);
      if (!from.startsWith('cmd/')) return [];
      return importsOf(f)
        .filter((t) => layerOf(t).startsWith('cmd/') && layerOf(t) !== from)
        .map((t) => `${path.relative(ROOT, f)} imports ${path.relative(ROOT, t)}`);
    });
    expect(crossing).toEqual([]);
  });

  it('the test reads real imports (a file with a known upward edge would fail)', () => {
    const lib = files.find((f) => f.endsWith(path.join('lib', 'log.ts')))!;
    expect(layerOf(lib)).toBe('lib');
    expect(importsOf(path.join(ROOT, 'lib/cluster/context.ts')).some((t) => layerOf(t) === 'lib/dataplane')).toBe(true);
  });
});
