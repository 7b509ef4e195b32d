import * as fs from 'node:fs';
import * as path from 'node:path';

export type Level = 'error' | 'warn' | 'info' | 'debug';
const RANK: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };
export const LEVELS = Object.keys(RANK) as Level[];

/**
 * One logger per process. Never writes to stdout: stdout belongs to the CNI protocol.
 * The log file gets everything at `level`; stderr (which runtimes pass on) gets warnings and errors,
 * or everything at `level` when the level is debug.
 */
class Logger {
  private level: Level = 'info';
  private file: string | undefined;
  private fd: number | undefined;
  private context = '';
  /** stderr gets this level and above; by default warnings, or everything at debug. A daemon sets `info`. */
  private stderrLevel: Level | undefined;

  configure(opts: { file?: string; level?: Level; context?: string; stderrLevel?: Level }): void {
    if (opts.level) this.level = opts.level;
    if (opts.stderrLevel) this.stderrLevel = opts.stderrLevel;
    if (opts.context !== undefined) this.context = opts.context;
    if (opts.file && opts.file !== this.file) {
      this.file = opts.file;
      this.fd = undefined;
    }
  }

  error(msg: string): void {
    this.write('error', msg);
  }
  warn(msg: string): void {
    this.write('warn', msg);
  }
  info(msg: string): void {
    this.write('info', msg);
  }
  debug(msg: string): void {
    this.write('debug', msg);
  }
  enabled(level: Level): boolean {
    return RANK[level] <= RANK[this.level];
  }

  private write(level: Level, msg: string): void {
    if (!this.enabled(level)) return;
    const line = `${new Date().toISOString()} ${level.toUpperCase()} [${process.pid}]${this.context ? ' ' + this.context : ''} ${msg}\n`;
    const toStderr = this.stderrLevel
      ? RANK[level] <= RANK[this.stderrLevel]
      : RANK[level] <= RANK.warn || this.level === 'debug';
    if (toStderr) {
      try {
        fs.writeSync(2, line);
      } catch {
        /* stderr closed: nothing to do */
      }
    }
    if (this.file) {
      try {
        if (this.fd === undefined) {
          fs.mkdirSync(path.dirname(this.file), { recursive: true });
          this.fd = fs.openSync(this.file, 'a', 0o640);
        }
        fs.writeSync(this.fd, line);
      } catch (e) {
        this.file = undefined;
        try {
          fs.writeSync(2, `tabby: cannot write log file: ${(e as Error).message}\n`);
        } catch {
          /* ignore */
        }
      }
    }
  }
}

export const log = new Logger();
