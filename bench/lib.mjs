// Shared helpers of the benchmarks: namespaces and temp dirs (always cleaned up), running a CNI plugin
// inside a node namespace with its wall time, the two contenders' configs, and statistics.
// Plain Node ESM (runs on the machine's Node 20, no build step); programs are spawned with argument
// arrays, never through a shell.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const IP = '/usr/sbin/ip';
export const REF_CNI_DIR = '/usr/lib/cni';
export const REPO = fileURLToPath(new URL('..', import.meta.url));
/** The tabby under test: $TABBY_BIN (relative to the repo) or dist/tabby; a .js path runs under node. */
export const TABBY_BIN = path.resolve(REPO, process.env.TABBY_BIN || 'dist/tabby');
/** Both contenders get the same /16, each in its own data dir. */
export const SUBNET = '10.77.0.0/16';
const TIMEOUT_MS = 120_000;
/** Plugin processes still running, killed if the benchmark is interrupted. */
const liveChildren = new Set();

/** True when the module at `url` is the script node was started with. */
export const isMain = (url) =>
  process.argv[1] !== undefined && url === pathToFileURL(path.resolve(process.argv[1])).href;

/**
 * Runs a program (argument array, no shell). Resolves with exit code, output and `ms`, the wall time
 * from just before the spawn to the child's close, measured with process.hrtime. Never rejects on exit≠0.
 */
