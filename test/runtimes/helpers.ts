import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import { REPO, TABBY_BIN, TABBY_IS_JS } from '../helpers/cni';
import { ipJson, Link, run, RunResult } from '../helpers/netns';

/**
 * Shared pieces of the real-runtime tests: the executable runtimes exec, the libcni client, putting
 * back system directories, recording what a runtime sent to tabby, and a busybox root filesystem.
 */

/**
 * The executable the runtimes exec: $TABBY_BIN, or dist/tabby when $TABBY_BIN is the JavaScript
 * bundle (runtimes exec a plugin directly, so it must be an executable file).
 */
export const RUNTIME_TABBY = TABBY_IS_JS ? path.join(REPO, 'dist/tabby') : TABBY_BIN;

export const shown = (r: RunResult): string => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

/**
 * Fails (never skips) when a tool the suite needs is missing, naming the package that brings it.
 * test/setup.sh installs all of them.
 */
export function requireTools(tools: Record<string, string>): void {
  const missing = Object.entries(tools).filter(([file]) => !fs.existsSync(file));
  if (missing.length) {
    throw new Error(
      `missing ${missing.map(([f, pkg]) => `${f} (Debian package ${pkg})`).join(', ')}: run test/setup.sh, which installs them`,
    );
  }
  if (!fs.existsSync(RUNTIME_TABBY)) throw new Error(`${RUNTIME_TABBY} is missing: run \`npm run build\` first`);
}

