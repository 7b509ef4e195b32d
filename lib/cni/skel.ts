import * as fs from 'node:fs';
import { asCniError, CniError, Code } from './errors';
import { CniEnv, ID_RE, readEnv } from './env';
import { CURRENT_VERSION, isSupported, requireCommandVersion, requireSupported, SUPPORTED_VERSIONS } from './version';
import { Result, toVersion } from './result';
import { log } from '../log';

/** One CNI invocation: the validated environment and the raw network configuration. */
export interface Request {
  env: CniEnv;
  cniVersion: string;
  config: Record<string, unknown>;
  stdin: string;
}

/** What a plugin implements; the skeleton owns everything about the protocol around it. */
export interface Plugin {
  add(req: Request): Promise<Result>;
  del(req: Request): Promise<void>;
  check(req: Request): Promise<void>;
  gc(req: Request): Promise<void>;
  status(req: Request): Promise<void>;
}

export function versionInfo(requested?: string): Record<string, unknown> {
  const v = requested && isSupported(requested) ? requested : CURRENT_VERSION;
  return { cniVersion: v, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** Parses stdin into a config object; errors carry the spec's codes (6 decode, 1 version, 7 name). */
export function parseConfig(stdin: string, needName: boolean): { cniVersion: string; config: Record<string, unknown> } {
  let config: unknown;
  try {
    config = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(Code.DecodingFailure, `error decoding network configuration: ${(e as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new CniError(Code.DecodingFailure, 'error decoding network configuration: not a JSON object');
  }
  const c = config as Record<string, unknown>;
  const cniVersion = c.cniVersion === undefined || c.cniVersion === '' ? '0.1.0' : c.cniVersion;
  if (typeof cniVersion !== 'string') throw new CniError(Code.DecodingFailure, 'cniVersion: must be a string');
  requireSupported(cniVersion);
  if (needName) {
    if (typeof c.name !== 'string' || c.name === '')
      throw new CniError(Code.InvalidNetworkConfig, 'missing network name');
    if (!ID_RE.test(c.name)) throw new CniError(Code.InvalidNetworkConfig, `invalid network name "${c.name}"`);
  }
  return { cniVersion, config: c };
}

function readStdin(): string {
  try {
    return fs.readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

function emit(obj: unknown): void {
  fs.writeSync(1, JSON.stringify(obj) + '\n');
}

/**
 * Runs one CNI command against `plugin`; returns the exit code. `plugin` may be a loader, called
 * only for a command other than VERSION (each run is a fresh process: VERSION then loads nothing more).
 */
export async function runPlugin(
  plugin: Plugin | (() => Promise<Plugin>),
  envVars: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let cniVersion = CURRENT_VERSION;
  try {
    const env = readEnv(envVars);
    const stdin = readStdin();
    if (env.command === 'VERSION') {
      let requested: string | undefined;
      try {
        requested = (JSON.parse(stdin) as { cniVersion?: string }).cniVersion;
      } catch {
        /* VERSION ignores stdin */
      }
      emit(versionInfo(requested));
      return 0;
    }
    const parsed = parseConfig(stdin, true);
    cniVersion = parsed.cniVersion;
    requireCommandVersion(env.command, cniVersion);
    const req: Request = { env, cniVersion, config: parsed.config, stdin };
    const p = typeof plugin === 'function' ? await plugin() : plugin;
    log.configure({ context: `${env.command} ${env.containerId || '-'}/${env.ifname || '-'}` });
    switch (env.command) {
      case 'ADD': {
        const result = await p.add(req);
        emit(toVersion(result, cniVersion));
        break;
      }
      case 'DEL':
        await p.del(req);
        break;
      case 'CHECK':
        await p.check(req);
        break;
      case 'GC':
        await p.gc(req);
        break;
      case 'STATUS':
        await p.status(req);
        break;
    }
    // performance.now() counts from the process's start: this is the whole command but exit
    if (log.enabled('debug')) log.debug(`done ${performance.now().toFixed(1)} ms after start`);
    return 0;
  } catch (e) {
    const err = asCniError(e);
    log.error(`code ${err.code}: ${err.message}${err.details ? ' (' + err.details + ')' : ''}`);
    if (err.code === Code.Internal && e instanceof Error && e.stack) log.debug(e.stack);
    emit(err.toJSON(cniVersion));
    return 1;
  }
}
