import { spawn } from 'node:child_process';

/** Running programs for tests and the demo: argument arrays only, never a shell. No vitest here. */

export const IP = '/usr/sbin/ip';
export const NETNS_DIR = '/var/run/netns';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with an argument array (never a shell). Never rejects on a non-zero exit. */
export function run(
  file: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString() + (signal ? `\n[killed by ${signal}]` : ''),
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs `ip [-n ns] args...`; throws with ip's stderr on failure. */
export async function ip(ns: string | undefined, args: readonly string[]): Promise<string> {
  const argv = ns ? ['-n', ns, ...args] : [...args];
  const r = await run(IP, argv);
  if (r.code !== 0) throw new Error(`ip ${argv.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** `ip -j` output, parsed. */
export async function ipJson<T = any>(ns: string | undefined, args: readonly string[]): Promise<T> {
  const out = await ip(ns, ['-j', ...args]);
  return (out.trim() === '' ? [] : JSON.parse(out)) as T;
}

/** Runs a program inside a namespace (`ip netns exec`, which also remounts /sys for it). */
export function nsExec(
  ns: string,
  file: string,
  args: readonly string[],
  opts: Parameters<typeof run>[2] = {},
): Promise<RunResult> {
  return run(IP, ['netns', 'exec', ns, file, ...args], opts);
}
