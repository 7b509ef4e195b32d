import * as fs from 'node:fs';
import { log } from './log';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program with an argument array (never a shell). Resolves with its exit code and output;
 * only a failure to start rejects.
 *
 * The program runs synchronously (spawnSync): tabby runs its commands one after another anyway, and
 * an asynchronous spawn costs each plugin process several milliseconds more (streams and sockets for
 * the child's stdio). node:child_process is loaded on first use, not with the module.
 */
export function execArgs(
  file: string,
  args: readonly string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ExecResult> {
  const started = process.hrtime.bigint();
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const r = spawnSync(file, args, {
    env: opts.env ?? process.env,
    input: opts.input ?? '',
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: opts.timeoutMs,
    maxBuffer: Infinity,
  });
  // A timeout kills the program (SIGTERM) and is reported like any other signal; anything else is a failure to start.
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') {
    r.error.message = r.error.message.replace(/^spawnSync /, 'spawn '); // as the asynchronous spawn words it
    return Promise.reject(r.error);
  }
  const res: ExecResult = {
    code: r.status ?? (r.signal ? 128 : 1),
    stdout: r.stdout?.toString() ?? '',
    stderr: r.stderr?.toString() ?? '',
  };
  if (log.enabled('debug')) {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    log.debug(
      `exec ${file} ${args.join(' ')} -> ${res.code} in ${ms.toFixed(1)} ms${res.stderr ? ': ' + res.stderr.trim() : ''}`,
    );
  }
  return Promise.resolve(res);
}

const BIN_DIRS = ['/usr/sbin/', '/sbin/', '/usr/bin/', '/bin/'];

/** The absolute path of a system program, or undefined when it is not installed. */
export function findProgram(name: string): string | undefined {
  return BIN_DIRS.map((d) => d + name).find((p) => fs.existsSync(p));
}

/** The absolute path of a program tabby needs; its bare name when not found (the spawn then says so). */
export const which = (name: string): string => findProgram(name) ?? name;
