import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { cpioNewc, CpioEntry } from './cpio';

/**
 * Runs scenarios inside a stock Debian kernel under qemu (software emulation: there is no KVM here).
 *
 * One boot runs a batch of scenarios. The host builds a small initramfs (busybox and the virtio/9p
 * modules of the installed linux-image-amd64 kernel, loaded in order by test/qemu/guest/init), shares
 * its own root filesystem read-only over 9p (tag host0) and a fresh job directory read-write (tag job).
 * The guest mounts the root, puts tmpfs on /tmp, /run and /var/tmp, and switch_roots into
 * test/qemu/guest/runner.sh, which runs test/qemu/scenarios/<name>.sh for each name in job.env and
 * powers off. Scenarios report assertions through test/qemu/guest/lib.sh into <job>/results-<name>.jsonl,
 * read back here with each scenario's log and the serial console.
 *
 * Scenarios written in TypeScript run as JavaScript bundles made here before boot (GUEST_BUNDLES, esbuild,
 * target Node 20: the guest runs the host's own /usr/bin/node over 9p) and placed in the job directory,
 * which the guest sees as $TABBY_JOB: e.g. `node "$TABBY_JOB/multinode.js"` (test/qemu/multinode-runner.ts).
 *
 * Nothing is installed here: test/setup.sh installs qemu-system-x86, linux-image-amd64, busybox-static.
 */

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const SCENARIO_DIR = path.join(REPO, 'test/qemu/scenarios');
const GUEST_DIR = path.join(REPO, 'test/qemu/guest');

/** Loaded by the guest's init, in this order, to reach the 9p root. */
export const INITRAMFS_MODULES = [
  'virtio_ring',
  'virtio',
  'virtio_pci_modern_dev',
  'virtio_pci_legacy_dev',
  'virtio_pci',
  'netfs',
  'fscache',
  '9pnet',
  '9pnet_virtio',
  '9p',
];

export const QEMU = 'qemu-system-x86_64';
export const BUSYBOX = '/bin/busybox';
/**
 * Whole-boot limit: the guest is killed after this and the run reported as failed. The full batch (boot
 * about 15 s, the multi-node scenarios about 3 min under software emulation) fits with room to spare.
 */
export const DEFAULT_TIMEOUT_MS = 600_000;
/** Per-scenario limit inside the guest (coreutils timeout): the longest, IPIP Always + CrossSubnet, takes about 90 s. */
export const DEFAULT_SCENARIO_TIMEOUT_S = 240;

/** Bundled before boot into the job directory ($TABBY_JOB in the guest): file name -> entry point (repo-relative). */
export const GUEST_BUNDLES: Readonly<Record<string, string>> = {
  'multinode.js': 'test/qemu/multinode-runner.ts',
};

/** Bundles each entry point for the guest's Node 20 into `dir`. Throws with esbuild's message on failure. */
export function buildGuestBundles(dir: string, bundles: Readonly<Record<string, string>> = GUEST_BUNDLES): void {
  for (const [out, entry] of Object.entries(bundles)) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\.js$/.test(out)) throw new Error(`bad bundle name ${JSON.stringify(out)}`);
    try {
      buildSync({
        entryPoints: [path.resolve(REPO, entry)],
        outfile: path.join(dir, out),
        bundle: true,
        platform: 'node',
        target: 'node20',
        format: 'cjs',
        logLevel: 'silent',
      });
    } catch (e) {
      throw new Error(`cannot bundle ${entry} for the guest: ${(e as Error).message}`);
    }
  }
}

export interface GuestKernel {
  version: string;
  vmlinuz: string;
  modulesDir: string;
}

/** $TABBY_QEMU_KERNEL's version, or the newest /boot/vmlinuz-<v> whose /lib/modules/<v> exists. */
export function findKernel(): GuestKernel {
  const wanted = process.env.TABBY_QEMU_KERNEL;
  let versions: string[];
  try {
    versions = fs
      .readdirSync('/boot')
      .filter((f) => f.startsWith('vmlinuz-'))
      .map((f) => f.slice('vmlinuz-'.length));
  } catch {
    versions = [];
  }
  versions = versions
    .filter((v) => (wanted ? v === wanted : true))
    .filter((v) => fs.existsSync(`/lib/modules/${v}/modules.dep`))
    .sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  if (!versions.length) {
    throw new Error(
      `no guest kernel: need /boot/vmlinuz-<ver> with /lib/modules/<ver>/modules.dep${wanted ? ` for ${wanted}` : ''}` +
        ' (test/setup.sh installs linux-image-amd64)',
    );
  }
  const v = versions[0];
  return { version: v, vmlinuz: `/boot/vmlinuz-${v}`, modulesDir: `/lib/modules/${v}` };
}

