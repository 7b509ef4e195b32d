import { ABOUT, TABBY_VERSION } from '../lib/about';
import { SUPPORTED_VERSIONS } from '../lib/cni/version';

/** tabby without CNI_COMMAND: a small command line for people. */

const HELP = `${ABOUT}

Usage:
  tabby version        print tabby's version and the CNI spec versions it speaks
  tabby help           show this text

As a CNI plugin, tabby is run by the container runtime with CNI_COMMAND set
(ADD, DEL, CHECK, GC, STATUS or VERSION) and its network configuration on stdin.
Installed under the name tabby-ipam (a symlink), it is an IPAM plugin.
`;

export function runCli(argv: string[]): number {
  const [cmd = 'help', ...rest] = argv;
  switch (cmd) {
    case 'version':
    case '--version':
      if (rest.includes('--json')) {
        process.stdout.write(JSON.stringify({ version: TABBY_VERSION, cniVersions: SUPPORTED_VERSIONS }) + '\n');
      } else {
        process.stdout.write(`tabby ${TABBY_VERSION}\nCNI spec versions: ${SUPPORTED_VERSIONS.join(', ')}\n`);
      }
      return 0;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    default:
      process.stderr.write(`tabby: unknown command "${cmd}"\n\n${HELP}`);
      return 2;
  }
}
