// Property-based, process level (issue 12 §3): the built tabby, run as a runtime runs it inside a node
// namespace, with generated configs, CNI environments, CNI_ARGS, runtimeConfig and cluster files.
// Every run must end, within a deadline, with a valid result or one CNI error JSON (a known code, a
// non-zero exit) on stdout and no stack trace on stderr; and leave the node and the pod as they were:
// links, addresses, routes (all tables), permanent neighbours, the nft ruleset and IPAM reservations
// (a successful ADD is deleted again first, so that too must leave nothing behind).
// A bounded number of runs by default (TABBY_FC_RUNS for more, TABBY_FC_SEED for another seed).
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { REF_CNI_DIR, tabbyArgv } from '../helpers/cni';
import { ip, ipJson, nsExec, nsPath, RunResult, useSandbox } from '../helpers/netns';
import {
  addressLike,
  baseClusterDocs,
  baseConfig,
  clusterText,
  cniArgs,
  cniCommand,
  configMutations,
  envValue,
  fcParams,
  KNOWN_CODES,
  mutate,
  Mutation,
  mutations,
  podAnnotations,
  runtimeConfig,
  oddString,
  textDamage,
  toJsonText,
} from '../helpers/hostile';
import { parseClusterText } from '../../conf/calico';

const sb = useSandbox();
const DEADLINE_MS = 30_000;
const CID = 'hostile-c1';
const NODE_ADDR = '192.168.10.11/24';
const KEEPER = 'keeper-c0';

/** Changes that leave a config readable: requested addresses, runtimeConfig, MTU, a second range, routes. */
const plausibleMutations: fc.Arbitrary<Mutation[]> = mutations(
  [
    { path: ['runtimeConfig'], value: runtimeConfig },
    {
      path: ['runtimeConfig', 'ips'],
      value: fc.array(fc.constantFrom('10.244.1.2', '10.244.1.9/24', '10.244.1.1', '10.244.2.9', 'fd00:1::9'), {
        minLength: 1,
        maxLength: 2,
      }),
    },
    { path: ['runtimeConfig', 'io.kubernetes.cri.pod-annotations'], value: podAnnotations },
    { path: ['args', 'cni', 'ips'], value: fc.array(addressLike, { maxLength: 2 }) },
    { path: ['mtu'], value: fc.integer({ min: 0, max: 70_000 }) },
    {
      path: ['ipam', 'ranges', 1],
      value: fc.constantFrom([{ subnet: 'fd00:1::/120' }], [{ subnet: '10.244.1.128/25' }]),
    },
    {
      path: ['ipam', 'ranges', 0, 0, 'rangeStart'],
      value: fc.constantFrom('10.244.1.2', '10.244.1.254', '10.244.1.3'),
    },
    { path: ['ipam', 'ranges', 0, 0, 'rangeEnd'], value: fc.constantFrom('10.244.1.2', '10.244.1.3') },
    {
      path: ['ipam', 'routes', 1],
      value: fc.record({ dst: fc.constantFrom('192.0.2.0/24', 'fd00:2::/64', '10.244.1.0/24', '0.0.0.0/0') }),
    },
    { path: ['dns'], value: fc.record({ nameservers: fc.array(fc.ipV4(), { maxLength: 2 }) }) },
  ],
  2,
);

interface Run extends RunResult {
  json: any;
}

