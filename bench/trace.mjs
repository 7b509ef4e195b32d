// Where tabby's ADD time goes: the floors (`ip netns exec` of /bin/true, VERSION of each plugin: process
// start-up with no work), then one ADD with "logLevel":"debug", whose stderr log (each `ip` batch with
// its duration) is printed with offsets from the spawn.
//   node bench/trace.mjs [--samples N]
import { parseArgs } from 'node:util';
import { cni, contenders, createNetns, createNode, expectOk, fmtMs, IP, isMain, main, median, run } from './lib.mjs';
import { positiveInt } from './cycle.mjs';

export async function trace({ samples = 15 } = {}) {
  const node = await createNode();
  const [tabby, ref] = contenders({ tabbyExtra: { logLevel: 'debug' } });
  const [pod] = await createNetns('p');
  const env = { PATH: process.env.PATH, CNI_COMMAND: 'VERSION' };
  const floors = { 'ip netns exec /bin/true': [], 'tabby VERSION': [], 'ptp VERSION': [] };
  for (let i = 0; i < samples; i++) {
    floors['ip netns exec /bin/true'].push((await run(IP, ['netns', 'exec', node, '/bin/true'])).ms);
    for (const [k, c] of [
      ['tabby VERSION', tabby],
      ['ptp VERSION', ref],
    ]) {
      const r = await run(IP, ['netns', 'exec', node, ...c.argv], {
        env,
        input: JSON.stringify({ cniVersion: '1.0.0' }),
      });
      if (r.code !== 0) throw new Error(`${k} failed: exit ${r.code}: ${r.stdout}${r.stderr}`);
      floors[k].push(r.ms);
    }
  }
  console.log(`== trace: start-up floors (median of ${samples}, ms, inside node ${node})`);
  for (const [k, v] of Object.entries(floors)) console.log(`  ${k.padEnd(26)} ${fmtMs(median(v)).padStart(6)}`);

  // One warm-up ADD/DEL pair so that the traced ADD sees a data dir that already exists, as in the cycle bench.
  expectOk(tabby, 'ADD', 'trace-warm', await cni(node, tabby, 'ADD', 'trace-warm', pod));
  expectOk(tabby, 'DEL', 'trace-warm', await cni(node, tabby, 'DEL', 'trace-warm', pod));

  const spawned = Date.now();
  const r = expectOk(tabby, 'ADD', 'trace', await cni(node, tabby, 'ADD', 'trace', pod));
  console.log(`== trace: one tabby ADD with logLevel debug: ${fmtMs(r.ms)} ms wall; stderr, +ms from the spawn:`);
  for (const line of r.stderr.trimEnd().split('\n')) {
    const m = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) (.*)$/.exec(line);
    console.log(m ? `  +${String(Date.parse(m[1]) - spawned).padStart(3)}  ${m[2]}` : `          ${line.trim()}`);
  }
  console.log(`  +${String(Math.round(r.ms)).padStart(3)}  (process closed)`);
  expectOk(tabby, 'DEL', 'trace', await cni(node, tabby, 'DEL', 'trace', pod));
}

if (isMain(import.meta.url)) {
  await main(async () => {
    const { values } = parseArgs({ options: { samples: { type: 'string' } } });
    await trace(values.samples !== undefined ? { samples: positiveInt('--samples', values.samples) } : {});
  });
}
