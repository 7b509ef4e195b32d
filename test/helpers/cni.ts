import * as fs from 'node:fs';
import { expect } from 'vitest';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ip, nsExec, nsPath, run, Sandbox } from './netns';

/**
 * Runs the built tabby the way a runtime does: CNI_* environment, config on stdin, result or error
 * JSON on stdout. Always inside a node namespace (`ip netns exec <node> <bin>`), never in the root one.
 */

export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** The binary under test: $TABBY_BIN (relative to the repo) or dist/tabby. A .js path runs under node. */
export const TABBY_BIN = path.resolve(REPO, process.env.TABBY_BIN || 'dist/tabby');
export const TABBY_IS_JS = TABBY_BIN.endsWith('.js');
export const REF_CNI_DIR = '/usr/lib/cni';

/** The command line that starts tabby (without arguments). */
export function tabbyArgv(): string[] {
  return TABBY_IS_JS ? [process.execPath, TABBY_BIN] : [TABBY_BIN];
}

export const ALL_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
export const GATEWAY_V4 = '169.254.1.1';
export const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';

export interface CniRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is non-empty (parsing the whole of it: one JSON value, nothing else). */
  json: any;
}

export type CniEnv = Record<string, string | undefined>;

/**
 * Runs a plugin program inside `node` with exactly these CNI_* variables (undefined ones left out) plus
 * PATH. `stdin` objects are serialized.
 */
export async function execPlugin(
  node: string,
  argv: string[],
  env: CniEnv,
  stdin: string | object = '',
): Promise<CniRun> {
  const full: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) full[k] = v;
  const input = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
  const r = await nsExec(node, argv[0], argv.slice(1), { env: full, input });
  let json: any;
  if (r.stdout.trim() !== '') {
    try {
      json = JSON.parse(r.stdout);
    } catch {
      json = undefined;
    }
  }
  return { ...r, json };
}

export const runTabby = (node: string, env: CniEnv, stdin: string | object = ''): Promise<CniRun> =>
  execPlugin(node, tabbyArgv(), env, stdin);

/** Formats a run for assertion messages. */
export const show = (r: CniRun): string => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

export interface AttachOpts {
  ifname?: string;
  /** Overrides CNI_NETNS (default: the pod's path). */
  netns?: string;
  conf?: object;
  env?: CniEnv;
  version?: string;
  prevResult?: object;
}

export interface Reservation {
  ip: string;
  content: string;
}

/** One node namespace with its own data dir, log file and config; pods are namespaces of their own. */
export class TestNode {
  readonly dataDir: string;
  readonly logFile: string;

  private constructor(
    readonly sb: Sandbox,
    readonly name: string,
    readonly dir: string,
    readonly network: string,
  ) {
    this.dataDir = path.join(dir, 'data');
    this.logFile = path.join(dir, 'tabby.log');
  }

  static async create(sb: Sandbox, opts: { network?: string } = {}): Promise<TestNode> {
    const name = await sb.nodeNetns();
    return new TestNode(sb, name, sb.tmpdir(), opts.network ?? 'tabbynet');
  }

  /** The config contract, with `ipam` fields and top-level fields overridable. */
  conf(over: { ipam?: object; [k: string]: unknown } = {}): Record<string, any> {
    const { ipam, ...top } = over;
    return {
      cniVersion: '1.1.0',
      name: this.network,
      type: 'tabby',
      mtu: 1450,
      logFile: this.logFile,
      logLevel: 'info',
      ...top,
      ipam: {
        type: 'tabby-ipam',
        ranges: [[{ subnet: '10.244.1.0/24' }]],
        routes: [{ dst: '0.0.0.0/0' }],
        dataDir: this.dataDir,
        ...(ipam ?? {}),
      },
    };
  }

  env(command: string, cid: string, netns: string, ifname = 'eth0', extra: CniEnv = {}): CniEnv {
    return {
      CNI_COMMAND: command,
      CNI_CONTAINERID: cid,
      CNI_NETNS: netns,
      CNI_IFNAME: ifname,
      CNI_PATH: REF_CNI_DIR,
      ...extra,
    };
  }