/** Runs tabby in `node` with exactly these variables; a run past the deadline is killed (and fails). */
async function tabby(
  node: string,
  dir: string,
  env: Record<string, string | undefined>,
  stdin: string,
  args: string[] = [],
): Promise<Run> {
  const full: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  // the kernel cannot pass a NUL in the environment: a runtime's value stops there
  for (const [k, v] of Object.entries(env)) if (v !== undefined) full[k] = v.split('\u0000')[0];
  const argv = tabbyArgv();
  const r = await nsExec(node, argv[0], [...argv.slice(1), ...args], {
    env: full,
    input: stdin,
    timeoutMs: DEADLINE_MS,
    cwd: dir,
  });
  let json: any;
  try {
    json = r.stdout.trim() === '' ? undefined : JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

const shownRun = (r: Run, what: string): string =>
  `${what}\nexit ${r.code}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`;
const STACK = /^\s+at .+:\d+:\d+\)?$/m;

/** The protocol's promise, whatever the input: one result or one error on stdout, no crash, no hang. */
function expectCniOutcome(r: Run, command: string | undefined, what: string): void {
  const show = shownRun(r, what);
  expect(r.stderr, `killed at the deadline (a hang)\n${show}`).not.toMatch(/\[killed by SIG/);
  expect(r.stderr, `a stack trace on stderr\n${show}`).not.toMatch(STACK);
  if (r.code === 0) {
    if (command === 'ADD') {
      expect(r.json, show).toBeTypeOf('object');
      expect(typeof r.json.cniVersion, show).toBe('string');
      expect(
        r.json.ips?.length > 0 || r.json.ip4 !== undefined || r.json.ip6 !== undefined,
        `no address\n${show}`,
      ).toBe(true);
    } else if (command === 'VERSION') {
      expect(r.json?.supportedVersions, show).toBeInstanceOf(Array);
    } else {
      expect(r.stdout, show).toBe('');
    }
    return;
  }
  expect(r.json, `stdout is not one JSON value\n${show}`).toBeTypeOf('object');
  expect(
    Object.keys(r.json).every((k) => ['cniVersion', 'code', 'msg', 'details'].includes(k)),
    show,
  ).toBe(true);
  expect(typeof r.json.cniVersion, show).toBe('string');
  expect(KNOWN_CODES, show).toContain(r.json.code);
  expect(typeof r.json.msg === 'string' && r.json.msg.length > 0, show).toBe(true);
}

// What the kernel changes by itself as time passes (IPv6 DAD, address lifetimes, route expiry), and the
// index of an overlay device deleted and made again (another cluster file, then the base one).
const VOLATILE = new Set([
  'tentative',
  'preferred_life_time',
  'valid_life_time',
  'expires',
  'operstate',
  'linkmode',
  'ifindex',
  'link_index',
]);
/** `v` without the VOLATILE keys, at any depth. */
function settled(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(settled);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([k]) => !VOLATILE.has(k))
      .map(([k, x]) => [k, settled(x)]),
  );
}

/** What an ADD could leave behind in a namespace: links, addresses, routes, neighbours, NAT. */
async function kernelState(ns: string): Promise<Record<string, unknown>> {
  const [links, addrs, routes4, routes6, neigh, nft] = await Promise.all([
    ipJson(ns, ['-d', 'link', 'show']),
    ipJson(ns, ['address', 'show']),
    ipJson(ns, ['-4', 'route', 'show', 'table', 'all']),
    ipJson(ns, ['-6', 'route', 'show', 'table', 'all']),
    ipJson(ns, ['neigh', 'show', 'nud', 'permanent']),
    nsExec(ns, '/usr/sbin/nft', ['list', 'ruleset']),
  ]);
  return settled({ links, addrs, routes4, routes6, neigh, nft: nft.stdout }) as Record<string, unknown>;
}

/** Every IPAM reservation under `dir` (files named as an IP address), with its content. */
function reservations(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/^\d+\.\d+\.\d+\.\d+$/.test(e.name) || /^[0-9a-f:]+:[0-9a-f:]*$/i.test(e.name))
        out[path.relative(dir, p)] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

interface World {
  node: string;
  pod: string;
  dir: string;
}

async function state(w: World) {
  const [node, pod] = await Promise.all([kernelState(w.node), kernelState(w.pod)]);
  return { node, pod, ipam: reservations(w.dir) };
}

/** The state once the kernel has settled (four reads alike, or 5 s): what every run is compared with. */
async function baseline(w: World) {
  let last = await state(w);
  let alike = 0;
  for (const end = Date.now() + 5_000; Date.now() < end && alike < 3;) {
    await new Promise((r) => setTimeout(r, 200));
    const now = await state(w);
    alike = JSON.stringify(now) === JSON.stringify(last) ? alike + 1 : 0;
    last = now;
  }
  return last;
}

