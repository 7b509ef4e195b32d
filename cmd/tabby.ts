import * as path from 'node:path';
import { runPlugin } from '../lib/cni/skel';
import { tabbyPlugin } from './plugin';
import { ipamPlugin } from './ipam-plugin';
import { runCli } from './cli';

/**
 * One binary, three faces: with CNI_COMMAND set it is the `tabby` CNI plugin, or the `tabby-ipam`
 * IPAM plugin when invoked under that name; without it, a command line for people.
 */
async function main(): Promise<number> {
  const invokedAs = path.basename(process.argv0 || process.argv[1] || '');
  if (process.env.CNI_COMMAND !== undefined) {
    return runPlugin(invokedAs === 'tabby-ipam' ? ipamPlugin : tabbyPlugin);
  }
  return runCli(process.argv.slice(2));
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`tabby: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
