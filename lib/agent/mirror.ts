// `tabby agent --cluster-source FILE`: keeps the conflist's cluster file (on the host, where the plugin
// reads it) a copy of FILE (a ConfigMap mount in the agent's container). The plugin and the agent then
// read one file, so a pod start can tell from its revision whether the agent has applied it.
import * as fs from 'node:fs';
import { writeAtomic } from '../fs';
import { log } from '../log';
import { watchFile } from '../datastore/watch-file';
import type { Watcher } from '../datastore/datastore';

/** Copies `source` over `dest` when their contents differ; true when it wrote. */
export function mirrorOnce(source: string, dest: string): boolean {
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
  writeAtomic(dest, text);
  log.info(`copied ${source} to ${dest}`);
  return true;
}

export function mirrorFile(source: string, dest: string): Watcher {
  mirrorOnce(source, dest);
  return watchFile(source, () => mirrorOnce(source, dest));
}
