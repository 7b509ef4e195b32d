// Runs the benchmarks (all, or those named) and prints a summary.
//   node bench/run.mjs [cycle] [parallel] [--iterations N] [--warmup N] [--pods N] [--reps N]
import { parseArgs } from 'node:util';
import { cycle, cycleOptions, toCycleOpts } from './cycle.mjs';
import { parallel, parallelOptions, toParallelOpts } from './parallel.mjs';
import { fmtMs, fmtRatio, main, printTable, TABBY_BIN } from './lib.mjs';

const BENCHES = { cycle, parallel };

await main(async () => {
  const { values, positionals } = parseArgs({
    options: { ...cycleOptions, ...parallelOptions },
    allowPositionals: true,
  });
  const unknown = positionals.filter((p) => !(p in BENCHES));
  if (unknown.length)
    throw new Error(`unknown benchmark ${unknown.join(', ')} (known: ${Object.keys(BENCHES).join(', ')})`);
  const names = positionals.length ? positionals : Object.keys(BENCHES);
  console.log(`tabby: ${TABBY_BIN}; reference: /usr/lib/cni/ptp + host-local; node ${process.version}\n`);

  const rows = [];
  const row = (what, m) => rows.push([what, fmtMs(m.tabby), fmtMs(m.ref), fmtRatio(m.tabby / m.ref)]);
  for (const name of names) {
    if (name === 'cycle') {
      const s = await cycle(toCycleOpts(values));
      row('cycle: ADD median', s.add);
      row('cycle: DEL median', s.del);
      row('cycle: ADD+DEL median', s.cycle);
    } else {
      const s = await parallel(toParallelOpts(values));
      row(`parallel: ${s.pods} ADDs makespan median`, s.add);
      row(`parallel: ${s.pods} DELs makespan median`, s.del);
    }
    console.log();
  }
  console.log('== summary (ms; lower is better)');
  printTable(['', 'tabby', 'ptp+host-local', 'tabby/ref'], rows);
});