export function run(file, args, { env = process.env, input = '', timeoutMs = TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    liveChildren.add(child);
    const out = [];
    const err = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      clearTimeout(timer);
      liveChildren.delete(child);
      resolve({
        code: code ?? 128,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString() + (signal ? `\n[killed by ${signal}]` : ''),
        ms,
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** `ip args...`; throws with ip's stderr on failure. */
export async function ip(args, input) {
  const r = await run(IP, args, { input });
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Fails early, with a clear message, when the machine cannot run the benchmarks. */
export function preflight() {
  const problems = [];
  if (process.getuid?.() !== 0) problems.push('must run as root (network namespaces)');
  if (!fs.existsSync(TABBY_BIN)) problems.push(`${TABBY_BIN} not found: run \`npm run build\` first`);
  for (const p of ['ptp', 'host-local']) {
    if (!fs.existsSync(path.join(REF_CNI_DIR, p)))
      problems.push(`${REF_CNI_DIR}/${p} not found (apt-get install containernetworking-plugins)`);
  }
  if (problems.length) throw new Error(`cannot run the benchmarks:\n  ${problems.join('\n  ')}`);
}

// ---------------------------------------------------------------------------------------------
// Namespaces and temp dirs. Everything created is removed by cleanup(), and again (synchronously)
// at process exit or on SIGINT/SIGTERM, whether the benchmark succeeded or not.

const liveNetns = new Set();
const liveDirs = new Set();

function cleanupSync() {
  for (const child of liveChildren) child.kill('SIGKILL');
  if (liveNetns.size) {
    try {
      execFileSync(IP, ['-force', '-batch', '-'], {
        input: [...liveNetns].map((n) => `netns del ${n}`).join('\n') + '\n',
        stdio: ['pipe', 'ignore', 'ignore'],
      });
    } catch {
      /* some were already gone */
    }
    liveNetns.clear();
  }
  for (const d of liveDirs) fs.rmSync(d, { recursive: true, force: true });
  liveDirs.clear();
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    process.stderr.write(`\n${sig}: stopping the plugins still running and cleaning up\n`);
    // Wait (briefly) for the killed plugins to be gone, so none writes into a dir being removed.
    const gone = [...liveChildren].map(
      (c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', r))),
    );
    for (const child of liveChildren) child.kill('SIGKILL');
    await Promise.race([Promise.all(gone), new Promise((r) => setTimeout(r, 5000))]);
    cleanupSync();
    process.exit(130);
  });
}

const newName = (role) => `tbb-${role}-${randomBytes(4).toString('hex')}`;

/** Creates `count` empty namespaces in one `ip -batch`; returns their names. */
export async function createNetns(role, count = 1) {
  const names = Array.from({ length: count }, () => newName(role));
  names.forEach((n) => liveNetns.add(n));
  await ip(['-batch', '-'], names.map((n) => `netns add ${n}`).join('\n') + '\n');
  return names;
}

/** A namespace playing a node: `lo` up. */
export async function createNode() {
  const [name] = await createNetns('n');
  await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

export async function deleteNetns(...names) {
  if (!names.length) return;
  await ip(['-force', '-batch', '-'], names.map((n) => `netns del ${n}`).join('\n') + '\n').catch(() => undefined);
  for (const n of names) {
    if (fs.existsSync(nsPath(n))) throw new Error(`could not delete netns ${n}`);
    liveNetns.delete(n);
  }
}

export function tmpdir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tbb-'));
  liveDirs.add(d);
  return d;
}

export async function cleanup() {
  await deleteNetns(...liveNetns);
  cleanupSync();
}

export const nsPath = (name) => `/var/run/netns/${name}`;

/** Links of a namespace other than lo (to check that a DEL left nothing behind). */
export async function nonLoLinks(ns) {
  const links = JSON.parse((await ip(['-n', ns, '-j', 'link', 'show'])) || '[]');
  return links.map((l) => l.ifname).filter((n) => n !== 'lo');
}

// ---------------------------------------------------------------------------------------------
// The contenders: same subnet, MTU and spec version, separate data dirs.

function ipamConf(type, dataDir) {
  return { type, ranges: [[{ subnet: SUBNET }]], routes: [{ dst: '0.0.0.0/0' }], dataDir };
}

/** tabby and ptp+host-local, each with its own temp dir; `tabbyExtra` is merged into tabby's config. */
export function contenders({ tabbyExtra = {} } = {}) {
  const tdir = tmpdir();
  const rdir = tmpdir();
  const tabbyArgv = TABBY_BIN.endsWith('.js') ? [process.execPath, TABBY_BIN] : [TABBY_BIN];
  return [
    {
      name: 'tabby',
      argv: tabbyArgv,
      network: 'benchnet',
      dataDir: path.join(tdir, 'data'),
      conf: {
        cniVersion: '1.0.0',
        name: 'benchnet',
        type: 'tabby',
        mtu: 1450,
        logFile: path.join(tdir, 'tabby.log'),
        logLevel: 'info',
        ...tabbyExtra,
        ipam: ipamConf('tabby-ipam', path.join(tdir, 'data')),
      },
    },
    {
      name: 'ptp+host-local',
      argv: [path.join(REF_CNI_DIR, 'ptp')],
      network: 'benchnet',
      dataDir: path.join(rdir, 'data'),
      conf: {
        cniVersion: '1.0.0',
        name: 'benchnet',
        type: 'ptp',
        mtu: 1450,
        ipam: ipamConf('host-local', path.join(rdir, 'data')),
      },
    },
  ];
}

/**
 * Runs `command` of contender `c` inside node namespace `node` (`ip netns exec`), the way a runtime
 * does: CNI_* environment, config on stdin. Returns run()'s result plus the parsed stdout (`json`).
 */
export async function cni(node, c, command, containerId, podNetns) {
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: nsPath(podNetns),
    CNI_IFNAME: 'eth0',
    CNI_PATH: REF_CNI_DIR,
  };
  const r = await run(IP, ['netns', 'exec', node, ...c.argv], { env, input: JSON.stringify(c.conf) });
  try {
    r.json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  } catch {
    r.json = undefined;
  }
  return r;
}

/** Throws a readable error unless the call exited 0 (and, for ADD, printed a result with an address). */
export function expectOk(c, command, containerId, r) {
  const ok = r.code === 0 && (command !== 'ADD' || r.json?.ips?.length > 0);
  if (!ok) {
    throw new Error(
      `${c.name} ${command} ${containerId} failed: exit ${r.code}\n  stdout: ${r.stdout.trim()}\n  stderr: ${r.stderr.trim()}`,
    );
  }
  return r;
}

/** IP-named files in the contender's data dir: the reservations it still holds. */
export function reservations(c) {
  try {
    return fs
      .readdirSync(path.join(c.dataDir, c.network))
      .filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n) || /^[0-9a-f:]*:[0-9a-f:]*$/i.test(n));
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting.

const sorted = (xs) => [...xs].sort((a, b) => a - b);

/** The median (mean of the two middle values for an even count). */
export function median(xs) {
  const s = sorted(xs);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The 90th percentile, nearest-rank: the smallest value at or above 90 % of the samples. */
export function p90(xs) {
  const s = sorted(xs);
  return s[Math.max(0, Math.ceil(0.9 * s.length) - 1)];
}

export const fmtMs = (ms) => (ms >= 1000 ? ms.toFixed(0) : ms.toFixed(1));
export const fmtRatio = (r) => `${r.toFixed(2)}x`;

/** Prints rows (arrays of strings) as a table: first column left-aligned, the others right-aligned. */
export function printTable(header, rows) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  const line = (r) =>
    r.map((v, i) => (i === 0 ? String(v).padEnd(widths[i]) : String(v).padStart(widths[i]))).join('   ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('   '));
  for (const r of rows) console.log(line(r));
}

/** Runs `fn` (an async benchmark) as a script: cleans up and exits non-zero with a clear message on failure. */
export async function main(fn) {
  try {
    preflight();
    await fn();
  } catch (e) {
    console.error(`\nBENCHMARK FAILED: ${e.message}`);
    process.exitCode = 1;
  } finally {
    await cleanup().catch((e) => console.error(`cleanup: ${e.message}`));
  }
}
