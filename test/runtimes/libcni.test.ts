import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podAddresses, REF_CNI_DIR, TestNode } from '../helpers/cni';
import { ip, links, nsExec, nsPath, routes, tabbyVeths, useSandbox } from '../helpers/netns';
import { buildLibcniClient, requireTools, shown, tmpdir, installSeed } from './helpers';

// tabby driven by libcni (Debian's v1.1.2, the library of containerd 1.6, podman 4 and CRI-O) through
// a small Go client, alone and chained with the reference portmap, bandwidth and tuning plugins. Every
// client call runs inside a node namespace; pods are namespaces of their own.

const sb = useSandbox();
let work: string;
let client: string;
let binDir: string;

beforeAll(async () => {
  requireTools({
    '/usr/lib/cni/portmap': 'containernetworking-plugins',
    '/usr/sbin/iptables': 'iptables',
    '/usr/bin/socat': 'socat',
  });
  work = tmpdir('tbr-libcni-');
  client = await buildLibcniClient(work);
  // The plugin directory is made by `tabby install`, as on a node.
  binDir = await installSeed(work, '1.0.0');
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

interface ClientOut {
  ok: boolean;
  error?: string;
  result?: any;
  converted?: Record<string, any>;
  capabilities?: string[];
  supportedVersions?: string[];
  list?: { name: string; cniVersion: string; disableCheck: boolean; plugins: string[] };
}

/** A node with a conflist directory and a libcni result cache of its own. */
class LibcniNode {
  readonly confDir: string;
  readonly cacheDir: string;

  private constructor(readonly node: TestNode) {
    this.confDir = path.join(node.dir, 'net.d');
    this.cacheDir = path.join(node.dir, 'cache');
    fs.mkdirSync(this.confDir);
  }

  static async create(): Promise<LibcniNode> {
    return new LibcniNode(await TestNode.create(sb));
  }

  get name(): string {
    return this.node.name;
  }

  /** tabby's plugin entry (the node's config contract without name and version), with overrides. */
  tabby(over: Record<string, unknown> = {}): Record<string, unknown> {
    const { name: _n, cniVersion: _v, ...entry } = this.node.conf(over as never);
    return entry;
  }

  /** The reference tuning plugin, keeping its backups in the node's dir (not the global /run/cni/tuning). */
  tuning(over: Record<string, unknown> = {}): Record<string, unknown> {
    return { type: 'tuning', dataDir: path.join(this.node.dir, 'tuning'), ...over };
  }

  /** Writes a conflist `<name>.conflist` for network `name`. */
  writeList(name: string, plugins: object[], top: Record<string, unknown> = { cniVersion: '1.0.0' }): void {
    fs.writeFileSync(path.join(this.confDir, `${name}.conflist`), JSON.stringify({ ...top, name, plugins }));
  }

  async client(
    cmd: string,
    net: string,
    pod: string,
    cid: string,
    o: { args?: string; cap?: object; convert?: string[] } = {},
  ): Promise<ClientOut> {
    const argv = [
      '-confdir',
      this.confDir,
      '-net',
      net,
      '-path',
      `${binDir}:${REF_CNI_DIR}`,
      '-cache',
      this.cacheDir,
      '-netns',
      pod ? nsPath(pod) : '',
      '-cid',
      cid,
    ];
    if (o.args) argv.push('-args', o.args);
    if (o.cap) argv.push('-cap', JSON.stringify(o.cap));
    if (o.convert) argv.push('-convert', o.convert.join(','));
    const r = await nsExec(this.name, client, [...argv, cmd]);
    let out: ClientOut;
    try {
      out = JSON.parse(r.stdout);
    } catch {
      throw new Error(`libcni client ${cmd}: no JSON\n${shown(r)}`);
    }
    return out;
  }

  async ok(
    cmd: string,
    net: string,
    pod: string,
    cid: string,
    o: Parameters<LibcniNode['client']>[4] = {},
  ): Promise<ClientOut> {
    const out = await this.client(cmd, net, pod, cid, o);
    expect(out.ok, `${cmd} ${net}/${cid}: ${out.error}`).toBe(true);
    return out;
  }

  cacheFile(net: string, cid: string): string {
    return path.join(this.cacheDir, 'results', `${net}-${cid}-eth0`);
  }

  /** The pod's, the node's and the cache's state of an attachment is all gone. */
  async expectNothingLeft(net: string, pod: string, cid: string): Promise<void> {
    expect((await links(pod)).map((l) => l.ifname)).toEqual(['lo']);
    expect(await tabbyVeths(this.name)).toEqual([]);
    expect((await routes(this.name)).filter((r) => r.dev?.startsWith('tab'))).toEqual([]);
    expect(this.node.reservations()).toEqual([]);
    expect(fs.existsSync(this.cacheFile(net, cid))).toBe(false);
  }
}

const hostVethOf = (result: any): string => result.interfaces.find((i: any) => !i.sandbox).name;
const podIp = (result: any): string => result.ips[0].address.split('/')[0];

describe('tabby alone through libcni', () => {
  it('ADD caches the result, CHECK passes, DEL removes everything and the cache entry', async () => {
    const n = await LibcniNode.create();
    n.writeList('solo', [n.tabby()]);
    const pod = await sb.netns();
    const add = await n.ok('add', 'solo', pod, 'c1');
    expect(add.list).toMatchObject({ name: 'solo', cniVersion: '1.0.0', plugins: ['tabby'] });
    expect(add.result.cniVersion).toBe('1.0.0');
    const eth0 = add.result.interfaces.findIndex((i: any) => i.name === 'eth0' && i.sandbox === nsPath(pod));
    expect(eth0).toBeGreaterThanOrEqual(0);
    expect(add.result.ips[0].interface).toBe(eth0);
    expect(await podAddresses(pod)).toEqual([add.result.ips[0].address]);

    const cached = JSON.parse(fs.readFileSync(n.cacheFile('solo', 'c1'), 'utf8'));
    expect(cached).toMatchObject({ kind: 'cniCacheV1', containerId: 'c1', ifName: 'eth0', networkName: 'solo' });
    expect(cached.result).toEqual(add.result);

    await n.ok('check', 'solo', pod, 'c1');
    await n.ok('del', 'solo', pod, 'c1');
    await n.expectNothingLeft('solo', pod, 'c1');
    // A second DEL (no cache any more: no prevResult) succeeds too.
    await n.ok('del', 'solo', pod, 'c1');
  });

  it('answers the VERSION probe libcni sends when validating a list', async () => {
    const n = await LibcniNode.create();
    const v = await n.ok('version', 'tabby', '', '');
    expect(v.supportedVersions).toEqual(['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    n.writeList('chain', [
      n.tabby(),
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'bandwidth', capabilities: { bandwidth: true } },
      n.tuning(),
    ]);
    const val = await n.ok('validate', 'chain', '', '');
    expect(val.capabilities!.sort()).toEqual(['bandwidth', 'portMappings']);
  });
});

describe('chained with the reference plugins', () => {
  const NODE_ADDR = '10.99.0.1';

  it('portmap: a pod port is reachable from the node; bandwidth shapes, tuning tunes; DEL removes all of it', async () => {
    const n = await LibcniNode.create();
    await n.node.addLoAddress(`${NODE_ADDR}/32`);
    n.writeList('chain', [
      n.tabby(),
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'bandwidth', capabilities: { bandwidth: true } },
      n.tuning({ sysctl: { 'net.core.somaxconn': '321' } }),
    ]);
    const pod = await sb.netns();
    const cap = {
      portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }],
      bandwidth: { ingressRate: 8_000_000, ingressBurst: 1_000_000, egressRate: 8_000_000, egressBurst: 1_000_000 },
    };
    const add = await n.ok('add', 'chain', pod, 'c1', {
      cap,
      args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web',
    });
    const hostVeth = hostVethOf(add.result);
    const a = podIp(add.result);
    // bandwidth appended its ifb device to tabby's interfaces; tabby's entries are intact.
    expect(add.result.interfaces.map((i: any) => i.name)).toEqual([hostVeth, 'eth0', expect.stringMatching(/^bwp/)]);

    // portmap: node -> NODE_ADDR:18080 is DNATed to the pod's :8080.
    const listener = nsExec(pod, '/usr/bin/socat', ['-T', '10', 'TCP-LISTEN:8080,reuseaddr', 'SYSTEM:echo tabby-pod'], {
      timeoutMs: 20_000,
    });
    const dial = await nsExec(
      n.name,
      '/bin/sh',
      [
        '-c',
        `for i in $(seq 50); do socat -T 2 - TCP:${NODE_ADDR}:18080,connect-timeout=1 </dev/null && exit 0; sleep 0.1; done; exit 1`,
      ],
      { timeoutMs: 20_000 },
    );
    expect(dial.stdout.trim(), shown(dial)).toBe('tabby-pod');
    expect((await listener).code).toBe(0);
    const nat = await nsExec(n.name, '/usr/sbin/iptables-save', ['-t', 'nat']);
    expect(nat.stdout).toContain(`--to-destination ${a}:8080`);

    // bandwidth: tbf on tabby's host veth (pod ingress) and on its ifb (pod egress).
    const qdiscs = JSON.parse((await nsExec(n.name, '/usr/sbin/tc', ['-j', 'qdisc', 'show'])).stdout) as {
      dev: string;
      kind: string;
    }[];
    expect(qdiscs).toEqual(expect.arrayContaining([expect.objectContaining({ dev: hostVeth, kind: 'tbf' })]));
    // tuning: the sysctl, in the pod.
    expect((await nsExec(pod, '/usr/sbin/sysctl', ['-n', 'net.core.somaxconn'])).stdout.trim()).toBe('321');

    // CHECK: tabby, bandwidth and tuning pass. portmap v1.1.1 (Debian 12) fails CHECK for every
    // IPv4-only pod, looking for an ip6tables rule it never made (containernetworking/plugins#819).
    const check = await n.client('check', 'chain', pod, 'c1');
    if (!check.ok) expect(check.error).toMatch(/could not check ipv6 dnat/);

    // DEL replays the cached portMappings (portmap finds its rules with them) and removes everything.
    await n.ok('del', 'chain', pod, 'c1');
    await n.expectNothingLeft('chain', pod, 'c1');
    const after = (await nsExec(n.name, '/usr/sbin/iptables-save', ['-t', 'nat'])).stdout;
    expect(after).not.toContain(a);
    expect(after).not.toMatch(/CNI-DN-/);
    expect((await links(n.name)).map((l) => l.ifname)).toEqual(['lo']); // no ifb, no veth
  });

  it('CHECK passes, then fails once something tabby made is broken; DEL still cleans up', async () => {
    const n = await LibcniNode.create();
    const tuningDir = path.join(n.node.dir, 'tuning');
    n.writeList('chain', [
      n.tabby(),
      { type: 'bandwidth', capabilities: { bandwidth: true } },
      n.tuning({ mtu: 1400 }),
    ]);
    const cap = {
      bandwidth: { ingressRate: 8_000_000, ingressBurst: 1_000_000, egressRate: 8_000_000, egressBurst: 1_000_000 },
    };
    const breakages: [string, (pod: string, res: any) => Promise<unknown>, RegExp][] = [
      [
        'the host route',
        (_pod, res) => ip(n.name, ['route', 'del', `${podIp(res)}/32`, 'dev', hostVethOf(res)]),
        /host route .* is missing/,
      ],
      [
        'the pod address',
        (pod, res) => ip(pod, ['address', 'del', res.ips[0].address, 'dev', 'eth0']),
        /address .* is missing/,
      ],
      ['the default route', (pod) => ip(pod, ['route', 'del', 'default']), /route 0\.0\.0\.0\/0 .* is missing/],
      ['the host veth', (_pod, res) => ip(n.name, ['link', 'del', hostVethOf(res)]), /missing/],
    ];
    for (const [i, [what, breakIt, expected]] of breakages.entries()) {
      const pod = await sb.netns();
      const cid = `c${i}`;
      const add = await n.ok('add', 'chain', pod, cid, { cap });
      // tuning changed the MTU after tabby; CHECK tolerates later plugins' changes.
      expect((await links(pod)).find((l) => l.ifname === 'eth0')?.mtu).toBe(1400);
      await n.ok('check', 'chain', pod, cid);
      await breakIt(pod, add.result);
      const check = await n.client('check', 'chain', pod, cid);
      expect(check.ok, `CHECK after breaking ${what}`).toBe(false);
      expect(check.error, what).toMatch(expected);
      await n.ok('del', 'chain', pod, cid);
      await n.expectNothingLeft('chain', pod, cid);
      // tuning restores the MTU and drops its backup, unless the pod's interface is already gone (it
      // went with the host veth): then tuning v1.1.1 leaves the backup behind, and ignores that.
      const backups = fs.existsSync(tuningDir) ? fs.readdirSync(tuningDir) : [];
      expect(backups).toEqual(what === 'the host veth' ? [`${cid}_eth0.json`] : []);
      fs.rmSync(tuningDir, { recursive: true, force: true });
    }
  });

  it('disableCheck: libcni skips CHECK, so a broken attachment is not reported', async () => {
    const n = await LibcniNode.create();
    n.writeList('nocheck', [n.tabby({ logLevel: 'debug' }), n.tuning()], { cniVersion: '1.0.0', disableCheck: true });
    const pod = await sb.netns();
    const add = await n.ok('add', 'nocheck', pod, 'c1');
    expect(add.list!.disableCheck).toBe(true);
    await ip(pod, ['address', 'del', add.result.ips[0].address, 'dev', 'eth0']);
    await n.ok('check', 'nocheck', pod, 'c1');
    expect(fs.readFileSync(n.node.logFile, 'utf8')).not.toMatch(/ CHECK /);
    await n.ok('del', 'nocheck', pod, 'c1');
    await n.expectNothingLeft('nocheck', pod, 'c1');
  });
});

