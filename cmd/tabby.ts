import * as path from 'node:path';
import { runPlugin } from '../lib/cni/skel';

/**
 * One binary, three faces: with CNI_COMMAND set it is the `tabby` CNI plugin, or the `tabby-ipam`
 * IPAM plugin when invoked under that name; without it, a command line for people.
 *
 * The runtime starts a process for every ADD and DEL, so only the face in use is loaded: each is
 * imported when needed (esbuild keeps these imports lazy inside the one bundle), and VERSION loads none.
 */
async function main(): Promise<number> {
  const invokedAs = path.basename(process.argv0 || process.argv[1] || '');
  if (process.env.CNI_COMMAND !== undefined) {
    return runPlugin(
      invokedAs === 'tabby-ipam'
        ? async () => (await import('./plugin/ipam-plugin')).ipamPlugin
        : async () => (await import('./plugin/plugin')).tabbyPlugin,
    );
  }
  return (await import('./cli/main')).runCli(process.argv.slice(2));
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`tabby: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
