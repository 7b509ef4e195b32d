// `tabby agent --cluster-source FILE`: keeps the conflist's cluster file (on the host, where the plugin
// reads it) a copy of FILE (a ConfigMap mount in the agent's container). The plugin and the agent then
// read one file, so a pod start can tell from its revision whether the agent has applied it. A source
// that fails validation, or holds no IPPool, is not copied: the host keeps the last good file.
import * as fs from 'node:fs';
import { writeAtomic } from '../fs';
import { log } from '../log';
import { validateClusterText } from '../../conf/cluster-text';
import { watchFile } from '../datastore/watch-file';
import type { Watcher } from '../datastore/datastore';

export class Mirror {
  /** The last refusal logged, so a bad source is reported once, not on every event. */
  private refused?: string;

  constructor(
    private readonly source: string,
    private readonly dest: string,
  ) {}

  /** Copies the source over the destination when their contents differ and the source is valid; true when it wrote. */
  async once(): Promise<boolean> {
    const { source, dest } = this;
    let text: Buffer;
    try {
      text = fs.readFileSync(source);
    } catch (e) {
      log.warn(`--cluster-source ${source}: ${(e as Error).message}; ${dest} left as it is`);
      return false;
    }
    try {
      if (fs.readFileSync(dest).equals(text)) return false;
    } catch {
      /* no copy yet */
    }
    const why = await validateClusterText(text.toString('utf8'), source).then(
      () => undefined,
      (e: Error) => e.message,
    );
    if (why) {
      if (why !== this.refused)
        log.error(`--cluster-source ${source} refused (${dest} keeps the last good file): ${why}`);
      this.refused = why;
      return false;
    }
    if (this.refused) log.info(`--cluster-source ${source} is valid again`);
    this.refused = undefined;
    writeAtomic(dest, text);
    log.info(`copied ${source} to ${dest}`);
    return true;
  }
}

export function mirrorFile(source: string, dest: string): Watcher {
  const m = new Mirror(source, dest);
  // events are serialised: a copy checked while an older one is still being checked could land first
  let chain: Promise<unknown> = m.once();
  const next = () => (chain = chain.then(() => m.once()).catch((e) => log.error(`--cluster-source: ${e.message}`)));
  chain.catch((e) => log.error(`--cluster-source: ${(e as Error).message}`));
  return watchFile(source, () => void next());
}