export function tmpdir(prefix = 'tbr-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Runs `RUNTIME_TABBY install ...`; returns the run. */
export function tabbyInstall(args: string[]): Promise<RunResult> {
  return run(RUNTIME_TABBY, ['install', ...args], { env: { PATH: process.env.PATH } });
}

// ---------------------------------------------------------------------------------------------
// libcni client

const CLIENT_SRC = path.join(REPO, 'test/runtimes/libcni-client');

/** Builds test/runtimes/libcni-client offline against Debian's libcni into `dir`. */
/**
 * Installs tabby into `<work>/bin` with `tabby install`, as on a node, from a one-plugin seed conflist
 * of `cniVersion`; returns the bin directory.
 */
export async function installSeed(work: string, cniVersion: string): Promise<string> {
  const binDir = path.join(work, 'bin');
  fs.mkdirSync(binDir, { recursive: true });
  const seed = path.join(work, 'seed.conflist');
  fs.writeFileSync(
    seed,
    JSON.stringify({ cniVersion, name: 'seed', plugins: [{ type: 'tabby', ipam: { type: 'tabby-ipam' } }] }),
  );
  const r = await tabbyInstall([
    '--cni-bin-dir',
    binDir,
    '--cni-conf-dir',
    path.join(work, 'seed.d'),
    '--conflist',
    seed,
  ]);
  if (r.code !== 0) throw new Error(`tabby install: ${shown(r)}`);
  return binDir;
}

export async function buildLibcniClient(dir: string): Promise<string> {
  requireTools({
    '/usr/bin/go': 'golang-go',
    '/usr/share/gocode/src/github.com/containernetworking/cni/libcni/api.go': 'golang-github-appc-cni-dev',
  });
  const out = path.join(dir, 'libcni-client');
  const r = await run('/usr/bin/go', ['build', '-o', out, path.join(CLIENT_SRC, 'main.go')], {
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      GOPROXY: 'off',
      GO111MODULE: 'off',
      GOPATH: '/usr/share/gocode',
      GOCACHE: path.join(dir, 'gocache'),
      GOFLAGS: '',
    },
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`go build of the libcni client failed:\n${shown(r)}`);
  fs.rmSync(path.join(dir, 'gocache'), { recursive: true, force: true });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Putting back system directories (/etc/cni/net.d, /opt/cni/bin, /var/lib/cni)

interface Entry {
  type: 'file' | 'dir' | 'link' | 'other';
  size: number;
  mtimeMs: number;
  mode: number;
  target?: string;
}

function listTree(dir: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (rel: string): void => {
    const abs = path.join(dir, rel);
    for (const name of fs.readdirSync(abs)) {
      const r = path.join(rel, name);
      const st = fs.lstatSync(path.join(dir, r));
      const type = st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      out.set(r, {
        type,
        size: type === 'dir' ? 0 : st.size,
        mtimeMs: type === 'dir' ? 0 : st.mtimeMs,
        mode: st.mode,
        target: type === 'link' ? fs.readlinkSync(path.join(dir, r)) : undefined,
      });
      if (type === 'dir') walk(r);
    }
  };
  if (fs.existsSync(dir)) walk('');
  return out;
}

const BACKUP_SUFFIX = '.tbr-backup';
const preservedLive = new Set<PreservedDir>();
let exitHookSet = false;

/**
 * A system directory the test changes and must put back exactly, even when it fails: whether it
 * existed (and which of its parents did), and every entry in it. Files the test will write are
 * moved aside first (renamed in place, under a name no runtime loads) and moved back at restore.
 */
export class PreservedDir {
  private readonly before: Map<string, Entry>;
  /** The topmost directory that did not exist (removed at restore), if any. */
  private readonly created: string | undefined;
  private readonly backups: string[] = [];
  private restored = false;

  constructor(
    readonly dir: string,
    replaced: string[] = [],
  ) {
    let top: string | undefined;
    for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) top = d;
    this.created = top;
    this.before = listTree(dir);
    for (const name of replaced) {
      const p = path.join(dir, name);
      if (fs.existsSync(p) || isLink(p)) {
        fs.renameSync(p, p + BACKUP_SUFFIX);
        this.backups.push(name);
      }
    }
    preservedLive.add(this);
    if (!exitHookSet) {
      exitHookSet = true;
      process.on('exit', () => {
        for (const p of preservedLive) p.restore();
      });
    }
  }

  /** Puts the directory back; returns what still differs (empty when it is as it was). */
  restore(): string[] {
    if (this.restored) return [];
    this.restored = true;
    preservedLive.delete(this);
    if (this.created) {
      fs.rmSync(this.created, { recursive: true, force: true });
      return fs.existsSync(this.created) ? [`${this.created} could not be removed`] : [];
    }
    const backupNames = new Set(this.backups.map((n) => n + BACKUP_SUFFIX));
    const now = listTree(this.dir);
    // Deepest first, so directories are empty by the time they are reached.
    for (const rel of [...now.keys()].sort((a, b) => b.length - a.length)) {
      if (!this.before.has(rel) && !backupNames.has(rel))
        fs.rmSync(path.join(this.dir, rel), { recursive: true, force: true });
    }
    for (const name of this.backups) {
      const p = path.join(this.dir, name);
      fs.rmSync(p, { recursive: true, force: true });
      fs.renameSync(p + BACKUP_SUFFIX, p);
    }
    return this.diff();
  }

  private diff(): string[] {
    const now = listTree(this.dir);
    const problems: string[] = [];
    for (const [rel, e] of this.before) {
      const n = now.get(rel);
      if (!n) problems.push(`${path.join(this.dir, rel)} is gone`);
      else if (
        n.type !== e.type ||
        n.size !== e.size ||
        n.mtimeMs !== e.mtimeMs ||
        n.mode !== e.mode ||
        n.target !== e.target
      ) {
        problems.push(`${path.join(this.dir, rel)} changed`);
      }
    }
    for (const rel of now.keys()) if (!this.before.has(rel)) problems.push(`${path.join(this.dir, rel)} is new`);
    return problems;
  }
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Restores all of them, and fails naming whatever is not back as it was. */
export function restoreAll(dirs: PreservedDir[]): void {
  const problems = dirs.flatMap((d) => d.restore());
  if (problems.length) throw new Error(`not put back: ${problems.join('; ')}`);
}

// ---------------------------------------------------------------------------------------------
// Recording what a runtime sends to tabby

export interface Call {
  env: Record<string, string>;
  stdin: string;
  stdout: string;
  code: number;
}

/**
 * A `tabby` that records each call (CNI_* environment, stdin, stdout, exit code) in `dir/calls`
 * and otherwise is the real one: it runs RUNTIME_TABBY with the same input and answers with its
 * output and exit code. Returns the recorder's path.
 */
export function makeRecorder(dir: string): string {
  const calls = path.join(dir, 'calls');
  fs.mkdirSync(calls, { recursive: true });
  const file = path.join(dir, 'tabby-recorder');
  fs.writeFileSync(
    file,
    `#!/bin/sh
# Test double: records the call, then answers as tabby does.
d='${calls}'
n="$(date +%s%N)-$$"
env | grep '^CNI_' | sort > "$d/$n.env"
cat > "$d/$n.in"
'${RUNTIME_TABBY}' < "$d/$n.in" > "$d/$n.out"
rc=$?
cat "$d/$n.out"
echo "$rc" > "$d/$n.rc"
exit $rc
`,
    { mode: 0o755 },
  );
  return file;
}

/** The calls recorded so far, oldest first. */
export function recordedCalls(dir: string): Call[] {
  const calls = path.join(dir, 'calls');
  const ids = fs
    .readdirSync(calls)
    .filter((f) => f.endsWith('.rc'))
    .map((f) => f.slice(0, -3))
    .sort((a, b) => (BigInt(a.split('-')[0]) < BigInt(b.split('-')[0]) ? -1 : 1));
  return ids.map((id) => {
    const env: Record<string, string> = {};
    for (const line of fs.readFileSync(path.join(calls, `${id}.env`), 'utf8').split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
    }
    return {
      env,
      stdin: fs.readFileSync(path.join(calls, `${id}.in`), 'utf8'),
      stdout: fs.readFileSync(path.join(calls, `${id}.out`), 'utf8'),
      code: Number(fs.readFileSync(path.join(calls, `${id}.rc`), 'utf8').trim()),
    };
  });
}

/** Asserts every VERSION call got one JSON object listing the spec versions, in the asked version. */
export function expectVersionAnswers(calls: Call[]): void {
  for (const c of calls.filter((c) => c.env.CNI_COMMAND === 'VERSION')) {
    expect(c.code, `VERSION: ${c.stdout}`).toBe(0);
    const out = JSON.parse(c.stdout);
    const asked = JSON.parse(c.stdin || '{}').cniVersion;
    expect(out.cniVersion).toBe(asked ?? out.cniVersion);
    expect(out.supportedVersions).toEqual(expect.arrayContaining(['0.3.1', '0.4.0', '1.0.0', '1.1.0']));
  }
}

// ---------------------------------------------------------------------------------------------
// busybox

const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'ip', 'ping', 'nc', 'sleep', 'cat', 'echo', 'timeout', 'grep', 'sed', 'ls', 'true', 'seq'];

/** A root filesystem with busybox-static and its applets, in `dir/rootfs`. */
export function busyboxRootfs(dir: string): string {
  const root = path.join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run'])
    fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  for (const a of APPLETS) fs.symlinkSync('busybox', path.join(root, 'bin', a));
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\n');
  return root;
}

const sha256File = (file: string): string => execFileSync('sha256sum', [file]).toString().split(' ')[0];

/**
 * A one-layer OCI image archive of busybox, built by hand (tar, sha256, index.json), named `ref`.
 * Returns the archive's path.
 */
export function busyboxOciArchive(dir: string, ref: string): string {
  const root = busyboxRootfs(dir);
  const layout = path.join(dir, 'oci');
  const blobs = path.join(layout, 'blobs/sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const blob = (file: string): { digest: string; size: number } => {
    const hex = sha256File(file);
    const size = fs.statSync(file).size;
    fs.renameSync(file, path.join(blobs, hex));
    return { digest: `sha256:${hex}`, size };
  };
  const layerTar = path.join(dir, 'layer.tar');
  execFileSync('tar', [
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '-C',
    root,
    '-cf',
    layerTar,
    '.',
  ]);
  const layer = blob(layerTar);
  const configFile = path.join(dir, 'config.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'], Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
    }),
  );
  const config = blob(configFile);
  const manifestFile = path.join(dir, 'manifest.json');
  fs.writeFileSync(
    manifestFile,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
    }),
  );
  const manifest = blob(manifestFile);
  fs.writeFileSync(
    path.join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref.split(':').pop() },
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    }),
  );
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const archive = path.join(dir, 'busybox-oci.tar');
  execFileSync('tar', ['-C', layout, '-cf', archive, 'oci-layout', 'index.json', 'blobs']);
  return archive;
}

