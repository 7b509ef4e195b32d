import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { disruption } from '../helpers/scenarios';
import { cpioNewc } from '../qemu/cpio';
import { buildGuestBundles, GUEST_BUNDLES, scenarioProblems } from '../qemu/harness';

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

describe('buildGuestBundles', () => {
  it("bundles the multi-node runner into one file for the guest's Node 20", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-bundle-'));
    try {
      buildGuestBundles(dir);
      expect(Object.keys(GUEST_BUNDLES)).toContain('multinode.js');
      const js = fs.readFileSync(path.join(dir, 'multinode.js'), 'utf8');
      expect(js).toContain('multinode-runner'); // esbuild names the bundled modules
      expect(js).not.toMatch(/^import |require\(["']\.\.?\//m); // nothing left to load from the repo
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it('fails with the entry point named when it cannot bundle', () => {
    expect(() => buildGuestBundles(os.tmpdir(), { 'x.js': 'test/qemu/no-such-file.ts' })).toThrow(
      /cannot bundle test\/qemu\/no-such-file\.ts/,
    );
  });
});

describe('disruption', () => {
  const span = (replies: number[], start: number, end: number) => ({
    value: undefined,
    sent: 0,
    received: replies.length,
    replies,
    start,
    end,
  });
  it('is the longest gap between replies once the action started, with the gap before it as a baseline', () => {
    expect(disruption(span([0, 20, 45, 60, 80, 900, 920, 940], 70, 850))).toEqual({ gapMs: 820, baselineMs: 25 });
  });
  it('counts from the start of the action when no reply came between its start and the first one', () => {
    expect(disruption(span([500, 520], 100, 450))).toEqual({ gapMs: 400, baselineMs: 0 });
  });
  it('is undefined when no reply came after the action ended: the ping did not span it', () => {
    expect(disruption(span([0, 20, 40], 30, 100))).toBeUndefined();
  });
});
