// ADD+DEL cycles, tabby against ptp+host-local, interleaved in one run.
//   node bench/cycle.mjs [--iterations N] [--warmup N]
// Per iteration and contender: create a pod netns, time ADD, time DEL (wall time of the plugin process,
// `ip netns exec` included, the same for both), delete the pod netns (not timed). The order of the two
// contenders alternates every iteration so that machine noise hits both alike.
import { parseArgs } from 'node:util';
import {
  cni,
  contenders,
  createNetns,
  createNode,
  deleteNetns,
  expectOk,
  fmtMs,
  fmtRatio,
  isMain,
  main,
  median,
  nonLoLinks,
  p90,
  printTable,
  reservations,
} from './lib.mjs';

async function oneCycle(node, c, cid) {
  const [pod] = await createNetns('p');
  try {
    const add = expectOk(c, 'ADD', cid, await cni(node, c, 'ADD', cid, pod));
    const del = expectOk(c, 'DEL', cid, await cni(node, c, 'DEL', cid, pod));
    return { add: add.ms, del: del.ms };
  } finally {
    await deleteNetns(pod);
  }
}

export async function cycle({ iterations = 30, warmup = 3 } = {}) {
  const node = await createNode();
  const cs = contenders();
  const samples = new Map(cs.map((c) => [c.name, { add: [], del: [], cycle: [] }]));
  console.log(
    `== cycle: ADD+DEL, ${iterations} iterations after ${warmup} warm-ups, interleaved, node ${node}, ${cs[0].conf.cniVersion}, ${cs[0].conf.ipam.ranges[0][0].subnet}, mtu ${cs[0].conf.mtu}`,
  );
  for (let i = 0; i < warmup + iterations; i++) {
    const order = i % 2 === 0 ? cs : [...cs].reverse();
    for (const c of order) {
      const t = await oneCycle(node, c, `bench-cycle-${c.name.replace(/\W/g, '')}-${i}`);
      if (i < warmup) continue;
      const s = samples.get(c.name);
      s.add.push(t.add);
      s.del.push(t.del);
      s.cycle.push(t.add + t.del);
    }
    if (i === warmup - 1) process.stdout.write('warm-up done; measuring ');
    else if (i >= warmup) process.stdout.write('.');
  }
  process.stdout.write('\n');

  // Every DEL released its address and removed its host veth.
  for (const c of cs) {
    const left = reservations(c);
    if (left.length) throw new Error(`${c.name} left reservations after DEL: ${left.join(', ')}`);
  }
  const leftLinks = await nonLoLinks(node);
  if (leftLinks.length) throw new Error(`links left in the node after DEL: ${leftLinks.join(', ')}`);

  const [t, r] = cs.map((c) => samples.get(c.name));
  const rows = ['add', 'del', 'cycle'].map((k) => [
    k === 'cycle' ? 'ADD+DEL' : k.toUpperCase(),
    fmtMs(median(t[k])),
    fmtMs(p90(t[k])),
    fmtMs(median(r[k])),
    fmtMs(p90(r[k])),
    fmtRatio(median(t[k]) / median(r[k])),
  ]);
  printTable(['ms', `${cs[0].name} med`, 'p90', `${cs[1].name} med`, 'p90', 'tabby/ref (med)'], rows);
  const summary = {};
  for (const k of ['add', 'del', 'cycle']) summary[k] = { tabby: median(t[k]), ref: median(r[k]) };
  return summary;
}

export const cycleOptions = { iterations: { type: 'string' }, warmup: { type: 'string' } };
export const toCycleOpts = (v) => ({
  ...(v.iterations !== undefined && { iterations: positiveInt('--iterations', v.iterations) }),
  ...(v.warmup !== undefined && { warmup: positiveInt('--warmup', v.warmup, 0) }),
});

export function positiveInt(flag, s, min = 1) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got "${s}"`);
  return n;
}

if (isMain(import.meta.url)) {
  await main(async () => {
    const { values } = parseArgs({ options: cycleOptions });
    await cycle(toCycleOpts(values));
  });
}
