import * as fs from 'node:fs';

/**
 * Reading the files people name on the command line, with errors that name the file and say what is
 * wrong in words ("FILE: no such file", "FILE: not JSON (...)"), not Node's ENOENT or a parser's trace.
 */

const WHY: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links',
};

/** The error for a file that cannot be read, in words. */
export function fileError(file: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  return new Error(`${file}: ${(code && WHY[code]) ?? (e as Error).message}`);
}

export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw fileError(file, e);
  }
}

/** A JSON file's value; "FILE: not JSON (...)" when it is something else. */
export function readJson(file: string): unknown {
  const text = readText(file);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message})`);
  }
}
