import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podAddresses, REF_CNI_DIR, TestNode } from '../helpers/cni';
import { ip, links, nsExec, nsPath, routes, RunResult, tabbyVeths, useSandbox } from '../helpers/netns';
import { buildCnitool, cnitoolContainerId } from './cnitool';
import {
  Call,
  makeRecorder,
  PreservedDir,
  recordedCalls,
  requireTools,
  restoreAll,
  shown,
  tmpdir,
  installSeed,
} from './helpers';

// tabby driven by the upstream cnitool (containernetworking/cni v1.2.0, whose libcni speaks spec 1.1.0:
// ADD, CHECK, DEL, GC, STATUS), built from ../shared/tools/cnitool. cnitool runs inside a node namespace
// with its own NETCONFPATH; pods are namespaces of their own. Its result cache is libcni's default,
// /var/lib/cni (no option changes it), which the test puts back as it was. Each node's `tabby` in
// CNI_PATH is a recorder in front of the real one, so the test also sees what tabby answered.

const sb = useSandbox();
let work: string;
let cnitool: string;
let binDir: string;
let preserved: PreservedDir[] = [];

const CACHE_RESULTS = '/var/lib/cni/results';

beforeAll(async () => {
  requireTools({
    '/usr/lib/cni/portmap': 'containernetworking-plugins',
    '/usr/sbin/iptables-save': 'iptables',
    '/usr/bin/socat': 'socat',
  });
  work = tmpdir('tbr-cnitool-');
  cnitool = await buildCnitool();
  binDir = await installSeed(work, '1.1.0');
  preserved = [new PreservedDir('/var/lib/cni')];
});

afterAll(() => {
  try {
    restoreAll(preserved);
  } finally {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  }
});

interface CnitoolOpts {
  capArgs?: object;
  cniArgs?: string;
}

/** A node namespace with a conflist directory for cnitool and a recording `tabby` in front of CNI_PATH. */
class CnitoolNode {
  readonly confDir: string;
  private readonly recDir: string;
  private readonly recBin: string;

  private constructor(readonly node: TestNode) {
    this.confDir = path.join(node.dir, 'net.d');
    this.recDir = path.join(node.dir, 'rec');
    this.recBin = path.join(this.recDir, 'bin');
    fs.mkdirSync(this.confDir);
    fs.mkdirSync(this.recBin, { recursive: true });
    fs.symlinkSync(makeRecorder(this.recDir), path.join(this.recBin, 'tabby'));
  }

  /**
   * One network name per test: libcni's cache is shared by every test (and runtime) on the machine, and
   * cnitool gc DELs every cached attachment of the network it is given.
   */
  static async create(network: string): Promise<CnitoolNode> {
    return new CnitoolNode(await TestNode.create(sb, { network }));
  }

  get name(): string {
    return this.node.name;
  }

  get network(): string {
    return this.node.network;
  }

  /** tabby's plugin entry (the node's config contract without name and version), with overrides. */
  tabby(over: Record<string, unknown> = {}): Record<string, unknown> {
    const { name: _n, cniVersion: _v, ...entry } = this.node.conf(over as never);
    return entry;
  }

  /** Writes the node network's conflist (replacing any earlier one). */
  writeList(plugins: object[], cniVersion = '1.1.0'): void {
    fs.writeFileSync(
      path.join(this.confDir, `${this.network}.conflist`),
      JSON.stringify({ cniVersion, name: this.network, plugins }),
    );
  }