// ---------------------------------------------------------------------------------------------
// The root network namespace (where containerd and podman run plugins)

/** tabby's host veths in the root namespace that belong to `network` (by their alias). */
export async function rootVethsOf(network: string): Promise<string[]> {
  const all = await ipJson<Link[]>(undefined, ['-d', 'link', 'show']);
  return all.filter((l) => l.ifalias?.startsWith(`tabby:${network}:`)).map((l) => l.ifname);
}

/** Root-namespace routes whose destination is inside `prefix` (a dotted prefix such as "10.213.1."). */
export async function rootRoutesTo(prefix: string): Promise<string[]> {
  const rs = await ipJson<{ dst: string; dev?: string }[]>(undefined, ['-4', 'route', 'show']);
  return rs.filter((r) => r.dst.startsWith(prefix)).map((r) => `${r.dst} dev ${r.dev}`);
}

/** A sysctl's value, and a function that puts it back. */
export function saveSysctl(name: string): () => void {
  const file = `/proc/sys/${name.replace(/\./g, '/')}`;
  const value = fs.readFileSync(file, 'utf8');
  return () => {
    if (fs.readFileSync(file, 'utf8') !== value) fs.writeFileSync(file, value);
  };
}

/** Polls `fn` until it returns true or `ms` pass. */
export async function waitFor(fn: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}