/** Module name -> path of its .ko, from modules.dep ('-' and '_' are the same, as for modprobe). */
function modulePaths(kernel: GuestKernel): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of fs.readFileSync(path.join(kernel.modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const rel = line.split(':')[0];
    const base = path.basename(rel);
    const m = /^(.*)\.ko(\.(xz|zst|gz))?$/.exec(base);
    if (m) map.set(m[1].replace(/-/g, '_'), path.join(kernel.modulesDir, rel));
  }
  return map;
}

/** Writes the initramfs (uncompressed newc cpio) for `kernel` to `file`. */
export function buildInitramfs(kernel: GuestKernel, file: string): void {
  const busybox = readOrThrow(BUSYBOX, 'test/setup.sh installs busybox-static');
  if (hasInterpreter(busybox)) {
    throw new Error(`${BUSYBOX} is dynamically linked; the initramfs needs busybox-static (test/setup.sh installs it)`);
  }
  const mods = modulePaths(kernel);
  const entries: CpioEntry[] = ['bin', 'dev', 'proc', 'sys', 'newroot', 'modules'].map((d) => ({
    kind: 'dir' as const,
    path: d,
  }));
  entries.push({ kind: 'char', path: 'dev/console', major: 5, minor: 1 });
  entries.push({ kind: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 });
  entries.push({ kind: 'file', path: 'init', data: fs.readFileSync(path.join(GUEST_DIR, 'init')), mode: 0o755 });
  for (const name of INITRAMFS_MODULES) {
    const p = mods.get(name.replace(/-/g, '_'));
    if (!p) throw new Error(`module ${name} is not in ${kernel.modulesDir}/modules.dep`);
    if (!p.endsWith('.ko')) throw new Error(`module ${name} is compressed (${p}); busybox insmod needs a plain .ko`);
    entries.push({ kind: 'file', path: `modules/${name}.ko`, data: fs.readFileSync(p) });
  }
  entries.push({ kind: 'file', path: 'modules/order', data: Buffer.from(INITRAMFS_MODULES.join('\n') + '\n') });
  fs.writeFileSync(file, cpioNewc(entries));
}

/** Whether an ELF64 executable names a program interpreter (PT_INTERP): i.e. it is dynamically linked. */
function hasInterpreter(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (elf.readUInt32LE(phoff + i * phentsize) === 3) return true;
  return false;
}