  /** `cnitool <cmd> <network> <netns of pod>` inside the node; gc and status ignore the namespace. */
  run(cmd: string, pod: string, o: CnitoolOpts = {}): Promise<RunResult> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      NETCONFPATH: this.confDir,
      CNI_PATH: [this.recBin, binDir, REF_CNI_DIR].join(':'),
    };
    if (o.capArgs) env.CAP_ARGS = JSON.stringify(o.capArgs);
    if (o.cniArgs) env.CNI_ARGS = o.cniArgs;
    return nsExec(this.name, cnitool, [cmd, this.network, nsPath(pod)], { env });
  }

  /** Runs a verb that must succeed; ADD's result (cnitool prints it) comes back parsed. */
  async ok(cmd: string, pod: string, o: CnitoolOpts = {}): Promise<any> {
    const r = await this.run(cmd, pod, o);
    expect(r.code, `cnitool ${cmd}: ${shown(r)}`).toBe(0);
    if (cmd !== 'add') {
      expect(r.stdout, `cnitool ${cmd}`).toBe('');
      return undefined;
    }
    return JSON.parse(r.stdout);
  }

  /** tabby's calls so far, oldest first; `command` keeps only those. */
  calls(command?: string): Call[] {
    const all = recordedCalls(this.recDir);
    return command ? all.filter((c) => c.env.CNI_COMMAND === command) : all;
  }

  cacheFile(pod: string): string {
    return path.join(CACHE_RESULTS, `${this.network}-${cnitoolContainerId(nsPath(pod))}-eth0`);
  }

  /** The pod's, the node's and libcni's state of the pod's attachment is all gone. */
  async expectNothingLeft(...pods: string[]): Promise<void> {
    for (const pod of pods) {
      expect((await links(pod)).map((l) => l.ifname)).toEqual(['lo']);
      expect(fs.existsSync(this.cacheFile(pod))).toBe(false);
    }
    expect(await tabbyVeths(this.name)).toEqual([]);
    expect((await routes(this.name)).filter((r) => r.dev?.startsWith('tab'))).toEqual([]);
    expect(this.node.reservations()).toEqual([]);
  }
}

const hostVethOf = (result: any): string => result.interfaces.find((i: any) => !i.sandbox).name;
const podIp = (result: any): string => result.ips[0].address.split('/')[0];

/** tabby's answer to a failed call: a non-zero exit and one CNI error object on stdout. */
function expectCniErrorCall(c: Call, code: number, msg: RegExp): void {
  expect(c.code, c.stdout).not.toBe(0);
  const err = JSON.parse(c.stdout);
  expect(err, c.stdout).toMatchObject({ cniVersion: expect.any(String), code });
  expect(err.msg).toMatch(msg);
}

