import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach } from 'vitest';

/**
 * Network namespaces and temp dirs for integration tests. Every test file calls `useSandbox()` once;
 * whatever it creates is deleted after each test (and again after the file, and at process exit),
 * whether the test passed or not. Names are `tbt-<role>-<random>`, so files can run in parallel.
 */

export { IP, NETNS_DIR, run, ip, ipJson, nsExec } from './proc';
export type { RunResult } from './proc';
import { IP, NETNS_DIR, run, ip, ipJson, nsExec, RunResult } from './proc';

export interface Link {
  ifname: string;
  ifindex: number;
  address?: string;
  mtu?: number;
  operstate?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

export const links = (ns: string): Promise<Link[]> => ipJson<Link[]>(ns, ['-d', 'address', 'show']);

export async function link(ns: string, name: string): Promise<Link | undefined> {
  return (await links(ns)).find((l) => l.ifname === name);
}

/** Host ends of tabby's veths (tab + 12 hex) in a namespace (undefined = the one this process runs in). */
export async function tabbyVeths(ns?: string): Promise<string[]> {
  const all = await ipJson<Link[]>(ns, ['link', 'show']);
  return all.map((l) => l.ifname).filter((n) => /^tab[0-9a-f]{12}$/.test(n));
}

export interface Route {
  dst: string;
  gateway?: string;
  dev?: string;
  scope?: string;
}

export async function routes(ns: string, family: 4 | 6 = 4): Promise<Route[]> {
  return ipJson<Route[]>(ns, [`-${family}`, 'route', 'show']);
}

/** Pings from a namespace until one reply arrives or 10 s pass (polling, not a fixed sleep). */
export function ping(fromNs: string, dst: string): Promise<RunResult> {
  const v6 = dst.includes(':');
  return nsExec(fromNs, '/usr/bin/ping', [...(v6 ? ['-6'] : ['-4']), '-n', '-c', '1', '-i', '0.2', '-w', '10', dst]);
}

export const nsPath = (name: string): string => `${NETNS_DIR}/${name}`;
const randomName = (role: string): string => `tbt-${role}-${randomBytes(4).toString('hex')}`;

// Everything any sandbox in this process still owns, for the last-chance exit hook.
const liveNetns = new Set<string>();
const liveDirs = new Set<string>();
let exitHook = false;

function deleteNetnsSync(name: string): void {
  try {
    execFileSync(IP, ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
}

export class Sandbox {
  private readonly netnsList: string[] = [];
  private readonly dirs: string[] = [];

  constructor() {
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const n of liveNetns) deleteNetnsSync(n);
        for (const d of liveDirs) fs.rmSync(d, { recursive: true, force: true });
      });
    }
  }

  /** A new empty network namespace; returns its name (the path is nsPath(name)). */
  async netns(role = 'p'): Promise<string> {
    const name = randomName(role);
    await ip(undefined, ['netns', 'add', name]);
    this.netnsList.push(name);
    liveNetns.add(name);
    return name;
  }

  /** A namespace playing a node: `lo` is up. */
  async nodeNetns(): Promise<string> {
    const name = await this.netns('n');
    await ip(name, ['link', 'set', 'lo', 'up']);
    return name;
  }

  /** A new temp dir, removed at cleanup. */
  tmpdir(): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tbt-'));
    this.dirs.push(d);
    liveDirs.add(d);
    return d;
  }

  /** Marks a namespace as deleted by the test itself. */
  forget(name: string): void {
    const i = this.netnsList.indexOf(name);
    if (i >= 0) this.netnsList.splice(i, 1);
    liveNetns.delete(name);
  }

  async deleteNetns(name: string): Promise<void> {
    await ip(undefined, ['netns', 'del', name]);
    this.forget(name);
  }

  async cleanup(): Promise<void> {
    const errors: string[] = [];
    // Deleting a namespace deletes its veths; the peers go with them.
    for (const name of this.netnsList.splice(0).reverse()) {
      const r = await run(IP, ['netns', 'del', name]);
      if (r.code !== 0 && fs.existsSync(nsPath(name))) errors.push(`ip netns del ${name}: ${r.stderr.trim()}`);
      liveNetns.delete(name);
    }
    for (const d of this.dirs.splice(0)) {
      try {
        fs.rmSync(d, { recursive: true, force: true });
      } catch (e) {
        errors.push(`rm ${d}: ${(e as Error).message}`);
      }
      liveDirs.delete(d);
    }
    if (errors.length) throw new Error(`sandbox cleanup: ${errors.join('; ')}`);
  }
}

/**
 * The sandbox of one test file: cleaned after each test and after the file. After the file it also
 * asserts the root namespace holds no tabby veth (tabby only ever runs inside node namespaces here).
 */
export function useSandbox(): Sandbox {
  const sb = new Sandbox();
  afterEach(() => sb.cleanup());
  afterAll(async () => {
    await sb.cleanup();
    const leaked = await tabbyVeths(undefined);
    if (leaked.length) throw new Error(`tabby veths leaked into the root namespace: ${leaked.join(', ')}`);
  });
  return sb;
}