  /** Runs tabby inside this node with the given env and stdin. */
  tabby(env: CniEnv, stdin: string | object = ''): Promise<CniRun> {
    return runTabby(this.name, env, stdin);
  }

  private stdinFor(o: AttachOpts): object {
    const c: Record<string, unknown> = { ...(o.conf ?? this.conf()) };
    if (o.version) c.cniVersion = o.version;
    if (o.prevResult) c.prevResult = o.prevResult;
    return c;
  }

  /** Runs `command` for the attachment (cid, ifname) of pod namespace `pod`. */
  cmd(command: string, pod: string, cid: string, o: AttachOpts = {}): Promise<CniRun> {
    const env = this.env(command, cid, o.netns ?? nsPath(pod), o.ifname ?? 'eth0', o.env);
    return this.tabby(env, this.stdinFor(o));
  }

  add(pod: string, cid: string, o: AttachOpts = {}): Promise<CniRun> {
    return this.cmd('ADD', pod, cid, o);
  }

  del(pod: string, cid: string, o: AttachOpts = {}): Promise<CniRun> {
    return this.cmd('DEL', pod, cid, o);
  }

  check(pod: string, cid: string, o: AttachOpts = {}): Promise<CniRun> {
    return this.cmd('CHECK', pod, cid, o);
  }

  /** GC or STATUS: no attachment, empty CONTAINERID/NETNS/IFNAME as libcni sends them. */
  global(command: 'GC' | 'STATUS', conf: object): Promise<CniRun> {
    return this.tabby(this.env(command, '', '', ''), conf);
  }

  /** The network's directory in the data dir. */
  get ipamDir(): string {
    return path.join(this.dataDir, this.network);
  }

  /** Reservation files (every file whose name parses as an IP address) with their content. */
  reservations(): Reservation[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.ipamDir);
    } catch {
      return [];
    }
    return names
      .filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n) || (n.includes(':') && /^[0-9a-f:]+$/i.test(n)))
      .sort()
      .map((n) => ({ ip: n, content: fs.readFileSync(path.join(this.ipamDir, n), 'utf8') }));
  }

  /** Adds an address to the node's lo, so that the node has a source address for traffic to pods. */
  async addLoAddress(cidr: string): Promise<void> {
    await ip(this.name, ['address', 'add', cidr, 'dev', 'lo']);
  }
}

/** Asserts-free helper: the pod-side address list of `ifname` (bare addresses with prefix). */
export async function podAddresses(pod: string, ifname = 'eth0'): Promise<string[]> {
  const out = await run('/usr/sbin/ip', ['-n', pod, '-j', 'address', 'show', 'dev', ifname]);
  if (out.code !== 0) return [];
  const parsed = JSON.parse(out.stdout || '[]') as {
    addr_info?: { local: string; prefixlen: number; scope?: string }[];
  }[];
  return (parsed[0]?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`);
}

/** exit ≠ 0 and exactly one CNI error object on stdout, with this code (and a message matching `msg`). */
export function expectCniError(r: CniRun, code: number, msg?: RegExp): void {
  expect(r.code, show(r)).not.toBe(0);
  expect(r.json, `stdout is not one JSON value\n${show(r)}`).toBeTypeOf('object');
  expect(r.json.code, show(r)).toBe(code);
  expect(r.json.msg, show(r)).toBeTypeOf('string');
  expect(r.json.msg.length, show(r)).toBeGreaterThan(0);
  if (msg) expect(r.json.msg, show(r)).toMatch(msg);
}

/** exit 0 and nothing at all on stdout (DEL, CHECK, GC, STATUS). */
export function expectSilentSuccess(r: CniRun): void {
  expect(r.code, show(r)).toBe(0);
  expect(r.stdout, show(r)).toBe('');
}

/** exit 0 and one JSON object on stdout (ADD). */
export function expectResult(r: CniRun): any {
  expect(r.code, show(r)).toBe(0);
  expect(r.json, `stdout is not one JSON value\n${show(r)}`).toBeTypeOf('object');
  return r.json;
}
