import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CliCommand, UsageError } from './command';
import { ID_RE } from '../../lib/cni/env';
import { replaceAtomically, symlinkAtomic, writeAtomic } from '../../lib/fs';
import { POD_ANNOTATIONS } from '../../ipam/pod-request';

/**
 * `tabby install`: puts tabby on a node the way runtimes look for it. The executable goes into a CNI
 * bin directory with its `tabby-ipam` link; the conflist (and optionally the cluster file) go in
 * with write-then-rename, so a runtime scanning the directory never reads half a file. A conflist
 * that is not tabby's is never overwritten unless --force says so.
 */

export const DEFAULT_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_CONF_NAME = '10-tabby.conflist';
export const DEFAULT_CLUSTER_DEST = '/etc/tabby/cluster.yaml';
/** Extensions libcni (and so containerd, CRI-O, podman) loads from a config directory. */
const CNI_CONF_EXTENSIONS = ['.conf', '.conflist', '.json'];

export interface InstallOptions {
  binDir: string;
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

interface Flag {
  key: keyof InstallOptions | 'watch';
  value: boolean;
}

const FLAGS: Record<string, Flag> = {
  '--cni-bin-dir': { key: 'binDir', value: true },
  '--cni-conf-dir': { key: 'confDir', value: true },
  '--conflist': { key: 'conflist', value: true },
  '--name': { key: 'confName', value: true },
  '--from': { key: 'from', value: true },
  '--cluster-file': { key: 'clusterFile', value: true },
  '--cluster-dest': { key: 'clusterDest', value: true },
  '--force': { key: 'force', value: false },
  '--skip-binaries': { key: 'skipBinaries', value: false },
  '--node-name': { key: 'nodeName', value: true },
  '--reconcile': { key: 'reconcile', value: false },
  '--watch': { key: 'watch', value: true },
};

export function parseInstallArgs(args: string[]): { opts: InstallOptions; watchSeconds?: number } {
  const got: Record<string, string | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i].split(/=(.*)/s, 2);
    const flag = FLAGS[name];
    if (!flag) throw new UsageError(`unknown flag ${args[i]}`);
    if (!flag.value) {
      got[flag.key] = true;
      continue;
    }
    const v = inline ?? args[++i];
    if (v === undefined || v === '') throw new UsageError(`${name} needs a value`);
    got[flag.key] = v;
  }
  if (typeof got.conflist !== 'string')
    throw new UsageError('--conflist FILE is required: the network configuration to install');
  const confName = (got.confName as string | undefined) ?? DEFAULT_CONF_NAME;
  if (confName.includes('/') || !CNI_CONF_EXTENSIONS.some((e) => confName.endsWith(e))) {
    throw new UsageError(
      `--name must be a plain file name ending in ${CNI_CONF_EXTENSIONS.join(', ')}, got "${confName}"`,
    );
  }
  let watchSeconds: number | undefined;
  if (got.watch !== undefined) {
    watchSeconds = Number(got.watch);
    if (!Number.isFinite(watchSeconds) || watchSeconds <= 0)
      throw new UsageError(`--watch needs a positive number of seconds, got "${got.watch}"`);
  }
  return {
    opts: {
      binDir: (got.binDir as string | undefined) ?? DEFAULT_BIN_DIR,
      confDir: (got.confDir as string | undefined) ?? DEFAULT_CONF_DIR,
      conflist: got.conflist,
      confName,
      from: got.from as string | undefined,
      clusterFile: got.clusterFile as string | undefined,
      clusterDest: (got.clusterDest as string | undefined) ?? DEFAULT_CLUSTER_DEST,
      force: got.force === true,
      skipBinaries: got.skipBinaries === true,
      nodeName: got.nodeName as string | undefined,
      reconcile: got.reconcile === true,
    },
    watchSeconds,
  };
}

function isSea(): boolean {
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
    throw new Error(`${where}: not JSON: ${(e as Error).message}`);
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
    throw e;
  }
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
function prepareConfig(o: InstallOptions): { dest: string; body: string; old?: Buffer } {
  const source = fs.readFileSync(o.conflist, 'utf8');
  validateConflist(source, o.conflist);
  const text = conflistToInstall(source, o.nodeName);
  const dest = path.join(o.confDir, o.confName);
  const old = readIfExists(dest);
  if (old !== undefined && !o.force) {
    const owner = ownsConfig(old.toString('utf8'));
    if (!owner.ours)
      throw new Error(`${dest} exists and is not tabby's (${owner.what}); refusing to overwrite it without --force`);
  }
  return { dest, body: text.endsWith('\n') ? text : text + '\n', old };
}

