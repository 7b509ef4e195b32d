import { spawn } from 'node:child_process';
import { log } from './log';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program with an argument array (never a shell). Resolves with its exit code and output;
 * only a failure to start rejects.
 */
export function execArgs(
  file: string,
  args: readonly string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(file, args, {
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const res = {
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      };
      if (log.enabled('debug')) {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        log.debug(`exec ${file} ${args.join(' ')} -> ${res.code} in ${ms.toFixed(1)} ms${res.stderr ? ': ' + res.stderr.trim() : ''}`);
      }
      resolve(res);
    });
    child.stdin.on('error', () => { /* the child may exit before reading all input */ });
    child.stdin.end(opts.input ?? '');
  });
}
