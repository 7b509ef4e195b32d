import { describe, expect, it } from 'vitest';
import { documentsFromText, parseClusterText, resourcesFromDocuments } from '../../conf/calico';
import { DocumentCache, splitDocuments } from '../../conf/cluster-documents';
import { bigClusterYaml, bigNodeAddress, moveBigNode } from '../helpers/big-cluster';

const messageOf = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'no error',
    (e: Error) => e.message,
  );
const show = (t: string) => JSON.stringify(t);

/** Texts the splitter must read document for document as the YAML parser does. */
const SPLITTABLE = [
  '',
  '# nothing yet\n',
  '\n\n',
  '---\n',
  '---',
  'a: 1\n---\n',
  '# leading comment\n---\na: 1\n',
  '  \n# x\n  # y\n---\na: 1',
  'a: 1\n--- # a comment on the marker\nb: 2',
  '---\t\na: 1\n---   \nb: [1, 2]\n',
  '---\n---\n',
  'a: 1\n---\n# only a comment\n---\nb: 2\n',
  'a: |\n  x\n---\nb: 1',
  'a: |+\n  kept\n\n\n---\nb: >\n  folded\n  text\n',
  'a: &x {k: v}\nb: *x\n---\nc: *y\n'.replace('*y', '2'),
  'a: 1\r\n---\r\nb: 2\r\n---  # crlf\r\nc: 3\r\n',
  '- one\n- two\n---\n.dot: 1\n-x: 2\n',
  'a: a plain\n  scalar on\n  three lines\n---\nb: "quoted\n  across lines"\n',
  'kind: IPPoolList\nitems:\n- {kind: IPPool}\n---\n{apiVersion: v3, kind: Node}\n',
];

/** Texts it must leave to a whole parse. */
const WHOLE = [
  ['a YAML directive', '%YAML 1.2\n---\na: 1\n'],
  ['a document end marker', 'a: 1\n...\n---\nb: 2\n'],
  ['content on a --- line', 'a: 1\n--- {b: 2}\n'],
  ['a block scalar on a --- line', '--- |\n  text\n'],
  ['a line that starts with --- but is no marker', 'a: 1\n---x: 2\n'],
  ['one JSON object', '{"kind": "IPPool"}'],
  ['a JSON array', '  \n[{"kind": "IPPool"}, {"kind": "Node"}]'],
  ['YAML flow style at the start', '{kind: IPPool}\n---\n{kind: Node}\n'],
  ['a byte order mark', '\ufeffa: 1\n---\nb: 2\n'],
] as const;

describe('splitDocuments and DocumentCache give what a whole parse gives', () => {
  it.each(SPLITTABLE.map((t) => [show(t), t]))('%s', async (_, text) => {
    expect(splitDocuments(text)).toBeDefined();
    const cache = new DocumentCache();
    expect(await cache.documents(text)).toEqual(await documentsFromText(text));
    expect(cache.last.whole).toBe(false);
  });

  it.each(WHOLE)('falls back to a whole parse for %s', async (_, text) => {
    expect(splitDocuments(text)).toBeUndefined();
    const cache = new DocumentCache();
    expect(await cache.documents(text)).toEqual(await documentsFromText(text));
    expect(cache.last.whole).toBe(true);
    expect(cache.size).toBe(0);
  });

  it('counts a first document only when it has content', () => {
    expect(splitDocuments('# c\n---\na: 1\n')).toEqual(['a: 1\n']);
    expect(splitDocuments('a: 1\n---\nb: 2')).toEqual(['a: 1\n', 'b: 2']);
    expect(splitDocuments('a: 1\n---\n')).toEqual(['a: 1\n', '']);
  });

  it('splits a big cluster file into its documents', () => {
    expect(splitDocuments(bigClusterYaml(100))).toHaveLength(201);
  });
});

