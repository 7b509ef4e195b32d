import { execArgs, which } from '../exec';
import { CniError, Code } from '../cni/errors';
import { log } from '../log';

/**
 * The one thin layer between tabby and iproute2. Everything that changes the kernel goes through
 * `IpBatch` (one `ip -batch` process per namespace), everything that reads it through `ipJson`.
 * Callers name a network namespace by path, or leave it out for the namespace tabby runs in.
 */

const IP_BIN = which('ip');
const NSENTER_BIN = which('nsenter');
const NAMED_NETNS = /^\/(?:var\/)?run\/netns\/([^/]+)$/;

/** The program and arguments that run `ip args...` inside `netns`. */
export function ipCommand(args: readonly string[], netns?: string): [string, string[]] {
  if (!netns) return [IP_BIN, [...args]];
  const named = NAMED_NETNS.exec(netns);
  // `ip -n` takes only names under /run/netns; any other path goes through nsenter, which then execs ip.
  if (named) return [IP_BIN, ['-n', named[1], ...args]];
  return [NSENTER_BIN, [`--net=${netns}`, IP_BIN, ...args]];
}

export class KernelError extends CniError {
  constructor(
    what: string,
    readonly stderr: string,
  ) {
    super(Code.KernelOperationFailed, `${what}: ${stderr.trim() || 'failed'}`);
  }
}

/** Runs one `ip` command and returns its stdout; failures throw KernelError. */
export async function ip(args: readonly string[], netns?: string): Promise<string> {
  const [file, argv] = ipCommand(args, netns);
  const res = await execArgs(file, argv);
  if (res.code !== 0) throw new KernelError(`ip ${args.join(' ')}${netns ? ` (netns ${netns})` : ''}`, res.stderr);
  return res.stdout;
}

/** Runs a read-only `ip -j` command and parses its JSON. */
export async function ipJson<T = unknown>(args: readonly string[], netns?: string): Promise<T> {
  const out = await ip(['-j', ...args], netns);
  return (out.trim() === '' ? [] : JSON.parse(out)) as T;
}

/** Collects iproute2 commands and runs them as one `ip -batch` process. */
export class IpBatch {
  private readonly lines: string[] = [];

  constructor(private readonly netns?: string) {}

  add(...words: string[]): this {
    for (const w of words) {
      if (w === '' || /[\s"'\\#]/.test(w))
        throw new CniError(Code.Internal, `refusing unsafe ip batch word ${JSON.stringify(w)}`);
    }
    this.lines.push(words.join(' '));
    return this;
  }

  addAll(lines: readonly string[][]): this {
    for (const l of lines) this.add(...l);
    return this;
  }

  get size(): number {
    return this.lines.length;
  }

  /**
   * Runs the batch; stops at the first failing line. Returns the JSON printed by `show` lines, in order.
   */
  async run(): Promise<unknown[]> {
    if (this.lines.length === 0) return [];
    const [file, argv] = ipCommand(['-j', '-batch', '-'], this.netns);
    const input = this.lines.join('\n') + '\n';
    log.debug(`ip batch${this.netns ? ` in ${this.netns}` : ''}:\n  ${this.lines.join('\n  ')}`);
    const res = await execArgs(file, argv, { input });
    if (res.code !== 0) {
      const m = /Command failed -:(\d+)/.exec(res.stderr);
      const line = m ? this.lines[Number(m[1]) - 1] : undefined;
      throw new KernelError(
        line ? `ip ${line}${this.netns ? ` (netns ${this.netns})` : ''}` : 'ip -batch',
        res.stderr.replace(/Command failed -:\d+\s*/, ''),
      );
    }
    return res.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l));
  }
}
