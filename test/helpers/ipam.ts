import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execPlugin, CniEnv, CniRun, REF_CNI_DIR, TABBY_BIN, TABBY_IS_JS, tabbyArgv } from './cni';
import { IP, nsPath, RunResult, Sandbox } from './netns';

/** Helpers for the IPAM tests: the tabby-ipam face, the reference host-local, killable runs, process waits. */

export const HOST_LOCAL = path.join(REF_CNI_DIR, 'host-local');

/** A CNI_PATH dir holding `tabby-ipam`: a symlink to the binary, or (for a .js bundle) a wrapper that sets argv[0]. */
export function tabbyIpamDir(sb: Sandbox): string {
  const dir = sb.tmpdir();
  const target = path.join(dir, 'tabby-ipam');
  if (TABBY_IS_JS) {
    fs.writeFileSync(
      target,
      `#!/bin/bash\nexec -a tabby-ipam ${JSON.stringify(process.execPath)} ${JSON.stringify(TABBY_BIN)} "$@"\n`,
      { mode: 0o755 },
    );
  } else {
    fs.symlinkSync(TABBY_BIN, target);
  }
  return dir;
}

/** A pure IPAM config: `{cniVersion, name, ipam: {type, ranges, dataDir}}`. */
export function ipamOnlyConf(o: {
  type: string;
  network: string;
  dataDir: string;
  ranges: object[][];
  version?: string;
}): Record<string, unknown> {
  return {
    cniVersion: o.version ?? '1.0.0', // Debian's host-local (v1.1.1) speaks up to 1.0.0
    name: o.network,
    ipam: { type: o.type, ranges: o.ranges, routes: [{ dst: '0.0.0.0/0' }], dataDir: o.dataDir },
  };
}

/** Runs an IPAM plugin (no netns needed) for one attachment, inside `node`. */
export function ipamRun(
  node: string,
  argv: string[],
  command: string,
  cid: string,
  conf: object,
  extra: CniEnv = {},
): Promise<CniRun> {
  return execPlugin(
    node,
    argv,
    {
      CNI_COMMAND: command,
      CNI_CONTAINERID: cid,
      CNI_NETNS: '/var/run/netns/unused',
      CNI_IFNAME: 'eth0',
      CNI_PATH: REF_CNI_DIR,
      ...extra,
    },
    conf,
  );
}

/** The reservations in a network directory: IP file name -> content (host-local's format). */
export function reservationMap(dir: string): Record<string, string> {
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  for (const n of names.sort()) {
    if (/^\d+\.\d+\.\d+\.\d+$/.test(n) || /^[0-9a-f:]+$/i.test(n)) out[n] = fs.readFileSync(path.join(dir, n), 'utf8');
  }
  return out;
}

/** A tabby (or any plugin) process that the test may kill: its child handle and the promise of its end. */
export interface Killable {
  child: ChildProcess;
  done: Promise<RunResult>;
}

/**
 * Starts `argv` inside `node` with exactly `env` (plus PATH). `ip netns exec` execs the program in its
 * own process, so killing `child` kills the plugin itself (or `ip`, if it had not yet exec'd).
 */
export function startIn(node: string, argv: string[], env: CniEnv, stdin: object | string): Killable {
  const full: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) full[k] = v;
  const child = spawn(IP, ['netns', 'exec', node, ...argv], { env: full, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(typeof stdin === 'string' ? stdin : JSON.stringify(stdin));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? 128,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString() + (signal ? `\n[killed by ${signal}]` : ''),
      }),
    );
  });
  return { child, done };
}

export const startTabby = (node: string, env: CniEnv, stdin: object): Killable =>
  startIn(node, tabbyArgv(), env, stdin);

const netnsInode = (name: string): number => fs.statSync(nsPath(name)).ino;

/** PIDs of the processes whose network namespace is one of `names`. */
export function processesIn(names: string[]): number[] {
  const inodes = new Set(names.filter((n) => fs.existsSync(nsPath(n))).map((n) => `net:[${netnsInode(n)}]`));
  const pids: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (inodes.has(fs.readlinkSync(`/proc/${p}/ns/net`))) pids.push(Number(p));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

/**
 * Polls until no process runs in any of `names` (the `ip` children a killed tabby left behind finish
 * on their own); throws after `limitMs`.
 */
export async function waitForNoProcessesIn(names: string[], limitMs = 30_000): Promise<void> {
  const until = Date.now() + limitMs;
  for (;;) {
    const left = processesIn(names);
    if (left.length === 0) return;
    if (Date.now() > until) {
      const cmds = left.map((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
        } catch {
          return String(p);
        }
      });
      throw new Error(`processes still running in ${names.join(', ')}: ${cmds.join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const randInt = (n: number): number => Math.floor(Math.random() * n);
export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
