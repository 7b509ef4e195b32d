import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileError, readText } from './files';
import { validateClusterText } from '../../conf/cluster-text';
import { ID_RE } from '../../lib/cni/env';
import { replaceAtomically, symlinkAtomic, writeAtomic } from '../../lib/fs';
import { POD_ANNOTATIONS } from '../../ipam/pod-request';

/**
 * What `tabby install` puts where: the executable into a CNI bin directory with its `tabby-ipam` link;
 * the conflist (and optionally the cluster file) with write-then-rename, so a runtime scanning the
 * directory never reads half a file. Everything is read and checked before anything is written, and
 * a conflist that is not tabby's is never overwritten unless --force says so.
 */

export const DEFAULT_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_CONF_NAME = '10-tabby.conflist';
export const DEFAULT_CLUSTER_DEST = '/etc/tabby/cluster.yaml';
/** Extensions libcni (and so containerd, CRI-O, podman) loads from a config directory. */
export const CNI_CONF_EXTENSIONS = ['.conf', '.conflist', '.json'];

export interface InstallOptions {
  binDir: string;
  /** --cni-bin-dir was given: it must exist. The default one is created on a node without one. */
  binDirGiven: boolean;
  confDir: string;
  /** The conflist to install (a file). */
  conflist: string;
  /** Its file name in confDir. */
  confName: string;
  /** The executable to copy; default: this one. */
  from?: string;
  /** A cluster file to copy to clusterDest. */
  clusterFile?: string;
  clusterDest: string;
  force: boolean;
  /** Leave the bin dir alone (only the config files). */
  skipBinaries: boolean;
  /** Written as "nodeName" into each tabby entry (a DaemonSet's conflist is the same on every node). */
  nodeName?: string;
  /** Run `tabby reconcile` on the installed conflist whenever a config file was (re)written. */
  reconcile: boolean;
}

export function isSea(): boolean {
  try {
    return (require('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    return false;
  }
}

/** The executable this process runs from, when it is tabby's single executable (not `node tabby.js`). */
export function selfExecutable(): string {
  if (!isSea()) {
    throw new Error(
      `this is not tabby's single executable (running ${process.execPath} ${process.argv[1] ?? ''}); install from dist/tabby, or pass --from PATH`,
    );
  }
  return process.execPath;
}

/** Validates a conflist as libcni would load it, and that it runs tabby. Returns its plugin types. */
export function validateConflist(text: string, where: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`${where}: not a JSON object`);
  const d = doc as Record<string, unknown>;
  if (typeof d.name !== 'string' || !ID_RE.test(d.name))
    throw new Error(`${where}: "name" must be a valid network name, got ${JSON.stringify(d.name)}`);
  if (typeof d.cniVersion !== 'string' || d.cniVersion === '') {
    throw new Error(`${where}: "cniVersion" is required (runtimes built on libcni before 1.2 ignore "cniVersions")`);
  }
  if (!Array.isArray(d.plugins) || d.plugins.length === 0)
    throw new Error(`${where}: "plugins" must be a non-empty list`);
  const types = d.plugins.map((p, i) => {
    if (typeof p !== 'object' || p === null || typeof (p as { type?: unknown }).type !== 'string') {
      throw new Error(`${where}: plugins[${i}] has no "type"`);
    }
    return (p as { type: string }).type;
  });
  if (!types.includes('tabby')) throw new Error(`${where}: no plugin of type "tabby" (plugins: ${types.join(', ')})`);
  return types;
}

/** Whether an existing config file is one of tabby's (so it may be replaced without --force). */
function ownsConfig(text: string): { ours: boolean; what: string } {
  try {
    const d = JSON.parse(text) as { plugins?: { type?: unknown }[]; type?: unknown };
    const types = Array.isArray(d.plugins) ? d.plugins.map((p) => String(p?.type)) : [String(d.type)];
    return { ours: types.includes('tabby'), what: `plugins: ${types.join(', ')}` };
  } catch {
    return { ours: false, what: 'not JSON' };
  }
}

/** Copies an executable into place atomically. */
function copyExecutable(src: string, dest: string): void {
  replaceAtomically(dest, (tmp) => {
    fs.copyFileSync(src, tmp);
    fs.chmodSync(tmp, 0o755);
  });
}

function readIfExists(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fileError(file, e);
  }
}

