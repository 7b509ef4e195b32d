import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lockName, withDirLock } from '../../ipam/lock';
import { expectCniErrorAsync } from './cni-error';

// The IPAM lock: an abstract unix socket per data directory, freed by the kernel when its holder dies.

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-lock-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * Another process that binds the lock of `dir` and keeps it until killed. It prints "held" once it
 * holds the lock and "waiter" for each process that connects to wait for it.
 */
function foreignHolder(name: string) {
  const script = `
    const net = require('node:net');
    const srv = net.createServer((s) => { s.on('error', () => {}); process.stdout.write('waiter\\n'); });
    srv.listen({ path: '\\0' + process.argv[1], exclusive: true }, () => process.stdout.write('held\\n'));`;
  const child = spawn(process.execPath, ['-e', script, name.slice(1)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const seen = (word: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (out.split('\n').includes(word)) resolve();
      };
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        check();
      });
      child.on('exit', () => reject(new Error(`holder exited before printing ${word}`)));
      check();
    });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { child, seen, exited };
}

describe('withDirLock', () => {
  it('lets one holder in at a time, and every waiter gets its turn', async () => {
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        withDirLock(dir, async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setImmediate(r));
          order.push(i);
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(order.sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('is released when the holder throws, and returns what the holder returns', async () => {
    await expect(
      withDirLock(dir, () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(withDirLock(dir, () => 42)).resolves.toBe(42);
  });

  it('is one lock per directory, whatever path names it', async () => {
    const link = path.join(os.tmpdir(), `tabby-lock-link-${process.pid}`);
    fs.symlinkSync(dir, link);
    try {
      expect(lockName(link)).toBe(lockName(dir));
      const other = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-lock-'));
      expect(lockName(other)).not.toBe(lockName(dir));
      fs.rmSync(other, { recursive: true });
    } finally {
      fs.unlinkSync(link);
    }
  });

  it('gives up on a live holder with code 11 (try again later)', async () => {
    let release!: () => void;
    const holding = withDirLock(
      dir,
      () =>
        new Promise<void>((r) => {
          release = r;
        }),
    );
    await new Promise((r) => setImmediate(r));
    await expectCniErrorAsync(
      withDirLock(dir, () => 1, 100),
      11,
      /another process has held it/,
    );
    release();
    await holding;
    await expect(withDirLock(dir, () => 2, 100)).resolves.toBe(2);
  });

  it('is freed at once when its holder is killed with SIGKILL: the waiter is woken, not left to time out', async () => {
    const holder = foreignHolder(lockName(dir));
    try {
      await holder.seen('held');
      // with the lock held elsewhere, a short wait gives up...
      await expectCniErrorAsync(
        withDirLock(dir, () => 1, 50),
        11,
      );
      // ...and a waiter with the default (long) timeout is woken by the holder's death
      const waiting = withDirLock(dir, () => 'mine');
      await holder.seen('waiter');
      holder.child.kill('SIGKILL');
      await expect(waiting).resolves.toBe('mine');
    } finally {
      holder.child.kill('SIGKILL');
      await holder.exited;
    }
  });

  it('fails with an I/O error (code 5) when the directory does not exist', async () => {
    await expectCniErrorAsync(
      withDirLock(path.join(dir, 'missing'), () => 1),
      5,
      /cannot lock /,
    );
  });
});