describe('versions', () => {
  it('cniVersions: libcni v1.1.2 ignores the list and uses cniVersion; without cniVersion it sends ""', async () => {
    const n = await LibcniNode.create();
    n.writeList('both', [n.tabby(), n.tuning()], { cniVersion: '1.0.0', cniVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    const pod = await sb.netns();
    const add = await n.ok('add', 'both', pod, 'c1');
    expect(add.list!.cniVersion).toBe('1.0.0');
    expect(add.result.cniVersion).toBe('1.0.0');
    await n.ok('check', 'both', pod, 'c1');
    await n.ok('del', 'both', pod, 'c1');
    await n.expectNothingLeft('both', pod, 'c1');

    // Only cniVersions: this libcni predates it, passes cniVersion "" and tabby answers as 0.1.0 (the
    // spec's default); CHECK is refused by libcni itself. Why `tabby install` insists on cniVersion.
    n.writeList('only', [n.tabby()], { cniVersions: ['1.0.0', '1.1.0'] });
    const pod2 = await sb.netns();
    const add2 = await n.ok('add', 'only', pod2, 'c2');
    expect(add2.list!.cniVersion).toBe('');
    expect(add2.result).toMatchObject({ cniVersion: '0.1.0', ip4: { gateway: '169.254.1.1' } });
    const check2 = await n.client('check', 'only', pod2, 'c2');
    expect(check2.error).toMatch(/does not support the CHECK command/);
    await n.ok('del', 'only', pod2, 'c2');
    await n.expectNothingLeft('only', pod2, 'c2');
  });

  it('a 1.1.0 list: tabby answers in 1.1.0, libcni v1.1.2 cannot parse it, and DEL still cleans up', async () => {
    const n = await LibcniNode.create();
    n.writeList('new', [n.tabby()], { cniVersion: '1.1.0' });
    const pod = await sb.netns();
    const add = await n.client('add', 'new', pod, 'c1');
    expect(add.ok).toBe(false);
    expect(add.error).toMatch(/unsupported CNI result version "1\.1\.0"/);
    await n.ok('del', 'new', pod, 'c1');
    await n.expectNothingLeft('new', pod, 'c1');
  });

  for (const version of ['0.3.0', '0.3.1', '0.4.0', '1.0.0']) {
    it(`a ${version} list chained with tuning: result, cache, CHECK and DEL in ${version}`, async () => {
      const n = await LibcniNode.create();
      n.writeList('v', [n.tabby(), n.tuning({ sysctl: { 'net.ipv4.conf.eth0.accept_local': '1' } })], {
        cniVersion: version,
      });
      const pod = await sb.netns();
      const add = await n.ok('add', 'v', pod, 'c1');
      expect(add.result.cniVersion).toBe(version);
      const v = add.result.ips[0].version;
      if (version === '1.0.0') expect(v).toBeUndefined();
      else expect(v).toBe('4');
      expect(add.result.interfaces[add.result.ips[0].interface]).toMatchObject({ name: 'eth0', sandbox: nsPath(pod) });
      expect((await nsExec(pod, '/usr/sbin/sysctl', ['-n', 'net.ipv4.conf.eth0.accept_local'])).stdout.trim()).toBe(
        '1',
      );
      const check = await n.client('check', 'v', pod, 'c1');
      if (version === '0.4.0' || version === '1.0.0') expect(check.ok, check.error).toBe(true);
      else expect(check.error).toMatch(/does not support the CHECK command/);
      await n.ok('del', 'v', pod, 'c1');
      await n.expectNothingLeft('v', pod, 'c1');
    });
  }

  it('0.1.0 and 0.2.0 lists (no chaining then): the ip4 result shape', async () => {
    for (const version of ['0.1.0', '0.2.0']) {
      const n = await LibcniNode.create();
      n.writeList('old', [n.tabby()], { cniVersion: version });
      const pod = await sb.netns();
      const add = await n.ok('add', 'old', pod, 'c1');
      expect(add.result).toEqual({
        cniVersion: version,
        ip4: {
          ip: `${(await podAddresses(pod))[0]}`,
          gateway: '169.254.1.1',
          routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
        },
        dns: {},
      });
      await n.ok('del', 'old', pod, 'c1');
      await n.expectNothingLeft('old', pod, 'c1');
    }
  });

  it("libcni's conversion of tabby's 1.0.0 result equals tabby's own answer in each older version", async () => {
    const n = await LibcniNode.create();
    const versions = ['0.2.0', '0.3.1', '0.4.0'];
    n.writeList('conv', [n.tabby()], { cniVersion: '1.0.0' });
    const pod = await sb.netns();
    const add = await n.ok('add', 'conv', pod, 'c1', { convert: versions });
    const address = podIp(add.result);
    await n.ok('del', 'conv', pod, 'c1');
    const macless = (x: unknown): unknown => JSON.parse(JSON.stringify(x).replace(/"mac":"[0-9a-f:]+"/g, '"mac":"M"'));
    for (const version of versions) {
      // Same attachment, same address (CNI_ARGS IP=), so only the pod's random MAC may differ.
      n.writeList('conv', [n.tabby()], { cniVersion: version });
      const again = await n.ok('add', 'conv', pod, 'c1', { args: `IP=${address}` });
      expect(macless(again.result), version).toEqual(macless(add.converted![version]));
      await n.ok('del', 'conv', pod, 'c1');
    }
    await n.expectNothingLeft('conv', pod, 'c1');
  });

  it('a cached 0.4.0 result is converted to 1.0.0 when the list is upgraded before CHECK and DEL', async () => {
    const n = await LibcniNode.create();
    n.writeList('up', [n.tabby(), n.tuning()], { cniVersion: '0.4.0' });
    const pod = await sb.netns();
    const add = await n.ok('add', 'up', pod, 'c1');
    expect(add.result.cniVersion).toBe('0.4.0');
    n.writeList('up', [n.tabby(), n.tuning()], { cniVersion: '1.0.0' });
    const cached = await n.ok('cached', 'up', pod, 'c1');
    expect(cached.result.cniVersion).toBe('1.0.0');
    expect(cached.result.ips[0].version).toBeUndefined();
    await n.ok('check', 'up', pod, 'c1');
    await n.ok('del', 'up', pod, 'c1');
    await n.expectNothingLeft('up', pod, 'c1');
  });
});
