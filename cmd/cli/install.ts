import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { command, parseCommand, UsageError, Values } from './command';
import {
  CNI_CONF_EXTENSIONS,
  DEFAULT_BIN_DIR,
  DEFAULT_CLUSTER_DEST,
  DEFAULT_CONF_DIR,
  DEFAULT_CONF_NAME,
  install,
  installConfig,
  type InstallOptions,
  isSea,
} from './install-files';

/**
 * `tabby install`: its flags, and the watch that keeps the config files in sync with their sources
 * (a DaemonSet's ConfigMap), refusing a bad new cluster file and keeping the last good one.
 */

export {
  DEFAULT_BIN_DIR,
  DEFAULT_CLUSTER_DEST,
  DEFAULT_CONF_DIR,
  DEFAULT_CONF_NAME,
  installBinaries,
  installConfig,
  selfExecutable,
  validateConflist,
} from './install-files';
export type { InstallOptions } from './install-files';

const INSTALL_FLAGS = {
  conflist: {
    type: 'string',
    arg: 'FILE',
    required: true,
    help: 'the network configuration to install (must run a plugin of type "tabby")',
  },
  'cni-bin-dir': {
    type: 'string',
    arg: 'DIR',
    help: `where runtimes look for plugins (default ${DEFAULT_BIN_DIR}); a directory given here must exist (it already holds the plugins a conflist chains, so a missing one is a typo); the default is created on a node that has none`,
  },
  'cni-conf-dir': {
    type: 'string',
    arg: 'DIR',
    help: `where runtimes look for network configurations (default ${DEFAULT_CONF_DIR}); created if missing, as containerd and CRI-O create it themselves`,
  },
  name: {
    type: 'string',
    arg: 'F',
    help: `the conflist's file name there (default ${DEFAULT_CONF_NAME}; containerd uses the first by name)`,
  },
  force: { type: 'boolean', help: "overwrite a file of that name even if it is not tabby's" },
  'cluster-file': {
    type: 'string',
    arg: 'FILE',
    help: 'also install this cluster file, validated first as `tabby validate` does: a bad one is refused',
  },
  'cluster-dest': {
    type: 'string',
    arg: 'PATH',
    help: `... here (default ${DEFAULT_CLUSTER_DEST}; the conflist's "cluster" names it)`,
  },
  from: { type: 'string', arg: 'EXE', help: 'the executable to copy (default: this one)' },
  'skip-binaries': { type: 'boolean', help: 'only the config files' },
  'node-name': {
    type: 'string',
    arg: 'NAME',
    help: 'write "nodeName": NAME into tabby\'s entry (e.g. the Kubernetes node name)',
  },
  watch: {
    type: 'string',
    arg: 'SECONDS',
    help: 'then keep the config files in sync with their sources until SIGTERM; a bad new cluster file is refused and logged, and the last good one stays',
  },
  reconcile: {
    type: 'boolean',
    help: 'run `tabby reconcile` on the installed conflist at start and whenever a config file changed (the node network then follows the cluster file)',
  },
} as const;

function optionsOf(v: Values<typeof INSTALL_FLAGS>): { opts: InstallOptions; watchSeconds?: number } {
  const confName = v.name ?? DEFAULT_CONF_NAME;
  if (confName.includes('/') || !CNI_CONF_EXTENSIONS.some((e) => confName.endsWith(e))) {
    throw new UsageError(
      `--name must be a plain file name ending in ${CNI_CONF_EXTENSIONS.join(', ')}, got "${confName}"`,
    );
  }
  let watchSeconds: number | undefined;
  if (v.watch !== undefined) {
    watchSeconds = Number(v.watch);
    if (!Number.isFinite(watchSeconds) || watchSeconds <= 0)
      throw new UsageError(`--watch needs a positive number of seconds, got "${v.watch}"`);
  }
  return {
    opts: {
      binDir: v['cni-bin-dir'] ?? DEFAULT_BIN_DIR,
      binDirGiven: v['cni-bin-dir'] !== undefined,
      confDir: v['cni-conf-dir'] ?? DEFAULT_CONF_DIR,
      conflist: v.conflist,
      confName,
      from: v.from,
      clusterFile: v['cluster-file'],
      clusterDest: v['cluster-dest'] ?? DEFAULT_CLUSTER_DEST,
      force: v.force,
      skipBinaries: v['skip-binaries'],
      nodeName: v['node-name'],
      reconcile: v.reconcile,
    },
    watchSeconds,
  };
}

/** The options of an install command line (as the DaemonSet's init container gives it). */
export function parseInstallArgs(args: string[]): { opts: InstallOptions; watchSeconds?: number } {
  const p = parseCommand(installCommand, args);
  if (p.help) throw new UsageError('--help is not an install');
  return optionsOf(p.values as Values<typeof INSTALL_FLAGS>);
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

/** Sleeps `seconds`, or less when `wake` is called (by SIGTERM). */
function sleeper(): { sleep(seconds: number): Promise<void>; wake(): void } {
  let wake: () => void = () => undefined;
  return {
    sleep: (seconds) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, seconds * 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
    wake: () => wake(),
  };
}

/** Keeps the config files in sync with their sources until SIGTERM or SIGINT. */
async function watch(opts: InstallOptions, seconds: number): Promise<void> {
  let stop = false;
  const s = sleeper();
  const quit = (): void => {
    stop = true;
    s.wake();
  };
  process.once('SIGTERM', quit);
  process.once('SIGINT', quit);
  let refused: string | undefined; // said once per problem, not once per round
  while (!stop) {
    await s.sleep(seconds);
    if (stop) break;
    try {
      const done = await installConfig(opts);
      if (refused !== undefined) print([`the sources are valid again`]);
      refused = undefined;
      if (!wroteSomething(done)) continue;
      print(done.filter((l) => !l.startsWith('unchanged')));
      if (opts.reconcile) print(reconcile(opts));
    } catch (e) {
      const message = (e as Error).message;
      if (message !== refused) {
        const kept = [opts.clusterFile ? opts.clusterDest : undefined, path.join(opts.confDir, opts.confName)];
        process.stderr.write(
          `tabby install: refused: ${message}; keeping ${kept.filter(Boolean).join(' and ')} as installed\n`,
        );
      }
      refused = message;
    }
  }
}

export const installCommand = command({
  name: 'install',
  summary: 'put tabby on this node: the executable, the conflist and the cluster file',
  options: INSTALL_FLAGS,
  details: `The executable and its tabby-ipam link go into the CNI bin directory, then the conflist into the
CNI config directory. Files are written beside their destination and renamed over it, so a runtime
never reads half a file and a running plugin keeps its executable. Everything is read and checked
before anything is written: a conflist that does not run tabby, a foreign file in the way, a missing
bin directory or a cluster file that \`tabby validate\` refuses (including one without an IPPool)
changes nothing and exits non-zero.`,
  async run(values) {
    const { opts, watchSeconds } = optionsOf(values);
    print(await install(opts));
    // At start the node may hold an older overlay than the files: reconcile once whatever changed.
    if (opts.reconcile) print(reconcile(opts));
    if (watchSeconds !== undefined) await watch(opts, watchSeconds);
    return 0;
  },
});
