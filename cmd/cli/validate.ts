import { command } from './command';
import { readText } from './files';
import { validateClusterText } from '../../conf/cluster-text';

/**
 * `tabby validate FILE`: a cluster file checked offline, with no conflist and no node, by the same code
 * the datastore reads it with (conf/cluster-text.ts), so its messages are the datastore's: document,
 * resource, field. `tabby install --cluster-file` runs the same check before it writes.
 */

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
