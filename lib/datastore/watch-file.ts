// Following a file with inotify: its directory (edits, renames over it, a ConfigMap mount swapping its
// `..data` symlink) and, when it is a symlink, its target's directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { log } from '../log';
import type { Watcher } from './datastore';

/**
 * Calls `onChange` when anything in the directories holding `file` changes: the file's own directory
 * (edits, renames, a swapped symlink) and, when it is a symlink, its target's. The caller decides by
 * the datastore revision whether it really changed, so spurious events cost a stat.
 */
export function watchFile(file: string, onChange: () => void): Watcher {
  const watchers = new Map<string, fs.FSWatcher>();
  let closed = false;
  const dirs = (): string[] => {
    const out = new Set([path.dirname(file)]);
    try {
      out.add(path.dirname(fs.realpathSync(file)));
    } catch {
      /* not there yet: its directory is watched */
    }
    return [...out];
  };
  const refresh = (): void => {
    if (closed) return;
    const want = dirs();
    for (const [d, w] of watchers) {
      if (want.includes(d)) continue;
      w.close();
      watchers.delete(d);
    }
    for (const d of want) {
      if (watchers.has(d)) continue;
      try {
        const w = fs.watch(d, { persistent: false }, () => {
          refresh(); // a swapped symlink may point into a new directory
          onChange();
        });
        w.on('error', () => {
          w.close();
          watchers.delete(d);
          setTimeout(refresh, 1000).unref();
        });
        watchers.set(d, w);
      } catch (e) {
        log.warn(`cannot watch ${d}: ${(e as Error).message}; retrying`);
        setTimeout(refresh, 1000).unref();
      }
    }
  };
  refresh();
  return {
    close() {
      closed = true;
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