/** A node namespace with an underlay interface (uplink0, 192.168.10.11/24, a default route), and a pod. */
async function world(): Promise<World> {
  const node = await sb.nodeNetns();
  // no IPv6 duplicate address detection: a link-local address (and its route) is there at once, not later
  for (const k of ['all', 'default'])
    await nsExec(node, '/usr/sbin/sysctl', ['-qw', `net.ipv6.conf.${k}.accept_dad=0`]);
  // forwarding on, as the first pod turns it on (IPv6 forwarding adds the subnet-router anycast routes)
  await nsExec(node, '/usr/sbin/sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  // no dummy driver on every kernel: a veth pair whose other end stays in the node
  await ip(node, ['link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink0p']);
  await ip(node, ['address', 'add', NODE_ADDR, 'dev', 'uplink0']);
  await ip(node, ['link', 'set', 'uplink0p', 'up']);
  await ip(node, ['link', 'set', 'uplink0', 'up']);
  await ip(node, ['route', 'add', 'default', 'via', '192.168.10.1', 'dev', 'uplink0']);
  const pod = await sb.netns();
  for (const k of ['all', 'default']) await nsExec(pod, '/usr/sbin/sysctl', ['-qw', `net.ipv6.conf.${k}.accept_dad=0`]);
  return { node, pod, dir: sb.tmpdir() };
}

/**
 * The CNI environment: mostly what a runtime sends for this pod, sometimes not. Without `gc`, no GC:
 * a GC that names no valid attachment rightly collects every other pod (the plain test keeps one).
 */
function cniEnv(w: World, opts: { gc: boolean }) {
  return fc.record({
    // without CNI_COMMAND tabby is the command line for people, not the plugin
    CNI_COMMAND: fc.oneof(
      { weight: 8, arbitrary: fc.constant('ADD') },
      { weight: 2, arbitrary: cniCommand.map((c) => (c === 'GC' && !opts.gc ? 'STATUS' : (c ?? ''))) },
    ),
    CNI_CONTAINERID: fc.oneof(
      { weight: 8, arbitrary: fc.constant(CID) },
      { weight: 1, arbitrary: fc.constant(KEEPER) },
      { weight: 1, arbitrary: envValue(fc.constantFrom('-x', 'a'.repeat(300), 'é')) },
    ),
    CNI_NETNS: fc.oneof(
      { weight: 8, arbitrary: fc.constant(nsPath(w.pod)) },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          '/proc/self/ns/net',
          '/nonexistent/netns',
          w.dir,
          '/etc/hostname',
          '/dev/null',
          '',
          undefined,
        ),
      },
    ),
    CNI_IFNAME: fc.oneof(
      { weight: 8, arbitrary: fc.constant('eth0') },
      { weight: 2, arbitrary: envValue(fc.constantFrom('lo', 'uplink0', 'net1', 'x'.repeat(15), 'éé', 'eth0 ')) },
    ),
    CNI_PATH: fc.oneof(
      { weight: 8, arbitrary: fc.constant(REF_CNI_DIR) },
      { weight: 1, arbitrary: envValue(oddString) },
    ),
    CNI_ARGS: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: cniArgs }),
  });
}

/** After a successful ADD: DEL it with what a runtime would send, which must succeed. */
async function undoAdd(w: World, stdin: string, env: Record<string, string | undefined>): Promise<void> {
  const r = await tabby(w.node, w.dir, { ...env, CNI_COMMAND: 'DEL' }, stdin);
  expect(r.code, shownRun(r, 'DEL after a successful ADD')).toBe(0);
}

