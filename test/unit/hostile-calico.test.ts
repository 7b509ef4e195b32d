// Property-based: the cluster file and `tabby apply` manifests, generated (issue 12 §3). Calico documents
// (IPPool, Node, BlockAffinity, IPAMConfiguration) mutated field by field, as YAML or JSON, and YAML that
// parsers find hard. A file is read into resources or refused with a CNI error (code 7) that names the
// document; the incremental reader agrees with a whole parse; a manifest is refused with a message
// naming the file. Never a crash.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { CniError } from '../../lib/cni/errors';
import { documentsFromText, resourcesFromDocuments } from '../../conf/calico';
import { DocumentCache } from '../../conf/cluster-documents';
import { readManifest } from '../../cmd/cli/resources';
import { baseClusterDocs, clusterText, fcParams, fcTimeout } from '../helpers/hostile';

const asYaml = (doc: unknown): string => stringify(doc);
const texts = clusterText(asYaml);

/** Reads a cluster file's text as the plugin does; returns the error, or undefined when it is valid. */
async function readCluster(read: (t: string) => Promise<unknown[]>, text: string): Promise<CniError | undefined> {
  try {
    resourcesFromDocuments(await read(text));
    return undefined;
  } catch (e) {
    if (!(e instanceof CniError))
      throw new Error(`threw ${(e as Error)?.constructor?.name}, not a CniError: ${(e as Error)?.message ?? e}`);
    expect(e.code).toBe(7);
    expect(e.message).toMatch(/^cluster file: /);
    return e;
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-hostile-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('cluster file, generated', () => {
  it(
    'is read into resources or refused with code 7 naming the document',
    async () => {
      await fc.assert(
        fc.asyncProperty(texts, async (text) => {
          await readCluster(documentsFromText, text);
        }),
        fcParams(400),
      );
    },
    fcTimeout(400, 300),
  );

  it(
    'the incremental reader (after the base file) agrees with a whole parse',
    async () => {
      const base = baseClusterDocs()
        .map((d) => asYaml(d))
        .join('---\n');
      await fc.assert(
        fc.asyncProperty(texts, async (text) => {
          const cache = new DocumentCache();
          await cache.documents(base);
          const whole = await readCluster(documentsFromText, text);
          const incremental = await readCluster((t) => cache.documents(t), text);
          // yaml reports a stack overflow (deep nesting) at the position it reached, which depends on the stack
          const same = (e?: CniError) => e?.message.replace(/(Maximum call stack size exceeded) at line .*/s, '$1');
          expect(same(incremental)).toBe(same(whole));
        }),
        fcParams(200),
      );
    },
    fcTimeout(200, 300),
  );

  it(
    'a `tabby apply` manifest is read or refused with an error naming the file, never a TypeError',
    async () => {
      const file = path.join(dir, 'manifest.yaml');
      await fc.assert(
        fc.asyncProperty(texts, async (text) => {
          fs.writeFileSync(file, text);
          try {
            const { docs } = await readManifest(file);
            for (const d of docs) {
              expect(['IPPool', 'Node', 'IPAMConfiguration']).toContain(d.kind);
              expect(typeof d.name === 'string' && d.name !== '').toBe(true);
            }
          } catch (e) {
            const err = e as Error;
            if (err.constructor !== Error && !(err instanceof CniError))
              throw new Error(`threw ${err?.constructor?.name}: ${err?.message ?? e}`);
            expect(err.message.startsWith(`${file}: `), err.message).toBe(true);
          }
        }),
        fcParams(200),
      );
    },
    fcTimeout(200, 300),
  );
});

// Failures fast-check found, kept as plain cases (the shrunk counterexample).
describe('hostile cluster file regressions', () => {
  const bomb = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]', 'a1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]']
    .concat('a2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]')
    .join('\n');
  const node = JSON.stringify(baseClusterDocs()[1]);

  it('a YAML alias bomb is a cluster file error (code 7) naming the document, not a ReferenceError', async () => {
    const err = await readCluster(documentsFromText, `${node}\n---\n${bomb}\n`);
    expect(err?.message).toMatch(/^cluster file: document 2: \(YAML\): Excessive alias count/);
  });

  it('the incremental reader refuses the alias bomb the same way', async () => {
    const cache = new DocumentCache();
    await cache.documents(`${node}\n`);
    const err = await readCluster((t) => cache.documents(t), `${node}\n---\n${bomb}\n`);
    expect(err?.message).toMatch(/^cluster file: document 2: \(YAML\): Excessive alias count/);
  });

  it('`tabby apply` refuses the alias bomb with a message naming the file', async () => {
    const file = path.join(dir, 'bomb.yaml');
    fs.writeFileSync(file, `${node}\n---\n${bomb}\n`);
    await expect(readManifest(file)).rejects.toThrow(
      new RegExp(`^${file}: document 2: \\(YAML\\): Excessive alias count`),
    );
  });
});
