import { ABOUT, TABBY_VERSION } from '../../lib/about';
import { SUPPORTED_VERSIONS } from '../../lib/cni/version';
import { CliCommand, UsageError } from './command';
import { planCommand, reconcileCommand, statusCommand, teardownCommand } from './cluster';
import { installCommand } from './install';
import { agentCommand } from './agent';
import { applyCommand, deleteCommand, getCommand } from './resources';
import { ipamCommand } from './ipam';

/** tabby without CNI_COMMAND: a small command line for people. Each command registers itself below. */

export { CliCommand, UsageError } from './command';

const version: CliCommand = {
  usage: ["version [--json]              print tabby's version and the CNI spec versions it speaks"],
  run(args) {
    if (args.includes('--json')) {
      process.stdout.write(JSON.stringify({ version: TABBY_VERSION, cniVersions: SUPPORTED_VERSIONS }) + '\n');
    } else {
      process.stdout.write(`tabby ${TABBY_VERSION}\nCNI spec versions: ${SUPPORTED_VERSIONS.join(', ')}\n`);
    }
    return 0;
  },
};

const help: CliCommand = {
  usage: ['help                          show this text'],
  run() {
    process.stdout.write(helpText());
    return 0;
  },
};

export const COMMANDS: Record<string, CliCommand> = {
  version,
  help,
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

function helpText(): string {
  const lines = Object.values(COMMANDS).flatMap((c) =>
    c.usage.map((u, k) => (k === 0 ? `  tabby ${u}` : `        ${u}`)),
  );
  return `${ABOUT}

Usage:
${lines.join('\n')}

As a CNI plugin, tabby is run by the container runtime with CNI_COMMAND set
(ADD, DEL, CHECK, GC, STATUS or VERSION) and its network configuration on stdin.
Installed under the name tabby-ipam (a symlink), it is an IPAM plugin.
`;
}

export async function runCli(argv: string[]): Promise<number> {
  const [name = 'help', ...rest] = argv;
  const cmd = COMMANDS[name.replace(/^--?/, '')] ?? (name === '-h' ? help : undefined);
  if (!cmd) {
    process.stderr.write(`tabby: unknown command "${name}"\n\n${helpText()}`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`tabby ${name}: ${e.message}\n\n${helpText()}`);
      return 2;
    }
    process.stderr.write(`tabby ${name}: ${(e as Error).message}\n`);
    return 1;
  }
}