/** Installs the config files (cluster file, then conflist); returns what it did, one line each. */
export function installConfig(o: InstallOptions): string[] {
  const done: string[] = [];
  const { dest, body, old } = prepareConfig(o);

  if (o.clusterFile) {
    const cluster = fs.readFileSync(o.clusterFile);
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

/** Installs the executable and the tabby-ipam link. */
export function installBinaries(o: InstallOptions): string[] {
  const src = o.from ?? selfExecutable();
  const dest = path.join(o.binDir, 'tabby');
  if (path.resolve(src) === path.resolve(dest)) return [`unchanged ${dest} (installing from itself)`];
  copyExecutable(src, dest);
  symlinkAtomic('tabby', path.join(o.binDir, 'tabby-ipam'));
  return [`installed ${dest}`, `linked ${path.join(o.binDir, 'tabby-ipam')} -> tabby`];
}

export function install(o: InstallOptions): string[] {
  prepareConfig(o); // refuse before touching anything
  // Binaries first: a conflist must never name a plugin that is not there yet.
  return [...(o.skipBinaries ? [] : installBinaries(o)), ...installConfig(o)];
}

/** `tabby reconcile --config <installed conflist>`, run as a child of this same executable. */
function reconcile(o: InstallOptions): string[] {
  const conf = path.join(o.confDir, o.confName);
  // The single executable is tabby itself; `node tabby.js` needs its script again.
  const self = isSea() ? [] : [process.argv[1]];
  const r = spawnSync(process.execPath, [...self, 'reconcile', '--config', conf], { encoding: 'utf8' });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').filter(Boolean);
  if (r.status !== 0) return [`warning: reconcile failed (exit ${r.status ?? r.signal}): ${out.join(' / ')}`];
  return out.map((l) => `reconcile: ${l}`);
}

const wroteSomething = (lines: string[]): boolean => lines.some((l) => l.startsWith('wrote '));

const print = (lines: string[]): void => {
  for (const l of lines) (l.startsWith('warning:') ? process.stderr : process.stdout).write(`tabby install: ${l}\n`);
};

const INSTALL_HELP = `Usage: tabby install --conflist FILE [flags]

Puts tabby on this node: the executable and its tabby-ipam link into the CNI bin directory, then the
conflist into the CNI config directory. Files are written beside their destination and renamed over
it, so a runtime never reads half a file and a running plugin keeps its executable.

  --conflist FILE        the network configuration to install (must run a plugin of type "tabby")
  --cni-bin-dir DIR      where runtimes look for plugins (default ${DEFAULT_BIN_DIR})
  --cni-conf-dir DIR     where runtimes look for network configurations (default ${DEFAULT_CONF_DIR})
  --name F               the conflist's file name there (default ${DEFAULT_CONF_NAME}; containerd uses the first by name)
  --force                overwrite a file of that name even if it is not tabby's
  --cluster-file FILE    also install this cluster file ...
  --cluster-dest PATH    ... here (default ${DEFAULT_CLUSTER_DEST}; the conflist's "cluster" names it)
  --from EXE             the executable to copy (default: this one)
  --skip-binaries        only the config files
  --node-name NAME       write "nodeName": NAME into tabby's entry (e.g. the Kubernetes node name)
  --watch SECONDS        then keep the config files in sync with their sources until SIGTERM
  --reconcile            run \`tabby reconcile\` on the installed conflist at start and whenever a
                         config file changed (the node network then follows the cluster file)
`;

export const installCommand: CliCommand = {
  usage: [
    'install --conflist FILE [--cni-bin-dir DIR] [--cni-conf-dir DIR] [--force]  put tabby on this node (install --help)',
  ],
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(INSTALL_HELP);
      return 0;
    }
    const { opts, watchSeconds } = parseInstallArgs(args);
    print(install(opts));
    // At start the node may hold an older overlay than the files: reconcile once whatever changed.
    if (opts.reconcile) print(reconcile(opts));
    if (watchSeconds === undefined) return 0;
    let stop = false;
    let wake: () => void = () => undefined;
    const quit = (): void => {
      stop = true;
      wake();
    };
    process.once('SIGTERM', quit);
    process.once('SIGINT', quit);
    while (!stop) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, watchSeconds * 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (stop) break;
      try {
        const done = installConfig(opts);
        print(done.filter((l) => !l.startsWith('unchanged') && !l.startsWith('warning:')));
        if (opts.reconcile && wroteSomething(done)) print(reconcile(opts));
      } catch (e) {
        process.stderr.write(`tabby install: ${(e as Error).message}\n`);
      }
    }
    return 0;
  },
};
