// Runs tabby's test suites one after another (unit first: it fails fast) and prints one closing line
// "tests: N passed, N failed" over all of them. Usage: node test/run-suites.mjs [suite...]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SUITES = {
  unit: 'test/vitest.unit.config.ts',
  integration: 'test/vitest.integration.config.ts',
  etcd: 'test/vitest.etcd.config.ts',
  qemu: 'test/vitest.qemu.config.ts',
  runtimes: 'test/vitest.runtimes.config.ts',
};
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(SUITES);
const dir = mkdtempSync(join(tmpdir(), 'tabby-suites-'));
let passed = 0;
let failed = 0;
let skipped = 0;
let ok = true;
for (const name of wanted) {
  const config = SUITES[name];
  if (!config) {
    console.error(`unknown suite ${name}; known: ${Object.keys(SUITES).join(', ')}`);
    process.exit(2);
  }
  const out = join(dir, `${name}.json`);
  const started = Date.now();
  const res = spawnSync(
    'npx',
    ['vitest', 'run', '--config', config, '--reporter=default', '--reporter=json', `--outputFile.json=${out}`],
    {
      stdio: 'inherit',
    },
  );
  try {
    const r = JSON.parse(readFileSync(out, 'utf8'));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    skipped += r.numPendingTests + (r.numTodoTests ?? 0);
    if (r.numTotalTests === 0) ok = false;
  } catch {
    ok = false; // no report: the runner itself failed
  }
  console.log(`suite ${name}: exit ${res.status} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (res.status !== 0) ok = false;
}
rmSync(dir, { recursive: true, force: true });
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(ok && failed === 0 ? 0 : 1);
