import * as lockfile from 'proper-lockfile';
import { CniError, Code } from '../lib/cni/errors';

/**
 * A lock older than this, whose holder stopped refreshing it, is taken over: this bounds how long a
 * process killed while holding the lock can block others.
 */
export const STALE_LOCK_MS = 5000;

/**
 * Holds an exclusive lock on `dir` while `fn` runs. Retries are short and jittered rather than exponential:
 * the lock is held for about a millisecond, so waiters should come back quickly.
 */
export async function withDirLock<T>(dir: string, fn: () => T | Promise<T>): Promise<T> {
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(dir, {
      lockfilePath: `${dir}/tabby.lock`,
      realpath: false,
      stale: STALE_LOCK_MS,
      retries: { retries: 2000, minTimeout: 1, maxTimeout: 8, factor: 1.2, randomize: true },
    });
  } catch (e) {
    throw new CniError(Code.TryAgainLater, `cannot lock IPAM store ${dir}: ${(e as Error).message}`);
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => { /* lock dir already gone: nothing to release */ });
  }
}
