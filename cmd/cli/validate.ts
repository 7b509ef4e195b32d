import { command } from './command';
import { readText } from './files';
import { ClusterResources, parseClusterText } from '../../conf/calico';

/**
 * `tabby validate FILE`: a cluster file checked offline, with no conflist and no node, by the same code
 * the datastore reads it with (conf/calico.ts), so its messages are the datastore's: document,
 * resource, field. `tabby install --cluster-file` runs the same check before it writes.
 */

/**
 * The resources of a cluster file's text, or an error naming `file`, the document, the resource and the
 * field. A file without an IPPool is an error too: an empty or truncated file must never read as
 * "delete every pool".
 */
export async function validateClusterText(text: string, file: string): Promise<ClusterResources> {
  let r: ClusterResources;
  try {
    r = await parseClusterText(text);
  } catch (e) {
    // the datastore says "cluster file: document 2 (IPPool a): ..."; here the file has a name
    throw new Error((e as Error).message.replace(/^cluster file: /, `${file}: `).trimEnd());
  }
  if (r.pools.length === 0) {
    throw new Error(
      `${file}: holds no IPPool${text.trim() === '' ? ' (the file is empty)' : ''}: nodes refuse it and keep their dataplane. ` +
        'An empty or truncated cluster description never means "remove every pool"; to take a node\'s overlay down on purpose, run `tabby teardown`',
    );
  }
  return r;
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

export const validateCommand = command({
  name: 'validate',
  summary: 'check a cluster file offline, as the datastore reads it (no conflist, no node needed)',
  options: {},
  positionals: [
    {
      name: 'FILE',
      help: 'the cluster file: YAML documents or JSON of IPPool, Node, BlockAffinity, IPAMConfiguration',
    },
  ],
  details: `Exit 0 with a one-line summary when the file is valid; exit 1 with the datastore's message
(document, resource, field) when it is not. A file without an IPPool is refused too.`,
  async run(_, [file]) {
    const r = await validateClusterText(readText(file), file);
    process.stdout.write(
      `${file}: valid: ${plural(r.pools.length, 'pool')}, ${plural(r.nodes.length, 'node')}, ${plural(r.affinities.length, 'block')}${r.ipamConfig ? ', an IPAMConfiguration' : ''}\n`,
    );
    return 0;
  },
});
