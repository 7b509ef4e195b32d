// Whether a cluster file's text may be distributed: the datastore's own validation, and at least one
// IPPool (an empty or truncated file must never read as "delete every pool"). One check for
// `tabby validate`, `tabby install` (before it writes) and `tabby agent --cluster-source` (before it copies).
import { ClusterResources, parseClusterText } from './calico';

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