describe('tabby under cnitool, a 1.1.0 list', () => {
  it('ADD answers in 1.1.0 and is cached, CHECK passes and then catches a broken pod, STATUS is ok, DEL removes everything', async () => {
    const n = await CnitoolNode.create('tbr-life');
    n.writeList([n.tabby()]);
    const pod = await sb.netns();
    const cid = cnitoolContainerId(nsPath(pod));

    await n.ok('status', pod);
    const add = await n.ok('add', pod);
    expect(add.cniVersion).toBe('1.1.0');
    const eth0 = add.interfaces.findIndex((i: any) => i.name === 'eth0' && i.sandbox === nsPath(pod));
    expect(eth0).toBeGreaterThanOrEqual(0);
    expect(add.ips[0].interface).toBe(eth0);
    expect(await podAddresses(pod)).toEqual([add.ips[0].address]);
    expect(await tabbyVeths(n.name)).toEqual([hostVethOf(add)]);
    expect(n.node.reservations().map((r) => r.ip)).toEqual([podIp(add)]);
    expect(n.node.reservations()[0].content).toContain(cid);

    // What cnitool sent: its own container ID, the namespace path, eth0, the list's name and version.
    const [addCall] = n.calls('ADD');
    expect(addCall.env).toMatchObject({ CNI_CONTAINERID: cid, CNI_NETNS: nsPath(pod), CNI_IFNAME: 'eth0' });
    expect(JSON.parse(addCall.stdin)).toMatchObject({ cniVersion: '1.1.0', name: 'tbr-life', type: 'tabby' });
    // libcni cached the result, which CHECK and DEL hand back as prevResult.
    const cached = JSON.parse(fs.readFileSync(n.cacheFile(pod), 'utf8'));
    expect(cached).toMatchObject({ kind: 'cniCacheV1', containerId: cid, ifName: 'eth0', networkName: 'tbr-life' });
    expect(cached.result).toEqual(add);

    await n.ok('check', pod);
    expect(JSON.parse(n.calls('CHECK')[0].stdin).prevResult).toEqual(add);
    await n.ok('status', pod);
    expect(n.calls('STATUS').map((c) => c.env.CNI_CONTAINERID ?? '')).toEqual(['', '']);

    // A broken attachment: CHECK fails, cnitool exits 1 with tabby's message, tabby answered error JSON.
    await ip(pod, ['address', 'del', add.ips[0].address, 'dev', 'eth0']);
    const broken = await n.run('check', pod);
    expect(broken.code, shown(broken)).toBe(1);
    expect(broken.stderr).toMatch(/address .* is missing/);
    expectCniErrorCall(n.calls('CHECK')[1], 106, /address .* is missing/);

    await n.ok('del', pod);
    await n.expectNothingLeft(pod);
    // A second DEL (no cache any more, so no prevResult) succeeds too.
    await n.ok('del', pod);
  });

  it("STATUS: cnitool exits 1 with tabby's code-50 message once a /30 range is used up, and 0 after DEL", async () => {
    const n = await CnitoolNode.create('tbr-status');
    n.writeList([n.tabby({ ipam: { ranges: [[{ subnet: '10.244.9.0/30' }]] } })]);
    const pod = await sb.netns();
    await n.ok('status', pod);
    await n.ok('add', pod);
    const full = await n.run('status', pod);
    expect(full.code, shown(full)).toBe(1);
    expect(full.stderr).toMatch(/no free address in range set 10\.244\.9\.1-10\.244\.9\.2 of network tbr-status/);
    expectCniErrorCall(n.calls('STATUS')[1], 50, /no free address/);
    await n.ok('del', pod);
    await n.ok('status', pod);
    await n.expectNothingLeft(pod);
  });

  it('CNI_ARGS IP=: the pod gets exactly that address; a taken or outside address is refused and changes nothing', async () => {
    const n = await CnitoolNode.create('tbr-ip');
    n.writeList([n.tabby()]);
    const [pod, pod2] = [await sb.netns(), await sb.netns()];
    const add = await n.ok('add', pod, { cniArgs: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;IP=10.244.1.77' });
    expect(n.calls('ADD')[0].env.CNI_ARGS).toBe('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;IP=10.244.1.77');
    expect(add.ips.map((i: any) => i.address)).toEqual(['10.244.1.77/32']);
    expect(await podAddresses(pod)).toEqual(['10.244.1.77/32']);
    expect(n.node.reservations().map((r) => r.ip)).toEqual(['10.244.1.77']);
    await n.ok('check', pod);

    for (const [address, why] of [
      ['10.244.1.77', /requested IP address 10\.244\.1\.77 is already in use by container/],
      ['10.9.9.9', /requested IP address 10\.9\.9\.9 is outside every configured range/],
    ] as const) {
      const r = await n.run('add', pod2, { cniArgs: `IP=${address}` });
      expect(r.code, shown(r)).toBe(1);
      expect(r.stderr, address).toMatch(why);
      const failed = n.calls('ADD').pop()!;
      expect(failed.code).not.toBe(0);
      expect(JSON.parse(failed.stdout).msg).toMatch(why);
      expect((await links(pod2)).map((l) => l.ifname)).toEqual(['lo']);
      expect(fs.existsSync(n.cacheFile(pod2))).toBe(false);
      expect(n.node.reservations().map((r) => r.ip)).toEqual(['10.244.1.77']);
      expect(await tabbyVeths(n.name)).toEqual([hostVethOf(add)]);
    }

    await n.ok('del', pod);
    await n.expectNothingLeft(pod, pod2);
  });

  it('a bad field in the conflist: tabby answers error JSON naming it (code 7), cnitool exits 1, nothing changes', async () => {
    const n = await CnitoolNode.create('tbr-bad');
    n.writeList([n.tabby({ mtu: 10 })]);
    const pod = await sb.netns();
    const r = await n.run('add', pod);
    expect(r.code, shown(r)).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/mtu/);
    expectCniErrorCall(n.calls('ADD')[0], 7, /mtu/);
    await n.expectNothingLeft(pod);
    expect(fs.existsSync(n.node.ipamDir)).toBe(false);
  });
});

describe('cnitool gc', () => {
  it('without valid attachments (all cnitool can send): a cached attachment goes by DEL, a forgotten one by GC', async () => {
    const n = await CnitoolNode.create('tbr-gc-none');
    n.writeList([n.tabby()]);
    const [a, b] = [await sb.netns(), await sb.netns()];
    const addA = await n.ok('add', a);
    const addB = await n.ok('add', b);
    expect((await tabbyVeths(n.name)).sort()).toEqual([hostVethOf(addA), hostVethOf(addB)].sort());
    // B's runtime lost its record (the cache is libcni's): only tabby's own GC can find B now.
    fs.unlinkSync(n.cacheFile(b));

    await n.ok('gc', a);
    const dels = n.calls('DEL');
    expect(dels.map((c) => c.env.CNI_CONTAINERID)).toEqual([cnitoolContainerId(nsPath(a))]);
    expect(JSON.parse(dels[0].stdin).prevResult).toEqual(addA);
    const [gc] = n.calls('GC');
    expect(gc.code).toBe(0);
    const gcConf = JSON.parse(gc.stdin);
    expect(gcConf).toMatchObject({ cniVersion: '1.1.0', name: 'tbr-gc-none', type: 'tabby' });
    expect(gcConf).not.toHaveProperty(['cni.dev/valid-attachments']);
    expect(gc.env).toMatchObject({ CNI_COMMAND: 'GC' });
    // Both reservations, both host veths and their routes, and the pods' interfaces are gone.
    await n.expectNothingLeft(a, b);
  });

  it('with valid attachments (given in the plugin entry): the listed one is kept whole, the other reclaimed', async () => {
    const n = await CnitoolNode.create('tbr-gc-valid');
    n.writeList([n.tabby()]);
    const [a, b] = [await sb.netns(), await sb.netns()];
    const addA = await n.ok('add', a);
    const addB = await n.ok('add', b);
    // cnitool passes no list, so libcni DELs every attachment it caches before GC. Attachments a runtime
    // keeps are therefore out of this cache, and the list of them reaches tabby through the plugin entry,
    // which libcni passes on unchanged.
    const keptCache = path.join(work, 'a.cache');
    fs.renameSync(n.cacheFile(a), keptCache);
    fs.unlinkSync(n.cacheFile(b));
    const idA = cnitoolContainerId(nsPath(a));
    n.writeList([{ ...n.tabby(), 'cni.dev/valid-attachments': [{ containerID: idA, ifname: 'eth0' }] }]);

    await n.ok('gc', a);
    expect(n.calls('DEL')).toEqual([]);
    expect(JSON.parse(n.calls('GC')[0].stdin)['cni.dev/valid-attachments']).toEqual([
      { containerID: idA, ifname: 'eth0' },
    ]);
    expect(n.node.reservations().map((r) => r.ip)).toEqual([podIp(addA)]);
    expect(await tabbyVeths(n.name)).toEqual([hostVethOf(addA)]);
    expect((await routes(n.name)).map((r) => `${r.dst} ${r.dev}`)).toContain(`${podIp(addA)} ${hostVethOf(addA)}`);
    expect(await podAddresses(a)).toEqual([addA.ips[0].address]);
    expect((await links(b)).map((l) => l.ifname)).toEqual(['lo']);
    expect(n.node.reservations().map((r) => r.ip)).not.toContain(podIp(addB));

    // A is still whole: with its cache back, CHECK passes, and DEL removes it.
    fs.renameSync(keptCache, n.cacheFile(a));
    await n.ok('check', a);
    await n.ok('del', a);
    await n.expectNothingLeft(a, b);
  });
});

describe('CAP_ARGS through the chained reference portmap', () => {
  const NODE_LO = '10.99.0.1';
  const NODE_LINK = '10.98.0.1';
  const CLIENT = '10.98.0.2';

  /** Connects to `addr:port` from `ns` until a line comes back (portmap's rules may trail the ADD). */
  const dial = (ns: string, addr: string, port: number): Promise<RunResult> =>
    nsExec(
      ns,
      '/bin/sh',
      [
        '-c',
        `for i in $(seq 50); do socat -T 2 - TCP:${addr}:${port},connect-timeout=1 </dev/null && exit 0; sleep 0.1; done; exit 1`,
      ],
      { timeoutMs: 20_000 },
    );

  /** Answers one connection on `port` in `pod` with `text`. */
  const listen = (pod: string, port: number, text: string): Promise<RunResult> =>
    nsExec(pod, '/usr/bin/socat', ['-T', '10', `TCP-LISTEN:${port},reuseaddr`, `SYSTEM:echo ${text}`], {
      timeoutMs: 20_000,
    });

  it("portMappings: hostPort 18080 DNATs to the pod's 8080, from the node and from a client; DEL removes the rules", async () => {
    // Debian's portmap (v1.1.1) speaks up to 1.0.0 and refuses a 1.1.0 list, so this list is 1.0.0.
    const n = await CnitoolNode.create('tbr-portmap');
    n.writeList([n.tabby(), { type: 'portmap', capabilities: { portMappings: true } }], '1.0.0');
    await n.node.addLoAddress(`${NODE_LO}/32`);
    // A client namespace on a link of its own into the node.
    const client = await sb.netns('c');
    await ip(undefined, [
      'link',
      'add',
      'tbrc0',
      'netns',
      n.name,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      client,
    ]);
    await ip(n.name, ['address', 'add', `${NODE_LINK}/24`, 'dev', 'tbrc0']);
    await ip(n.name, ['link', 'set', 'tbrc0', 'up']);
    await ip(client, ['address', 'add', `${CLIENT}/24`, 'dev', 'eth0']);
    await ip(client, ['link', 'set', 'eth0', 'up']);
    await ip(client, ['link', 'set', 'lo', 'up']);

    const pod = await sb.netns();
    const portMappings = [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }];
    const add = await n.ok('add', pod, { capArgs: { portMappings } });
    const a = podIp(add);
    expect(add.cniVersion).toBe('1.0.0');
    // tabby does not declare the capability, so libcni gives the mappings to portmap alone.
    expect(JSON.parse(n.calls('ADD')[0].stdin)).not.toHaveProperty('runtimeConfig');
    expect(JSON.parse(fs.readFileSync(n.cacheFile(pod), 'utf8')).capabilityArgs).toEqual({ portMappings });

    const nat = (await nsExec(n.name, '/usr/sbin/iptables-save', ['-t', 'nat'])).stdout;
    expect(nat).toMatch(new RegExp(`--dport 18080 .*--to-destination ${a.replace(/\./g, '\\.')}:8080`));

    // From a client on the node's link: PREROUTING DNAT, forwarded to the pod, answered back.
    const fromClient = listen(pod, 8080, 'tabby-pod-1');
    const r1 = await dial(client, NODE_LINK, 18080);
    expect(r1.stdout.trim(), shown(r1)).toBe('tabby-pod-1');
    expect((await fromClient).code).toBe(0);
    // From the node itself (OUTPUT DNAT), to an address of its own.
    const fromNode = listen(pod, 8080, 'tabby-pod-2');
    const r2 = await dial(n.name, NODE_LO, 18080);
    expect(r2.stdout.trim(), shown(r2)).toBe('tabby-pod-2');
    expect((await fromNode).code).toBe(0);

    // CHECK: tabby passes; portmap v1.1.1 fails CHECK for every IPv4-only pod, looking for an ip6tables
    // rule it never made (containernetworking/plugins#819).
    const check = await n.run('check', pod);
    expect(n.calls('CHECK')[0].code).toBe(0);
    if (check.code !== 0) expect(check.stderr).toMatch(/could not check ipv6 dnat/);
    // STATUS and GC are 1.1.0 verbs: for a 1.0.0 list libcni answers STATUS itself, without any plugin.
    await n.ok('status', pod);
    expect(n.calls('STATUS')).toEqual([]);

    // libcni v1.2.0 does not replay the cached portMappings on DEL (its GC does), and portmap does
    // nothing without them: a DEL without CAP_ARGS removes tabby's part and leaves the DNAT rules.
    await n.ok('del', pod);
    await n.expectNothingLeft(pod);
    expect((await nsExec(n.name, '/usr/sbin/iptables-save', ['-t', 'nat'])).stdout).toContain(`${a}:8080`);
    // DEL with the same CAP_ARGS removes them.
    await n.ok('del', pod, { capArgs: { portMappings } });
    const after = (await nsExec(n.name, '/usr/sbin/iptables-save', ['-t', 'nat'])).stdout;
    expect(after).not.toContain(a);
    expect(after).not.toMatch(/CNI-DN-/);
    const refused = await nsExec(client, '/usr/bin/socat', [
      '-T',
      '2',
      '-',
      `TCP:${NODE_LINK}:18080,connect-timeout=2`,
    ]);
    expect(refused.code, shown(refused)).not.toBe(0);
  });
});
