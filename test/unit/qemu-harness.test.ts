import { describe, expect, it } from 'vitest';
import { cpioNewc } from '../qemu/cpio';
import { scenarioProblems } from '../qemu/harness';

/** Reads a newc archive back: name, mode, rdev and data of each entry, checking the 4-byte alignment. */
function readNewc(buf: Buffer): { name: string; mode: number; rdev: [number, number]; data: string }[] {
  const out: { name: string; mode: number; rdev: [number, number]; data: string }[] = [];
  let off = 0;
  for (;;) {
    expect(off % 4).toBe(0);
    expect(buf.toString('ascii', off, off + 6)).toBe('070701');
    const field = (i: number) => parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
    const [mode, size, rmaj, rmin, namesize] = [field(1), field(6), field(9), field(10), field(11)];
    const name = buf.toString('ascii', off + 110, off + 110 + namesize - 1);
    expect(buf[off + 110 + namesize - 1]).toBe(0);
    off += Math.ceil((110 + namesize) / 4) * 4;
    if (name === 'TRAILER!!!') break;
    out.push({ name, mode, rdev: [rmaj, rmin], data: buf.toString('utf8', off, off + size) });
    off += Math.ceil(size / 4) * 4;
  }
  expect(off).toBe(buf.length);
  return out;
}

describe('cpioNewc', () => {
  it('writes dirs, files and device nodes the kernel can unpack', () => {
    const entries = readNewc(
      cpioNewc([
        { kind: 'dir', path: '/bin' },
        { kind: 'char', path: 'dev/console', major: 5, minor: 1 },
        { kind: 'file', path: 'init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
        { kind: 'file', path: 'modules/order', data: Buffer.from('abcde') },
      ]),
    );
    expect(entries).toEqual([
      { name: 'bin', mode: 0o040755, rdev: [0, 0], data: '' },
      { name: 'dev/console', mode: 0o020600, rdev: [5, 1], data: '' },
      { name: 'init', mode: 0o100755, rdev: [0, 0], data: '#!/bin/sh\n' },
      { name: 'modules/order', mode: 0o100644, rdev: [0, 0], data: 'abcde' },
    ]);
  });
});

describe('scenarioProblems', () => {
  const a = (name: string, ok: boolean, detail = '') => ({ scenario: 's', name, ok, detail });
  it('is empty for a finished scenario whose assertions all pass', () => {
    expect(scenarioProblems({ name: 's', rc: 0, assertions: [a('x', true)], log: '' })).toEqual([]);
  });
  it('names failed assertions with their detail, a non-zero exit, and a timeout', () => {
    expect(scenarioProblems({ name: 's', rc: 2, assertions: [a('x', true), a('y', false, 'why')], log: '' })).toEqual([
      's exited 2',
      'y: why',
    ]);
    expect(scenarioProblems({ name: 's', rc: 124, assertions: [a('x', true)], log: '' })).toEqual([
      's was killed at its timeout (exit 124)',
    ]);
  });
  it('fails a scenario that reports nothing, or never finished', () => {
    expect(scenarioProblems({ name: 's', rc: 0, assertions: [], log: '' })).toEqual(['s reported no results']);
    expect(scenarioProblems({ name: 's', assertions: [a('x', true)], log: '' })).toEqual(['s did not finish']);
  });
});
