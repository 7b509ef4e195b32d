import * as fs from 'node:fs';
import * as path from 'node:path';
import { SimCluster } from '../helpers/cluster';
import { Check, Encap, encapSwitchScenario, Mode, nodeRemovalScenario, poolModeScenario } from '../helpers/scenarios';

/**
 * Runs multi-node scenarios (test/helpers/scenarios.ts) outside vitest, for the qemu guest:
 *   node multinode-runner.js TABBY_BIN SCENARIO...
 * SCENARIO is pool:<vxlan|ipip>:<Always|CrossSubnet|Never>[:nonat], removal:<vxlan|ipip> or switch.
 * Prints one JSON line per check, {"scenario","name","ok","detail","ms"}, and appends them to $TABBY_RESULTS
 * when set. Exits 0 when every check passed.
 */

async function runOne(c: SimCluster, spec: string): Promise<Check[]> {
  const [kind, a, b, c3] = spec.split(':');
  if (kind === 'pool') return poolModeScenario(c, a as Encap, b as Mode, c3 !== 'nonat');
  if (kind === 'removal') return nodeRemovalScenario(c, a as Encap);
  if (kind === 'switch') return encapSwitchScenario(c);
  throw new Error(`unknown scenario ${spec}`);
}

async function main(): Promise<number> {
  const [bin, ...specs] = process.argv.slice(2);
  const tabby = bin.endsWith('.js') ? [process.execPath, path.resolve(bin)] : [path.resolve(bin)];
  const t0 = Date.now();
  const c = await SimCluster.create(tabby);
  console.error(`multinode: cluster built in ${Date.now() - t0} ms`);
  let ok = true;
  try {
    for (const spec of specs) {
      let checks: Check[];
      try {
        checks = await runOne(c, spec);
      } catch (e) {
        checks = [{ name: 'scenario ran to the end', ok: false, detail: (e as Error).stack ?? String(e) }];
      }
      for (const ch of checks) {
        const line = JSON.stringify({ scenario: spec, name: ch.name, ok: ch.ok, detail: ch.detail, ms: ch.ms });
        console.log(line);
        if (process.env.TABBY_RESULTS) fs.appendFileSync(process.env.TABBY_RESULTS, line + '\n');
        ok &&= ch.ok;
      }
    }
  } finally {
    await c.destroy();
  }
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
