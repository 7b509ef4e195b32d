import * as fs from 'node:fs';
import * as net from 'node:net';
import { CniError, Code } from '../lib/cni/errors';

/**
 * The IPAM store's lock: a listening socket bound to an abstract unix address named after the
 * directory (device and inode). Only one process can bind a name, and the kernel frees it when the
 * socket closes, whatever the reason: a holder killed with SIGKILL blocks nobody, and there is no
 * staleness to guess. Waiters do not poll: each connects to the holder and is woken when the holder
 * closes its socket (on release or at death), then races to bind again.
 *
 * Abstract names live in a network namespace, so every tabby process that shares a data directory
 * must run in one network namespace, as CNI plugins do (the host's, or the node's). Addresses are
 * still never handed out twice across namespaces, or alongside the reference host-local (which
 * flock(2)s `<dir>/lock` instead): each reservation file is created with O_EXCL.
 */

/** How long a waiter waits for a live holder before giving up with code 11 (try again later). */
export const DEFAULT_LOCK_TIMEOUT_MS = 20_000;
export const LOCK_TIMEOUT_ENV = 'TABBY_IPAM_LOCK_TIMEOUT_MS';

export function lockTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env[LOCK_TIMEOUT_ENV]);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_LOCK_TIMEOUT_MS;
}

/** The abstract socket address that locks `dir` (which must exist). */
export function lockName(dir: string): string {
  const st = fs.statSync(dir);
  return `\0tabby-ipam-lock/${st.dev}/${st.ino}`;
}

interface Held {
  server: net.Server;
  waiters: Set<net.Socket>;
}

function bind(name: string): Promise<Held | undefined> {
  return new Promise((resolve, reject) => {
    const waiters = new Set<net.Socket>();
    const server = net.createServer((s) => {
      // a waiter: keep its connection open until release, so that closing it wakes the waiter
      waiters.add(s);
      s.on('error', () => undefined);
      s.on('close', () => waiters.delete(s));
    });
    server.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' ? resolve(undefined) : reject(e)));
    server.listen({ path: name, exclusive: true }, () => {
      server.removeAllListeners('error');
      server.on('error', () => undefined);
      server.unref();
      resolve({ server, waiters });
    });
  });
}

/** Resolves when the current holder lets go: 'released' when its socket closed, or the connect error. */
function waitForRelease(name: string, deadline: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect({ path: name });
    const timer = setTimeout(() => sock.destroy(), Math.max(0, deadline - Date.now()));
    let why = 'released';
    sock.on('error', (e: NodeJS.ErrnoException) => { why = e.code ?? 'error'; });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(why);
    });
  });
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Holds the lock of `dir` while `fn` runs. */
export async function withDirLock<T>(dir: string, fn: () => T | Promise<T>, timeoutMs = lockTimeoutMs()): Promise<T> {
  let name: string;
  try {
    name = lockName(dir);
  } catch (e) {
    throw new CniError(Code.IOFailure, `cannot lock IPAM store ${dir}: ${(e as Error).message}`);
  }
  const deadline = Date.now() + timeoutMs;
  let held: Held | undefined;
  for (let refused = 0; ; ) {
    try {
      held = await bind(name);
    } catch (e) {
      throw new CniError(Code.IOFailure, `cannot lock IPAM store ${dir}: ${(e as Error).message}`);
    }
    if (held) break;
    if (Date.now() >= deadline) {
      throw new CniError(Code.TryAgainLater, `cannot lock IPAM store ${dir}: another process has held it for over ${timeoutMs} ms`);
    }
    const why = await waitForRelease(name, deadline);
    // Refused: the holder let go between our bind and connect (or has bound and not yet listened);
    // EAGAIN: its backlog is full. Both are rare and brief: come back after a moment.
    if (why === 'ECONNREFUSED' && ++refused > 1) await pause(1);
    else if (why === 'EAGAIN') await pause(1 + Math.random() * 2);
    else if (why === 'released') refused = 0;
  }
  try {
    return await fn();
  } finally {
    held.server.close();
    for (const s of held.waiters) s.destroy();
  }
}