/** Whether `v` ("1.1.0") is a later spec version than `than`. */
function laterVersion(v: string, than: string): boolean {
  const [a, b] = [v, than].map((x) => x.split('.').map((n) => Number(n) || 0));
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return false;
}

/**
 * A conflist whose cniVersion is past 1.0.0 works with libcni 1.2 and later, but containerd 1.6/1.7 (and
 * podman 4) are built on libcni 1.1, which knows results up to 1.0.0 and ignores "cniVersions": every ADD
 * there fails with `unsupported CNI result version "1.1.0"`. Not an error: newer runtimes are fine.
 */
function versionWarning(where: string, cniVersion: string): string[] {
  if (!laterVersion(cniVersion, '1.0.0')) return [];
  return [
    `warning: ${where}: "cniVersion": "${cniVersion}" fails every pod on containerd 1.6 and 1.7 (libcni 1.1 accepts results up to 1.0.0: "unsupported CNI result version"); ` +
      `for them write "cniVersion": "1.0.0", "cniVersions": ["1.0.0", "${cniVersion}"] (newer runtimes then still use ${cniVersion})`,
  ];
}

const capabilitiesOf = (p: Record<string, unknown>): Record<string, unknown> =>
  typeof p.capabilities === 'object' && p.capabilities !== null && !Array.isArray(p.capabilities)
    ? (p.capabilities as Record<string, unknown>)
    : {};

/**
 * A tabby entry without the capability that makes containerd (and CRI-O) pass the pod's annotations in
 * runtimeConfig: install adds it, so that the Calico annotations choosing pools and addresses reach tabby.
 */
const lacksPodAnnotations = (p: Record<string, unknown>): boolean =>
  p.type === 'tabby' && capabilitiesOf(p)[POD_ANNOTATIONS] !== true;

/**
 * The conflist as installed (pure): the source text as it is, unless a tabby entry needs `nodeName` or
 * the pod-annotations capability; then re-serialized with them, every other key kept.
 */
export function conflistToInstall(text: string, nodeName?: string): string {
  const doc = JSON.parse(text) as { plugins: Record<string, unknown>[] };
  if (nodeName === undefined && !doc.plugins.some(lacksPodAnnotations)) return text;
  for (const p of doc.plugins) {
    if (p.type !== 'tabby') continue;
    if (nodeName !== undefined) p.nodeName = nodeName;
    if (lacksPodAnnotations(p)) p.capabilities = { ...capabilitiesOf(p), [POD_ANNOTATIONS]: true };
  }
  return JSON.stringify(doc, null, 2);
}

/** Reads and validates the conflist, and refuses a foreign file at its destination (unless forced). */
function prepareConfig(o: InstallOptions): { dest: string; body: string; old?: Buffer; warnings: string[] } {
  const source = readText(o.conflist);
  validateConflist(source, o.conflist);
  const doc = JSON.parse(source) as { cniVersion: string };
  const text = conflistToInstall(source, o.nodeName);
  const dest = path.join(o.confDir, o.confName);
  const old = readIfExists(dest);
  if (old !== undefined && !o.force) {
    const owner = ownsConfig(old.toString('utf8'));
    if (!owner.ours)
      throw new Error(`${dest} exists and is not tabby's (${owner.what}); refusing to overwrite it without --force`);
  }
  return {
    dest,
    body: text.endsWith('\n') ? text : text + '\n',
    old,
    warnings: versionWarning(o.conflist, doc.cniVersion),
  };
}

// The last cluster file text validated, and what was wrong with it: a watcher validates a file once per
// change, not once per round.
let lastCluster: { text: string; problem?: string } | undefined;