function readOrThrow(file: string, hint: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${file} (${(e as NodeJS.ErrnoException).code}); ${hint}`);
  }
}

export interface Assertion {
  scenario: string;
  name: string;
  ok: boolean;
  detail: string;
  /** Time since the scenario's previous assertion (or its start), inside the guest. */
  ms?: number;
}

export interface ScenarioOutcome {
  name: string;
  /** The scenario script's exit code; undefined when it never finished (guest killed or stopped). */
  rc?: number;
  /** Its run time inside the guest. */
  ms?: number;
  assertions: Assertion[];
  /** Everything the scenario printed. */
  log: string;
}

export interface GuestRun {
  /** Set when the run as a whole failed: qemu could not start, the guest hung, died or never finished. */
  failure?: string;
  kernel?: string;
  /** From spawning qemu to the runner's first line (host clock). */
  bootMs?: number;
  /** From spawning qemu to its exit. */
  wallMs: number;
  /** The guest's own uptime when the runner started. */
  guestUptimeMs?: number;
  scenarios: ScenarioOutcome[];
  /** The serial console: kernel messages, init's output and the result lines. */
  console: string;
  qemuPid?: number;
  qemuExit?: { code: number | null; signal: string | null };
  timedOut: boolean;
  /** The job directory, kept when the run failed or TABBY_QEMU_KEEP is set (otherwise deleted). */
  keptDir?: string;
}

export interface RunOptions {
  /** Kill the guest after this long and report the run as failed (default DEFAULT_TIMEOUT_MS). */
  timeoutMs?: number;
  scenarioTimeoutS?: number;
  /** The qemu executable (default qemu-system-x86_64 on PATH). */
  qemu?: string;
  memoryMb?: number;
  smp?: number;
  extraQemuArgs?: string[];
  /** Appended to the kernel command line. */
  kernelArgs?: string;
  /** Bundled into the job directory before boot (default GUEST_BUNDLES). */
  bundles?: Readonly<Record<string, string>>;
  /** The binary scenarios run as $TABBY_BIN (absolute; default <repo>/dist/tabby). */
  tabbyBin?: string;
  /** Keep the job directory (logs, console) afterwards: default when the run failed or TABBY_QEMU_KEEP is set. */
  keep?: boolean;
  /** Scenarios that fail on purpose (harness self-tests): their failures alone do not keep the logs. */
  failOnPurpose?: readonly string[];
  /** Called with each console line as it arrives (e.g. to stream progress). */
  onConsoleLine?: (line: string) => void;
}

/** Names of assertions that failed, and the scenario's own failure (no results, non-zero exit, not finished). */
export function scenarioProblems(s: ScenarioOutcome): string[] {
  const problems: string[] = [];
  if (s.rc === undefined) problems.push(`${s.name} did not finish`);
  else if (s.rc === 124 || s.rc === 137) problems.push(`${s.name} was killed at its timeout (exit ${s.rc})`);
  else if (s.rc !== 0) problems.push(`${s.name} exited ${s.rc}`);
  if (s.rc !== undefined && s.assertions.length === 0) problems.push(`${s.name} reported no results`);
  for (const a of s.assertions) if (!a.ok) problems.push(`${a.name}: ${a.detail}`);
  return problems;
}

const quote = (s: string): string => {
  if (s.includes("'") || s.includes('\n')) throw new Error(`cannot pass ${JSON.stringify(s)} to the guest`);
  return `'${s}'`;
};

const tail = (s: string, n: number): string => s.split('\n').slice(-n).join('\n');

function parseJsonl(file: string): any[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: any[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      out.push({ name: `unparsable result line: ${line.slice(0, 200)}`, ok: false, detail: line });
    }
  }
  return out;
}

/** Boots the guest once and runs `scenarios` (names of test/qemu/scenarios/<name>.sh) in order. */
export async function runScenarios(scenarios: readonly string[], opts: RunOptions = {}): Promise<GuestRun> {
  const started = Date.now();
  const base: GuestRun = { wallMs: 0, scenarios: [], console: '', timedOut: false };
  const fail = (failure: string): GuestRun => ({ ...base, failure, wallMs: Date.now() - started });

  for (const s of scenarios) {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(s)) return fail(`bad scenario name ${JSON.stringify(s)}`);
    if (!fs.existsSync(path.join(SCENARIO_DIR, `${s}.sh`)))
      return fail(`no scenario ${s}: ${SCENARIO_DIR}/${s}.sh does not exist`);
  }
  if (!scenarios.length) return fail('no scenarios given');
  if (new Set(scenarios).size !== scenarios.length) return fail(`a scenario is named twice in ${scenarios.join(' ')}`);

  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-qemu-'));
  const job = path.join(dir, 'job');
  fs.mkdirSync(job);
  let kernel: GuestKernel;
  const initrd = path.join(dir, 'initrd.cpio');
  try {
    kernel = findKernel();
    base.kernel = kernel.version;
    buildInitramfs(kernel, initrd);
    buildGuestBundles(job, opts.bundles);
    fs.writeFileSync(
      path.join(job, 'job.env'),
      [
        `TABBY_RUNNER=${quote(path.join(GUEST_DIR, 'runner.sh'))}`,
        `TABBY_REPO=${quote(REPO.replace(/\/$/, ''))}`,
        `TABBY_BIN=${quote(opts.tabbyBin ?? path.join(REPO, 'dist/tabby'))}`,
        `TABBY_SCENARIOS=${quote(scenarios.join(' '))}`,
        `TABBY_SCENARIO_TIMEOUT=${opts.scenarioTimeoutS ?? DEFAULT_SCENARIO_TIMEOUT_S}`,
        `TABBY_GUEST_DEADLINE=${Math.ceil(timeoutMs / 1000) + 30}`,
        '',
      ].join('\n'),
    );
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    return fail(`cannot prepare the guest: ${(e as Error).message}`);
  }

  const qemu = opts.qemu ?? QEMU;
  const args = [
    '-machine',
    'q35',
    '-cpu',
    'max',
    '-m',
    String(opts.memoryMb ?? 1024),
    '-smp',
    String(opts.smp ?? 2),
    '-nodefaults',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    kernel.vmlinuz,
    '-initrd',
    initrd,
    '-append',
    `console=ttyS0 quiet panic=-1 ${opts.kernelArgs ?? ''}`.trim(),
    '-virtfs',
    'local,path=/,mount_tag=host0,security_model=none,readonly=on,multidevs=remap',
    '-virtfs',
    `local,path=${job},mount_tag=job,security_model=none,multidevs=remap`,
    // the repository again, for clones under a directory the guest covers with tmpfs (/tmp, /run)
    '-virtfs',
    `local,path=${REPO},mount_tag=repo,security_model=none,readonly=on,multidevs=remap`,
    ...(opts.extraQemuArgs ?? []),
  ];

  const outcome = await new Promise<{
    error?: Error;
    code: number | null;
    signal: string | null;
    stderr: string;
    pid?: number;
  }>((resolve) => {
    const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let partial = '';
    const killer = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', killer);
    const timer = setTimeout(() => {
      base.timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      const text = b.toString();
      base.console += text;
      partial += text;
      const lines = partial.split(/\r?\n/);
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (base.bootMs === undefined && line.startsWith('TABBY-BOOTED ')) base.bootMs = Date.now() - started;
        opts.onConsoleLine?.(line);
      }
    });
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', (error) => {
      clearTimeout(timer);
      process.removeListener('exit', killer);
      resolve({ error, code: null, signal: null, stderr });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.removeListener('exit', killer);
      resolve({ code, signal, stderr, pid: child.pid });
    });
    base.qemuPid = child.pid;
  });
  base.wallMs = Date.now() - started;
  base.qemuExit = { code: outcome.code, signal: outcome.signal };

  // What the guest wrote to the job share.
  const ends = new Map<string, { rc: number; ms: number }>();
  for (const e of parseJsonl(path.join(job, 'scenarios.jsonl'))) ends.set(e.scenario, { rc: e.rc, ms: e.ms });
  base.scenarios = scenarios.map((name) => {
    let log = '';
    try {
      log = fs.readFileSync(path.join(job, `${name}.log`), 'utf8');
    } catch {
      /* never started */
    }
    return {
      name,
      rc: ends.get(name)?.rc,
      ms: ends.get(name)?.ms,
      assertions: parseJsonl(path.join(job, `results-${name}.jsonl`)).map((a) => ({
        scenario: name,
        name: a.scenario && a.scenario !== name ? `${a.scenario}: ${a.name}` : String(a.name),
        ok: a.ok === true,
        detail: typeof a.detail === 'string' ? a.detail : JSON.stringify(a.detail ?? ''),
        ms: typeof a.ms === 'number' ? a.ms : undefined,
      })),
      log,
    };
  });
  const booted = /^TABBY-BOOTED (\{.*\})\s*$/m.exec(base.console);
  if (booted) {
    try {
      base.guestUptimeMs = JSON.parse(booted[1]).uptime_ms;
    } catch {
      /* informative only */
    }
  }

  const fatal = /^TABBY-FATAL (.*)$/m.exec(base.console);
  const consoleTail = `\n--- last console lines ---\n${tail(base.console.trimEnd(), 25)}`;
  if (outcome.error) {
    const code = (outcome.error as NodeJS.ErrnoException).code;
    base.failure =
      `qemu cannot start: ${qemu}: ${outcome.error.message}` +
      (code === 'ENOENT' ? ' (test/setup.sh installs qemu-system-x86)' : '');
  } else if (base.timedOut) {
    base.failure = `guest killed at the timeout of ${timeoutMs / 1000} s (still running)${consoleTail}`;
  } else if (fatal) {
    base.failure = `guest init failed: ${fatal[1]}${consoleTail}`;
  } else if (!/^TABBY-DONE\s*$/m.test(base.console)) {
    const how = outcome.signal ? `killed by ${outcome.signal}` : `exit ${outcome.code}`;
    const why =
      base.bootMs === undefined && base.console === '' ? 'qemu cannot start' : 'guest stopped before finishing';
    base.failure = `${why}: ${qemu} ${how}${outcome.stderr.trim() ? `: ${outcome.stderr.trim()}` : ''}${consoleTail}`;
  } else if (outcome.code !== 0) {
    base.failure = `qemu exit ${outcome.code ?? outcome.signal} after the guest finished: ${outcome.stderr.trim()}`;
  }

  const anyProblem =
    base.failure !== undefined ||
    base.scenarios.some((s) => !opts.failOnPurpose?.includes(s.name) && scenarioProblems(s).length > 0);
  if (opts.keep ?? (anyProblem || !!process.env.TABBY_QEMU_KEEP)) {
    fs.writeFileSync(path.join(job, 'console.log'), base.console);
    fs.rmSync(initrd, { force: true });
    base.keptDir = dir;
  } else {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return base;
}
