import { CniError, Code } from './errors';
import { CniArgs, parseCniArgs } from './args';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';
const COMMANDS: readonly string[] = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'];

export interface CniEnv {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  args: CniArgs;
  path: string[];
}

// libcni's utils.ValidateContainerID / ValidateNetworkName
export const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

/** The variables each command must have (spec + Go skel). */
const REQUIRED: Record<Command, string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: [],
  VERSION: [],
};

export function validateIfname(name: string): string | undefined {
  if (name === '') return 'interface name is empty';
  if (Buffer.byteLength(name) > 15) return `interface name "${name}" is longer than 15 bytes`;
  if (name === '.' || name === '..') return `interface name "${name}" is not allowed`;
  if (/[/:\s]/.test(name)) return `interface name "${name}" contains "/", ":" or whitespace`;
  return undefined;
}

/** Reads and validates the CNI_* variables for the given command. */
export function readEnv(env: NodeJS.ProcessEnv): CniEnv {
  const raw = env.CNI_COMMAND ?? '';
  if (!COMMANDS.includes(raw)) throw new CniError(Code.InvalidEnvironment, `unknown CNI_COMMAND: ${raw}`);
  const command = raw as Command;
  const missing = REQUIRED[command].filter((k) => env[k] === undefined || env[k] === '');
  if (missing.length > 0) {
    throw new CniError(Code.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  }
  const e: CniEnv = {
    command,
    containerId: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
    args: parseCniArgs(command === 'VERSION' ? '' : env.CNI_ARGS),
    path: (env.CNI_PATH ?? '').split(':').filter((p) => p !== ''),
  };
  if (command === 'ADD' || command === 'DEL' || command === 'CHECK') {
    if (!ID_RE.test(e.containerId)) {
      throw new CniError(Code.InvalidEnvironment, `CNI_CONTAINERID: invalid container ID "${e.containerId}"`);
    }
    const bad = validateIfname(e.ifname);
    if (bad) throw new CniError(Code.InvalidEnvironment, `CNI_IFNAME: ${bad}`);
  }
  return e;
}