/** The cluster file's bytes, once they passed the validation `tabby validate` does; throws naming the problem. */
async function checkedClusterFile(file: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw fileError(file, e);
  }
  const text = bytes.toString('utf8');
  if (lastCluster?.text !== text) {
    let problem: string | undefined;
    try {
      await validateClusterText(text, file);
    } catch (e) {
      problem = (e as Error).message;
    }
    lastCluster = { text, problem };
  }
  if (lastCluster.problem !== undefined) throw new Error(lastCluster.problem);
  return bytes;
}

/**
 * Installs the config files (cluster file, then conflist); returns what it did, one line each. Both are
 * read and checked before either is written: a bad cluster file or conflist changes nothing.
 */
export async function installConfig(o: InstallOptions): Promise<string[]> {
  const done: string[] = [];
  const { dest, body, old, warnings } = prepareConfig(o);
  const cluster = o.clusterFile ? await checkedClusterFile(o.clusterFile) : undefined;

  if (!fs.existsSync(o.confDir)) {
    fs.mkdirSync(o.confDir, { recursive: true });
    done.push(`created ${o.confDir}`);
  }

  if (cluster) {
    const was = readIfExists(o.clusterDest);
    if (was && was.equals(cluster)) {
      done.push(`unchanged ${o.clusterDest}`);
    } else {
      writeAtomic(o.clusterDest, cluster, 0o644);
      done.push(`wrote ${o.clusterDest}`);
    }
  }

  if (old !== undefined && old.toString('utf8') === body) {
    done.push(`unchanged ${dest}`);
  } else {
    writeAtomic(dest, body, 0o644);
    done.push(`wrote ${dest}`);
  }
  done.push(...warnings);

  // Runtimes that take only the first config of the directory (containerd's CRI and ctr) would
  // not use tabby's if another one sorts before it.
  const first = fs
    .readdirSync(o.confDir)
    .filter((f) => !f.startsWith('.') && CNI_CONF_EXTENSIONS.some((e) => f.endsWith(e)))
    .sort()[0];
  if (first !== undefined && first !== o.confName) {
    done.push(
      `warning: ${path.join(o.confDir, first)} sorts before ${o.confName}: runtimes that use the first config (containerd) will use it, not tabby`,
    );
  }
  return done;
}

/** The CNI bin directory must be there already: installing into a typo would leave runtimes without tabby. */
function requireBinDir(dir: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error(
        `--cni-bin-dir ${dir}: no such directory; runtimes look for plugins in an existing one (${DEFAULT_BIN_DIR}, beside loopback and portmap): check the path, or create it first if it really is the place`,
      );
    throw fileError(dir, e);
  }
  if (!st.isDirectory()) throw new Error(`--cni-bin-dir ${dir}: not a directory`);
}

/** Installs the executable and the tabby-ipam link. */
export function installBinaries(o: InstallOptions): string[] {
  const created = !fs.existsSync(o.binDir) && !!fs.mkdirSync(o.binDir, { recursive: true });
  const src = o.from ?? selfExecutable();
  const dest = path.join(o.binDir, 'tabby');
  if (path.resolve(src) === path.resolve(dest)) return [`unchanged ${dest} (installing from itself)`];
  copyExecutable(src, dest);
  symlinkAtomic('tabby', path.join(o.binDir, 'tabby-ipam'));
  return [
    ...(created ? [`created ${o.binDir}`] : []),
    `installed ${dest}`,
    `linked ${path.join(o.binDir, 'tabby-ipam')} -> tabby`,
  ];
}

export async function install(o: InstallOptions): Promise<string[]> {
  // refuse before touching anything
  prepareConfig(o);
  if (!o.skipBinaries && o.binDirGiven) requireBinDir(o.binDir);
  if (o.clusterFile) await checkedClusterFile(o.clusterFile);
  if (o.from !== undefined && !o.skipBinaries && !fs.existsSync(o.from)) throw fileError(o.from, { code: 'ENOENT' });
  // Binaries first: a conflist must never name a plugin that is not there yet.
  return [...(o.skipBinaries ? [] : installBinaries(o)), ...(await installConfig(o))];
}
