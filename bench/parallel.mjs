// Makespan of N parallel ADDs, then of the N parallel DELs, on one node: tabby against ptp+host-local,
// repeated alternately in one run.
//   node bench/parallel.mjs [--pods N] [--reps N]
// The makespan runs from just before the first spawn to the close of the last plugin process.
// Checks: every call exits 0, the N ADDs hand out N distinct addresses, and after the DELs the data
// dir holds no reservation and the node no link but lo.
import { parseArgs } from 'node:util';
import {
  cni,
  contenders,
  createNetns,
  createNode,
  expectOk,
  fmtMs,
  fmtRatio,
  isMain,
  main,
  median,
  nonLoLinks,
  printTable,
  reservations,
} from './lib.mjs';
import { positiveInt } from './cycle.mjs';

/** Runs `command` for every pod at once; returns the makespan in ms and the results. */
async function burst(node, c, command, pods, rep) {
  const cid = (i) => `bench-par-${c.name.replace(/\W/g, '')}-${rep}-${i}`;
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(pods.map((pod, i) => cni(node, c, command, cid(i), pod)));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const failed = results
    .map((r, i) => [r, i])
    .filter(([r]) => r.code !== 0 || (command === 'ADD' && !r.json?.ips?.length));
  if (failed.length) {
    const [r, i] = failed[0];
    expectOk(c, command, cid(i), r); // throws with the first failure's output
  }
  return { ms, results };
}

export async function parallel({ pods: count = 100, reps = 3 } = {}) {
  const node = await createNode();
  const pods = await createNetns('p', count);
  const cs = contenders();
  const span = new Map(cs.map((c) => [c.name, { add: [], del: [] }]));
  console.log(`== parallel: ${count} ADDs at once, then their ${count} DELs, ${reps} reps alternating, node ${node}`);
  for (let rep = 0; rep < reps; rep++) {
    for (const c of rep % 2 === 0 ? cs : [...cs].reverse()) {
      const add = await burst(node, c, 'ADD', pods, rep);
      const addrs = new Set(add.results.map((r) => r.json.ips[0].address));
      if (addrs.size !== count) throw new Error(`${c.name}: ${count} ADDs gave ${addrs.size} distinct addresses`);
      const held = reservations(c).length;
      if (held !== count) throw new Error(`${c.name}: ${held} reservations on disk after ${count} ADDs`);
      const del = await burst(node, c, 'DEL', pods, rep);
      const left = reservations(c);
      if (left.length)
        throw new Error(
          `${c.name}: ${left.length} reservations left after the DELs (${left.slice(0, 5).join(', ')}...)`,
        );
      const links = await nonLoLinks(node);
      if (links.length) throw new Error(`${c.name}: ${links.length} links left in the node after the DELs`);
      span.get(c.name).add.push(add.ms);
      span.get(c.name).del.push(del.ms);
      console.log(
        `rep ${rep + 1} ${c.name.padEnd(14)}  ADD ${fmtMs(add.ms).padStart(7)} ms  DEL ${fmtMs(del.ms).padStart(7)} ms  (${addrs.size} distinct addresses, 0 left after DEL)`,
      );
    }
  }

  const [t, r] = cs.map((c) => span.get(c.name));
  const rows = ['add', 'del'].map((k) => [
    `${count} parallel ${k.toUpperCase()}s`,
    t[k].map(fmtMs).join(' / '),
    fmtMs(median(t[k])),
    r[k].map(fmtMs).join(' / '),
    fmtMs(median(r[k])),
    fmtRatio(median(t[k]) / median(r[k])),
  ]);
  printTable(['makespan ms', `${cs[0].name} runs`, 'med', `${cs[1].name} runs`, 'med', 'tabby/ref (med)'], rows);
  return {
    add: { tabby: median(t.add), ref: median(r.add) },
    del: { tabby: median(t.del), ref: median(r.del) },
    pods: count,
  };
}

export const parallelOptions = { pods: { type: 'string' }, reps: { type: 'string' } };
export const toParallelOpts = (v) => ({
  ...(v.pods !== undefined && { pods: positiveInt('--pods', v.pods) }),
  ...(v.reps !== undefined && { reps: positiveInt('--reps', v.reps) }),
});

if (isMain(import.meta.url)) {
  await main(async () => {
    const { values } = parseArgs({ options: parallelOptions });
    await parallel(toParallelOpts(values));
  });
}
