import { ABOUT, TABBY_VERSION } from '../../lib/about';
import { SUPPORTED_VERSIONS } from '../../lib/cni/version';
import {
  CliCommand,
  Command,
  command,
  helpOf,
  isGroup,
  nearMiss,
  parseCommand,
  shortUsage,
  table,
  UsageError,
} from './command';
import { planCommand, reconcileCommand, statusCommand, teardownCommand } from './cluster';
import { installCommand } from './install';
import { agentCommand } from './agent';
import { applyCommand, deleteCommand, getCommand } from './resources';
import { ipamCommand } from './ipam';
import { validateCommand } from './validate';

/** tabby without CNI_COMMAND: a small command line for people. Each command registers itself below. */

export { CliCommand, UsageError } from './command';

const version = command({
  name: 'version',
  summary: "print tabby's version and the CNI spec versions it speaks",
  options: { json: { type: 'boolean', help: 'as JSON, for scripts' } },
  run(o) {
    if (o.json) {
      process.stdout.write(JSON.stringify({ version: TABBY_VERSION, cniVersions: SUPPORTED_VERSIONS }) + '\n');
    } else {
      process.stdout.write(`tabby ${TABBY_VERSION}\nCNI spec versions: ${SUPPORTED_VERSIONS.join(', ')}\n`);
    }
    return 0;
  },
});

const help = command({
  name: 'help',
  summary: 'show the commands, or the help of one',
  options: {},
  positionals: [
    { name: 'COMMAND', help: 'the command to explain, e.g. plan or ipam', optional: true },
    { name: 'SUBCOMMAND', help: 'of a command that has them, e.g. ipam list', optional: true },
  ],
  run(_, names) {
    if (names.length) return runCli([...names, '--help']);
    process.stdout.write(helpText());
    return 0;
  },
});

export const COMMANDS: Record<string, CliCommand> = {
  version,
  help,
  validate: validateCommand,
  plan: planCommand,
  reconcile: reconcileCommand,
  teardown: teardownCommand,
  status: statusCommand,
  install: installCommand,
  ipam: ipamCommand,
  agent: agentCommand,
  apply: applyCommand,
  get: getCommand,
  delete: deleteCommand,
};

/** Every command that runs, subcommands included (`ipam list`), for help and tests. */
export function leafCommands(): Command[] {
  return Object.values(COMMANDS).flatMap((c) => (isGroup(c) ? c.subcommands : [c]));
}

function helpText(): string {
  return `${ABOUT}

Usage: tabby COMMAND [flags]     (tabby COMMAND --help: its flags; --flag VALUE or --flag=VALUE)

${table(leafCommands().map((c) => [`  ${c.name}`, c.summary]))}

As a CNI plugin, tabby is run by the container runtime with CNI_COMMAND set
(ADD, DEL, CHECK, GC, STATUS or VERSION) and its network configuration on stdin.
Installed under the name tabby-ipam (a symlink), it is an IPAM plugin.
`;
}

function unknownCommand(name: string): string {
  const guess = nearMiss(name, Object.keys(COMMANDS));
  return `unknown command "${name}"${guess ? ` (did you mean ${guess}?)` : ''}`;
}

/** A usage error: one line saying what is wrong, then the command's own short usage. */
function usageError(where: string, message: string, c?: CliCommand): number {
  const usage = c
    ? `usage: ${shortUsage(c)}   (tabby ${c.name} --help: every flag)`
    : `usage: tabby COMMAND [flags]; commands: ${Object.keys(COMMANDS).join(', ')}   (tabby help: what each does)`;
  process.stderr.write(`${where}: ${message}\n${usage}\n`);
  return 2;
}

/** The command `argv` names (a group's subcommand included), and the arguments left for it. */
function resolve(argv: string[]): { c: CliCommand; rest: string[] } | { error: string; c?: CliCommand } {
  const [name = 'help', ...rest] = argv;
  if (name === '--help' || name === '-h') return { c: help, rest };
  if (name === '--version') return { c: version, rest };
  const c = COMMANDS[name];
  if (!c) return { error: unknownCommand(name) };
  if (!isGroup(c)) return { c, rest };
  const [sub, ...subRest] = rest;
  if (sub === '--help' || sub === '-h') return { c, rest: ['--help'] };
  const names = c.subcommands.map((s) => s.name.split(' ').pop()!);
  if (sub === undefined) return { error: `needs a command: ${names.join(', ')}`, c };
  const i = names.indexOf(sub);
  if (i < 0) {
    const guess = nearMiss(sub, names);
    return { error: `unknown ${c.name} command "${sub}"${guess ? ` (did you mean ${guess}?)` : ''}`, c };
  }
  return { c: c.subcommands[i], rest: subRest };
}

export async function runCli(argv: string[]): Promise<number> {
  const r = resolve(argv);
  if ('error' in r) return usageError(r.c ? `tabby ${r.c.name}` : 'tabby', r.error, r.c);
  const { c, rest } = r;
  const where = `tabby ${c.name}`;
  if (isGroup(c)) {
    process.stdout.write(helpOf(c));
    return 0;
  }
  try {
    const p = parseCommand(c, rest);
    if (p.help) {
      process.stdout.write(helpOf(c));
      return 0;
    }
    return await c.run(p.values, p.positionals);
  } catch (e) {
    if (e instanceof UsageError) return usageError(where, e.message, c);
    process.stderr.write(`${where}: ${(e as Error).message}\n`);
    return 1;
  }
}