describe('DocumentCache, incremental', () => {
  const text = bigClusterYaml(50);

  it('returns the same objects for unchanged documents, and parses nothing', async () => {
    const cache = new DocumentCache();
    const first = await cache.documents(text);
    expect(cache.last).toEqual({ parsed: 101, reused: 0, whole: false });
    const again = await cache.documents(text);
    expect(cache.last).toEqual({ parsed: 0, reused: 101, whole: false });
    again.forEach((d, i) => expect(d).toBe(first[i]));
  });

  it('parses only the changed document', async () => {
    const cache = new DocumentCache();
    const first = await cache.documents(text);
    const changed = await cache.documents(moveBigNode(text, 7, '192.168.1.7/24'));
    expect(cache.last).toEqual({ parsed: 1, reused: 100, whole: false });
    const node7 = 1 + 2 * 7; // the pool, then a Node and a BlockAffinity per node
    changed.forEach((d, i) => (i === node7 ? expect(d).not.toBe(first[i]) : expect(d).toBe(first[i])));
    const moved = { metadata: { name: 'node-7' }, spec: { bgp: { ipv4Address: '192.168.1.7/24' } } };
    expect(changed[node7]).toMatchObject(moved);
    expect(first[node7]).toMatchObject({ spec: { bgp: { ipv4Address: bigNodeAddress(7) } } });
  });

  it('follows documents added and removed, and keeps only those of the latest text', async () => {
    const cache = new DocumentCache();
    const first = await cache.documents(text);
    const chunks = text.split('\n---\n');
    const extra = 'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: extra}\nspec: {}';
    const added = await cache.documents([...chunks.slice(0, 10), extra, ...chunks.slice(10)].join('\n---\n'));
    expect(cache.last).toEqual({ parsed: 1, reused: 101, whole: false });
    expect(added).toHaveLength(102);
    expect(added[10]).toMatchObject({ metadata: { name: 'extra' } });
    expect(added.slice(11)).toEqual(first.slice(10));
    added.slice(11).forEach((d, i) => expect(d).toBe(first[10 + i]));
    expect(cache.size).toBe(102);
    const removed = await cache.documents(chunks.slice(0, 21).join('\n---\n') + '\n');
    expect(cache.last).toEqual({ parsed: 0, reused: 21, whole: false });
    removed.forEach((d, i) => expect(d).toBe(first[i]));
    expect(cache.size).toBe(21);
  });

  it('hands out frozen documents', async () => {
    const [pool] = (await new DocumentCache().documents(text)) as { spec: { cidr: string } }[];
    expect(Object.isFrozen(pool)).toBe(true);
    expect(Object.isFrozen(pool.spec)).toBe(true);
  });

  it('goes back to splitting after a whole parse', async () => {
    const cache = new DocumentCache();
    await cache.documents(JSON.stringify({ kind: 'IPPool' }));
    expect(cache.last.whole).toBe(true);
    await cache.documents(text);
    expect(cache.last).toEqual({ parsed: 101, reused: 0, whole: false });
  });
});

describe('DocumentCache errors name the document as a whole parse does', () => {
  const docs = [
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.0.0.0/16}',
    'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n}\nspec: {}',
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: x}\nspec: {cidr: 10.1.0.0/16, blockSize: 12}',
  ];
  const text = docs.join('\n---\n') + '\n';

  it('for a field: document 3 (IPPool x): spec.blockSize', async () => {
    const expected = await messageOf(parseClusterText(text));
    expect(expected).toBe(
      'cluster file: document 3 (IPPool x): spec.blockSize: ' + 'must be between 20 and 30 for an IPv4 pool, got 12',
    );
    const cache = new DocumentCache();
    expect(await messageOf(cache.documents(text).then(resourcesFromDocuments))).toBe(expected);
    // and again when every document comes from the cache
    expect(await messageOf(cache.documents(text).then(resourcesFromDocuments))).toBe(expected);
    expect(cache.last.parsed).toBe(0);
  });

  it('for YAML syntax, with the line in the file, and a fix parses one document', async () => {
    const cache = new DocumentCache();
    const good = docs.slice(0, 2).join('\n---\n') + '\n';
    await cache.documents(good);
    const broken = good.replace('metadata: {name: n}', 'metadata: {name: [n}');
    const expected = await messageOf(parseClusterText(broken));
    expect(expected).toMatch(/^cluster file: document 2: \(YAML\): .*at line 8, column 20/); // the file's line
    expect(await messageOf(cache.documents(broken))).toBe(expected);
    expect(cache.size).toBe(2); // what was known before the error is kept
    await cache.documents(good);
    expect(cache.last).toEqual({ parsed: 0, reused: 2, whole: false });
  });

  it('for a name defined twice, also when two documents are the same text', async () => {
    const twice = [docs[0], docs[1], docs[1]].join('\n---\n');
    const expected = await messageOf(parseClusterText(twice));
    expect(expected).toBe('cluster file: document 3 (Node n): metadata.name: is defined twice');
    const parsed = await new DocumentCache().documents(twice);
    expect(() => resourcesFromDocuments(parsed)).toThrow(expected);
    // the same frozen object listed twice is read twice, so the second is the one named
    expect(() => resourcesFromDocuments([parsed[0], parsed[1], parsed[1]])).toThrow(expected);
    resourcesFromDocuments(parsed.slice(0, 2)); // remembered now
    expect(() => resourcesFromDocuments([parsed[0], parsed[1], parsed[1]])).toThrow(expected);
  });
});

describe('resourcesFromDocuments on the documents of a DocumentCache', () => {
  it('reads each document once, and gives what plain documents give', async () => {
    const cache = new DocumentCache();
    const text = bigClusterYaml(20, { mode: 'Always' });
    const docs = await cache.documents(text);
    const r1 = resourcesFromDocuments(docs);
    const r2 = resourcesFromDocuments(await cache.documents(moveBigNode(text, 3)));
    expect(r2.pools[0]).toBe(r1.pools[0]);
    expect(r2.affinities).toEqual(r1.affinities);
    r2.affinities.forEach((a, i) => expect(a).toBe(r1.affinities[i]));
    expect(r2.nodes[3]).not.toBe(r1.nodes[3]);
    expect(r2.nodes.filter((n, i) => n !== r1.nodes[i]).map((n) => n.name)).toEqual(['node-3']);
    expect(resourcesFromDocuments(JSON.parse(JSON.stringify(docs)))).toEqual(r1);
    expect(await parseClusterText(text)).toEqual(r1);
  });
});