describe('tabby under generated input, in a node namespace', () => {
  it(
    'a plain config (ranges): a result or a CNI error, and nothing left behind',
    async () => {
      const w = await world();
      // Another pod holds an address and a veth already: a hostile ADD must leave them alone too.
      const keeperPod = await sb.netns();
      const keeperEnv = {
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: KEEPER,
        CNI_NETNS: nsPath(keeperPod),
        CNI_IFNAME: 'eth0',
        CNI_PATH: REF_CNI_DIR,
      };
      const kept = await tabby(w.node, w.dir, keeperEnv, JSON.stringify(baseConfig(w.dir)));
      expect(kept.code, shownRun(kept, "the keeper's ADD")).toBe(0);
      const before = await baseline(w);
      const stdin = fc.oneof(
        {
          weight: 6,
          arbitrary: fc
            .tuple(configMutations(w.dir), textDamage)
            .map(([ms, damage]) => damage(toJsonText(mutate(baseConfig(w.dir), ms)))),
        },
        // a config that parses, so that the run gets as far as IPAM and the kernel
        { weight: 6, arbitrary: plausibleMutations.map((ms) => toJsonText(mutate(baseConfig(w.dir), ms))) },
        { weight: 1, arbitrary: oddString },
      );
      let runs = 0;
      let succeeded = 0;
      await fc.assert(
        fc.asyncProperty(stdin, cniEnv(w, { gc: false }), async (input, env) => {
          runs++;
          const r = await tabby(w.node, w.dir, env, input);
          expectCniOutcome(r, env.CNI_COMMAND, `stdin: ${input.slice(0, 1500)}\nenv: ${JSON.stringify(env)}`);
          if (r.code === 0 && env.CNI_COMMAND === 'ADD') {
            succeeded++;
            await undoAdd(w, input, env);
          }
          expect(
            await state(w),
            `state changed after\nstdin: ${input.slice(0, 1500)}\nenv: ${JSON.stringify(env)}\n${shownRun(r, '')}`,
          ).toEqual(before);
        }),
        fcParams(16),
      );
      console.log(`hostile plain config: ${runs} runs, ${succeeded} successful ADDs (seed ${fcParams(0).seed})`);
    },
    runBudget(16),
  );

  it(
    'a cluster file config: a result or a CNI error, and a failed ADD leaves nothing behind',
    async () => {
      const w = await world();
      const file = path.join(w.dir, 'cluster.yaml');
      const baseText = baseClusterDocs()
        .map((d) => stringify(d))
        .join('---\n');
      fs.writeFileSync(file, baseText);
      const conf = (): Record<string, any> => {
        const c = baseConfig(w.dir);
        c.ipam = { type: 'tabby-ipam', dataDir: `${w.dir}/data` };
        return { ...c, cluster: file, nodeName: 'node-a', stateDir: `${w.dir}/state`, natBackend: 'nftables' };
      };
      const conflist = path.join(w.dir, 'conflist.json');
      fs.writeFileSync(conflist, JSON.stringify({ cniVersion: '1.1.0', name: 'tabbynet', plugins: [conf()] }));
      const baseEnv = {
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: CID,
        CNI_NETNS: nsPath(w.pod),
        CNI_IFNAME: 'eth0',
        CNI_PATH: REF_CNI_DIR,
      };
      // Bring the node's overlay up to the base file once, with a pod added and deleted: that is the baseline.
      const first = await tabby(w.node, w.dir, baseEnv, JSON.stringify(conf()));
      expectCniOutcome(first, 'ADD', 'the base config');
      expect(first.code, shownRun(first, 'the base config')).toBe(0);
      await undoAdd(w, JSON.stringify(conf()), baseEnv);
      const before = await baseline(w);
      expect(before.node.links).toContainEqual(expect.objectContaining({ ifname: 'vxlan.tabby' }));

      // The node's identity (which file, which node, NAT backend) is not what this property is about:
      // a config naming another node rightly re-plans the overlay before it fails.
      const identity = ['cluster', 'stateDir', 'nodeName', 'ipAutodetectionMethod', 'natBackend', 'datastore'];
      const confMutations = configMutations(w.dir).map((ms) =>
        ms.filter((m: Mutation) => !identity.includes(String(m.path[0]))),
      );
      const input = fc.record({
        conf: confMutations,
        cluster: fc.option(clusterText(stringify), { freq: 2 }),
        env: cniEnv(w, { gc: true }),
      });
      let runs = 0;
      let validFiles = 0;
      await fc.assert(
        fc.asyncProperty(input, async ({ conf: ms, cluster, env }) => {
          runs++;
          const stdin = toJsonText(mutate(conf(), ms));
          const what = `stdin: ${stdin.slice(0, 1500)}\nenv: ${JSON.stringify(env)}\ncluster file: ${(cluster ?? '(base)').slice(0, 1500)}`;
          let validFile = true;
          if (cluster !== null) {
            fs.writeFileSync(file, cluster);
            validFile = await parseClusterText(cluster).then(
              () => true,
              () => false,
            );
          }
          try {
            const r = await tabby(w.node, w.dir, env, stdin);
            expectCniOutcome(r, env.CNI_COMMAND, what);
            if (r.code === 0 && env.CNI_COMMAND === 'ADD') await undoAdd(w, stdin, env);
            if (cluster === null || !validFile) {
              expect(await state(w), `state changed after\n${what}\n${shownRun(r, '')}`).toEqual(before);
              return;
            }
            // Another valid cluster rightly changes the overlay: the pod's traces must still be gone.
            validFiles++;
            const after = await state(w);
            expect(after.pod, `the pod changed after\n${what}\n${shownRun(r, '')}`).toEqual(before.pod);
            expect(after.ipam, `a reservation left after\n${what}\n${shownRun(r, '')}`).toEqual(before.ipam);
            expect(JSON.stringify(after.node.links), `a pod veth left after\n${what}`).not.toMatch(/"tab[0-9a-f]{12}"/);
          } finally {
            if (cluster !== null) {
              fs.writeFileSync(file, baseText);
              if (validFile) {
                const back = await tabby(w.node, w.dir, {}, '', ['reconcile', '--config', conflist]);
                expect(back.code, shownRun(back, 'reconcile back to the base file')).toBe(0);
                expect(await state(w), `reconcile did not restore the base overlay after\n${what}`).toEqual(before);
              }
            }
          }
        }),
        fcParams(10),
      );
      console.log(
        `hostile cluster config: ${runs} runs, ${validFiles} with another valid cluster file (seed ${fcParams(0).seed})`,
      );
    },
    runBudget(10),
  );

  it(
    '`tabby apply` of a generated manifest: refused with one line naming the file, nothing applied',
    async () => {
      const w = await world();
      const conflist = path.join(w.dir, 'conflist.json');
      // etcd on the node's own loopback, where nothing listens: a manifest that passes validation fails there.
      const entry = {
        ...baseConfig(w.dir),
        nodeName: 'node-a',
        stateDir: `${w.dir}/state`,
        datastore: { type: 'etcd', endpoints: ['http://127.0.0.1:2379'] },
      };
      fs.writeFileSync(conflist, JSON.stringify({ cniVersion: '1.1.0', name: 'tabbynet', plugins: [entry] }));
      const manifest = path.join(w.dir, 'manifest.yaml');
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(clusterText(stringify), async (text) => {
          runs++;
          fs.writeFileSync(manifest, text);
          const r = await tabby(w.node, w.dir, {}, '', ['apply', '--config', conflist, '-f', manifest]);
          const show = shownRun(r, `manifest: ${text.slice(0, 1500)}`);
          expect(r.stderr, `killed at the deadline (a hang)\n${show}`).not.toMatch(/\[killed by SIG/);
          expect(r.stderr, `a stack trace\n${show}`).not.toMatch(STACK);
          expect(r.code, show).toBe(1);
          expect(r.stdout, show).toBe('');
          const lines = r.stderr.split('\n').filter((l) => l.startsWith('tabby apply: '));
          expect(lines.length, show).toBe(1);
          expect(lines[0].startsWith(`tabby apply: ${manifest}: `) || /etcd/.test(lines[0]), show).toBe(true);
        }),
        fcParams(8),
      );
      console.log(`hostile apply: ${runs} runs (seed ${fcParams(0).seed})`);
    },
    runBudget(8),
  );
});

