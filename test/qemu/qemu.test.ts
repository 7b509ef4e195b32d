import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIMEOUT_MS, GuestRun, runScenarios, scenarioProblems } from './harness';

/**
 * One boot of the Debian kernel under qemu runs every scenario below (batching: a boot costs tens of
 * seconds under software emulation). TABBY_QEMU_SCENARIOS="a b" runs only those; TABBY_QEMU_VERBOSE=1
 * streams the guest's console.
 *
 * The multi-node ones run test/helpers/scenarios.ts on three simulated nodes in the guest (whose kernel has
 * ipip): vxlan-control (VXLAN Always, the control run), ipip-pools (IPIP Always and CrossSubnet with
 * natOutgoing, node removal) and encap-switch (VXLAN -> IPIP -> VXLAN with `tabby reconcile`, measuring the
 * disruption, printed below).
 */
const SCENARIOS = process.env.TABBY_QEMU_SCENARIOS?.split(/[\s,]+/).filter(Boolean) ?? [
  'smoke',
  'veth-ping',
  'vxlan-control',
  'ipip-pools',
  'encap-switch',
];
/** Fails on purpose, in the same boot: proves that failures come back as failures. */
const SELFTEST = 'selftest-failing';
const TIMEOUT_MS = Number(process.env.TABBY_QEMU_TIMEOUT_MS) || DEFAULT_TIMEOUT_MS;

let run: GuestRun;

const secs = (ms?: number): string => (ms === undefined ? '?' : `${(ms / 1000).toFixed(1)} s`);

beforeAll(async () => {
  run = await runScenarios([...SCENARIOS, SELFTEST], {
    timeoutMs: TIMEOUT_MS,
    failOnPurpose: [SELFTEST],
    onConsoleLine: process.env.TABBY_QEMU_VERBOSE ? (l) => process.stderr.write(`guest| ${l}\n`) : undefined,
  });
  const lines = [
    `qemu: kernel ${run.kernel ?? '?'}, boot ${secs(run.bootMs)} (guest uptime ${secs(run.guestUptimeMs)}), whole run ${secs(run.wallMs)}`,
    ...run.scenarios.map(
      (s) =>
        `  ${s.name}${s.name === SELFTEST ? ' (fails on purpose)' : ''}: ${secs(s.ms)}, exit ${s.rc ?? '-'}, ${s.assertions.filter((a) => a.ok).length}/${s.assertions.length} ok` +
        s.assertions.map((a) => `\n    ${a.ok ? 'ok  ' : 'FAIL'} ${a.name} (${secs(a.ms)})`).join(''),
    ),
  ];
  for (const a of run.scenarios.flatMap((s) => s.assertions).filter((x) => /: disruption$/.test(x.name)))
    lines.push(`  ${a.name}: ${a.detail}`);
  if (run.keptDir) lines.push(`  guest logs kept in ${run.keptDir}/job`);
  console.log(lines.join('\n'));
}, TIMEOUT_MS + 60_000);

describe('the qemu guest', () => {
  it(`boots, runs the scenarios and powers off within ${TIMEOUT_MS / 1000} s`, () => {
    expect(run.failure, run.failure).toBeUndefined();
    expect(run.qemuExit).toEqual({ code: 0, signal: null });
  });
});

describe.each(SCENARIOS)('scenario %s', (name) => {
  it('finishes, reports results, and every assertion passes', () => {
    const s = run.scenarios.find((x) => x.name === name);
    expect(s, `no outcome for ${name}`).toBeDefined();
    const problems = scenarioProblems(s!);
    expect(problems, `${problems.join('\n')}\n--- ${name} log ---\n${s!.log}`).toEqual([]);
  });
});

describe('the harness', () => {
  it('brings back a failing assertion, a failing command and a non-zero exit as failures, details intact', () => {
    const s = run.scenarios.find((x) => x.name === SELFTEST);
    expect(s?.assertions.map((a) => [a.name, a.ok])).toEqual([
      ['a passing assertion', true],
      ['a failing assertion', false],
      ['a failing command', false],
      ['inner: written directly', true],
    ]);
    expect(s!.assertions[3].detail).toBe('{"n":1}');
    expect(s!.assertions[1].detail).toBe('quote " backslash \\ tab \t newline\nsecond line');
    expect(s!.assertions[2].detail).toMatch(/exit 7\n(to-stdout\nto-stderr|to-stderr\nto-stdout)$/);
    expect(scenarioProblems(s!)).toEqual([
      `${SELFTEST} exited 3`,
      `a failing assertion: ${s!.assertions[1].detail}`,
      `a failing command: ${s!.assertions[2].detail}`,
    ]);
    expect(s!.log).toContain('== a failing assertion: FAIL');
  });

  it('kills a guest at its timeout and reports it as failed', async () => {
    const r = await runScenarios(['smoke'], { timeoutMs: 1500, keep: false });
    expect(r.timedOut).toBe(true);
    expect(r.failure).toMatch(/killed at the timeout of 1.5 s/);
    expect(() => process.kill(r.qemuPid!, 0)).toThrow(/ESRCH/);
    expect(r.scenarios[0].rc).toBeUndefined();
    expect(scenarioProblems(r.scenarios[0])).toContain('smoke did not finish');
  });

  it('fails with the reason when qemu is missing', async () => {
    const r = await runScenarios(['smoke'], { qemu: '/nonexistent/qemu-system-x86_64', keep: false });
    expect(r.failure).toMatch(/^qemu cannot start: .*ENOENT.*qemu-system-x86/);
  });

  it("fails with qemu's own message when qemu refuses to start", async () => {
    const r = await runScenarios(['smoke'], { extraQemuArgs: ['-no-such-option'], keep: false });
    expect(r.failure).toMatch(/^qemu cannot start: .*exit 1: .*no-such-option/s);
  });

  it('refuses a scenario that does not exist before booting', async () => {
    const r = await runScenarios(['no-such-scenario']);
    expect(r.failure).toMatch(/no scenario no-such-scenario/);
    expect(r.qemuPid).toBeUndefined();
  });
});
