// Collecting garbage when the agent is idle. Each apply at 5,000 nodes leaves tens of MB of short-lived
// objects, and V8 grows its heap rather than collect them at once: the agent's resident size climbed
// from ~130 MB after its first apply to ~170-180 MB over a few changes (bench/scale.mjs). A full
// collection a moment after the last apply keeps it near what the agent holds, off the apply's path.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

let collect: (() => void) | undefined;
let timer: NodeJS.Timeout | undefined;

/** Above this resident size the collection runs at once, after the apply, rather than when idle. */
const PRESSING_RSS = 135 * 1024 * 1024;

/**
 * Called after each apply (the kernel holds it by then): one full collection `delayMs` after the last
 * call, or right away when the process is large (a big cluster changing often would otherwise grow the
 * heap between idle moments).
 */
export function collectWhenIdle(delayMs = 1000): void {
  if (!collect) {
    // the only way to reach gc() without a command-line flag (the executable takes none)
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  clearTimeout(timer);
  if (process.memoryUsage.rss() > PRESSING_RSS) {
    collect();
    return;
  }
  timer = setTimeout(() => collect!(), delayMs);
  timer.unref();
}