/** A test's timeout: the deadline of each of its runs, for as many runs as it will make, and some. */
function runBudget(runs: number): number {
  return (fcParams(runs).numRuns + 5) * DEADLINE_MS;
}

// Failures fast-check found, kept as plain cases (the shrunk counterexamples).
describe('hostile input regressions', () => {
  /** A node with one pod wired (its veth and its reservation), and what it looks like. */
  async function nodeWithPod() {
    const w = await world();
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: KEEPER,
      CNI_NETNS: nsPath(w.pod),
      CNI_IFNAME: 'eth0',
      CNI_PATH: REF_CNI_DIR,
    };
    const r = await tabby(w.node, w.dir, env, JSON.stringify(baseConfig(w.dir)));
    expect(r.code, shownRun(r, 'ADD')).toBe(0);
    return { w, before: await baseline(w) };
  }
  const gcEnv = { CNI_COMMAND: 'GC', CNI_CONTAINERID: '', CNI_NETNS: '', CNI_IFNAME: '', CNI_PATH: REF_CNI_DIR };

  it('GC with an ipam section that does not parse is a config error (code 7) and removes neither veth nor reservation', async () => {
    const { w, before } = await nodeWithPod();
    const conf = baseConfig(w.dir);
    conf.ipam.ranges = [[false]];
    const r = await tabby(w.node, w.dir, gcEnv, JSON.stringify(conf));
    expectCniOutcome(r, 'GC', 'GC');
    expect(r.json?.code, shownRun(r, 'GC')).toBe(7);
    expect(r.json?.msg).toMatch(/ipam\.ranges\[0\]\[0\]: must be an object/);
    expect(await state(w)).toEqual(before);
  });

  it('GC with an IPAM plugin name that is a path is a config error (code 7) and removes no veth', async () => {
    const { w, before } = await nodeWithPod();
    const conf = baseConfig(w.dir);
    conf.ipam.type = '../x';
    const r = await tabby(w.node, w.dir, gcEnv, JSON.stringify(conf));
    expect(r.json?.code, shownRun(r, 'GC')).toBe(7);
    expect(await state(w)).toEqual(before);
  });
});
