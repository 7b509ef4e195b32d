import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniError, Code } from './errors';
import { execArgs } from '../exec';
import { fromAny, Result } from './result';

/** Finds a plugin executable in CNI_PATH (libcni invoke.FindInPath). */
export function findInPath(plugin: string, dirs: readonly string[]): string {
  if (plugin === '' || plugin.includes('/')) {
    throw new CniError(Code.InvalidNetworkConfig, `invalid plugin name "${plugin}"`);
  }
  for (const dir of dirs) {
    const full = path.join(dir, plugin);
    try {
      const st = fs.statSync(full);
      if (st.isFile() && (st.mode & 0o111) !== 0) return full;
    } catch {
      /* not in this directory */
    }
  }
  throw new CniError(Code.InvalidNetworkConfig, `failed to find plugin "${plugin}" in path [${dirs.join(' ')}]`);
}

/**
 * Executes a delegate plugin (usually IPAM) with the same environment but `command`, and the full
 * config on stdin. Its stderr is passed through; its error JSON becomes our error.
 */
export async function delegate(
  plugin: string,
  command: string,
  stdin: string,
  dirs: readonly string[],
): Promise<Result | undefined> {
  const file = findInPath(plugin, dirs);
  const res = await execArgs(file, [], { input: stdin, env: { ...process.env, CNI_COMMAND: command } });
  if (res.stderr) process.stderr.write(res.stderr);
  if (res.code !== 0) {
    let parsed: { code?: number; msg?: string; details?: string } | undefined;
    try {
      parsed = JSON.parse(res.stdout);
    } catch {
      /* not JSON */
    }
    if (parsed && typeof parsed.code === 'number') {
      throw new CniError(parsed.code, `${plugin}: ${parsed.msg ?? 'failed'}`, parsed.details ?? '');
    }
    throw new CniError(
      Code.DelegateFailed,
      `${plugin} ${command} failed (exit ${res.code}): ${(res.stdout || res.stderr).trim()}`,
    );
  }
  if (command !== 'ADD') return undefined;
  let out: unknown;
  try {
    out = JSON.parse(res.stdout);
  } catch (e) {
    throw new CniError(Code.DecodingFailure, `${plugin}: cannot decode its result: ${(e as Error).message}`);
  }
  return fromAny(out, `${plugin} result`);
}
