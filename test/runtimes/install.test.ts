import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ip, ipJson, run, useSandbox } from '../helpers/netns';
import { PreservedDir, requireTools, RUNTIME_TABBY, shown, tabbyInstall, tmpdir, waitFor } from './helpers';

// `tabby install` with the single executable: what lands in the bin and config directories, the
// refusal to overwrite a foreign conflist, write-then-rename, and the default directories.

const sb = useSandbox();
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function setup(): { dir: string; bin: string; conf: string; conflist: string; list: object } {
  requireTools({});
  const dir = tmpdir('tbr-install-');
  dirs.push(dir);
  const list = {
    cniVersion: '1.0.0',
    cniVersions: ['1.0.0', '1.1.0'],
    name: 'k8s-pod-network',
    plugins: [
      // with the capability install adds (pod-annotations.test.ts): installed byte for byte
      {
        type: 'tabby',
        capabilities: { 'io.kubernetes.cri.pod-annotations': true },
        ipam: { type: 'tabby-ipam', ranges: [[{ subnet: '10.244.0.0/24' }]] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  const conflist = path.join(dir, 'src.conflist');
  fs.writeFileSync(conflist, JSON.stringify(list, null, 2));
  // The bin dir exists (it holds the runtime's other plugins); the conf dir does not yet: install creates it.
  const bin = path.join(dir, 'node/opt/cni/bin');
  fs.mkdirSync(bin, { recursive: true });
  return { dir, bin, conf: path.join(dir, 'node/etc/cni/net.d'), conflist, list };
}

const flags = (s: ReturnType<typeof setup>): string[] => [
  '--cni-bin-dir',
  s.bin,
  '--cni-conf-dir',
  s.conf,
  '--conflist',
  s.conflist,
];
const ls = (d: string): string[] => fs.readdirSync(d).sort();

describe('tabby install', () => {
  it('copies the executable and links tabby-ipam to it, then writes the conflist', async () => {
    const s = setup();
    const r = await tabbyInstall(flags(s));
    expect(r.code, shown(r)).toBe(0);
    expect(ls(s.bin)).toEqual(['tabby', 'tabby-ipam']);
    const bin = path.join(s.bin, 'tabby');
    expect(fs.statSync(bin).mode & 0o777).toBe(0o755);
    expect(fs.statSync(bin).size).toBe(fs.statSync(RUNTIME_TABBY).size);
    expect((await run('/usr/bin/cmp', [bin, RUNTIME_TABBY])).code).toBe(0);
    expect(fs.readlinkSync(path.join(s.bin, 'tabby-ipam'))).toBe('tabby');
    // Both faces answer as CNI plugins.
    for (const face of ['tabby', 'tabby-ipam']) {
      const v = await run(path.join(s.bin, face), [], {
        env: { CNI_COMMAND: 'VERSION' },
        input: '{"cniVersion":"1.0.0"}',
      });
      expect(JSON.parse(v.stdout), face).toMatchObject({ cniVersion: '1.0.0' });
    }
    expect(ls(s.conf)).toEqual(['10-tabby.conflist']);
    const written = path.join(s.conf, '10-tabby.conflist');
    expect(JSON.parse(fs.readFileSync(written, 'utf8'))).toEqual(s.list);
    expect(fs.statSync(written).mode & 0o777).toBe(0o644);
    expect(r.stdout).toContain(`wrote ${written}`);
  });

  it('replaces its own conflist, leaves an identical one untouched, and honours --name', async () => {
    const s = setup();
    expect((await tabbyInstall(flags(s))).code).toBe(0);
    const written = path.join(s.conf, '10-tabby.conflist');
    const before = fs.statSync(written);
    const same = await tabbyInstall([...flags(s), '--skip-binaries']);
    expect(same.stdout).toContain(`unchanged ${written}`);
    expect(fs.statSync(written).ino).toBe(before.ino);

    fs.writeFileSync(s.conflist, JSON.stringify({ ...s.list, name: 'renamed' }));
    const again = await tabbyInstall([...flags(s), '--skip-binaries']);
    expect(again.code, shown(again)).toBe(0);
    expect(JSON.parse(fs.readFileSync(written, 'utf8')).name).toBe('renamed');

    const named = await tabbyInstall([...flags(s), '--skip-binaries', '--name', '05-other.conflist']);
    expect(named.code, shown(named)).toBe(0);
    expect(ls(s.conf)).toEqual(['05-other.conflist', '10-tabby.conflist']);
  });

  it("refuses to overwrite a conflist that is not tabby's unless --force, touching nothing", async () => {
    const s = setup();
    fs.mkdirSync(s.conf, { recursive: true });
    const foreign = path.join(s.conf, '10-tabby.conflist');
    const theirs = JSON.stringify({
      cniVersion: '0.4.0',
      name: 'podman',
      plugins: [{ type: 'bridge' }, { type: 'portmap' }],
    });
    fs.writeFileSync(foreign, theirs);
    const r = await tabbyInstall(flags(s));
    expect(r.code, shown(r)).not.toBe(0);
    expect(r.stderr).toContain(`${foreign} exists and is not tabby's (plugins: bridge, portmap)`);
    expect(r.stderr).toContain('--force');
    expect(fs.readFileSync(foreign, 'utf8')).toBe(theirs);
    expect(ls(s.bin)).toEqual([]);

    fs.writeFileSync(foreign, 'not json {');
    expect((await tabbyInstall(flags(s))).stderr).toContain('(not JSON)');

    const forced = await tabbyInstall([...flags(s), '--force']);
    expect(forced.code, shown(forced)).toBe(0);
    expect(JSON.parse(fs.readFileSync(foreign, 'utf8'))).toEqual(s.list);
  });

  it('warns when another config sorts first (containerd would use that one)', async () => {
    const s = setup();
    fs.mkdirSync(s.conf, { recursive: true });
    fs.writeFileSync(path.join(s.conf, '05-bridge.conflist'), '{}');
    const r = await tabbyInstall([...flags(s), '--skip-binaries']);
    expect(r.code, shown(r)).toBe(0);
    expect(r.stderr).toContain('05-bridge.conflist sorts before 10-tabby.conflist');
  });

  it('refuses conflists runtimes would not load or that do not run tabby', async () => {
    const s = setup();
    const cases: [object | string, RegExp][] = [
      ['{"name":', /not JSON/],
      [{ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'bridge' }] }, /no plugin of type "tabby"/],
      [{ cniVersions: ['1.0.0'], name: 'n', plugins: [{ type: 'tabby' }] }, /"cniVersion" is required/],
      [{ cniVersion: '1.0.0', name: 'bad name', plugins: [{ type: 'tabby' }] }, /valid network name/],
      [{ cniVersion: '1.0.0', name: 'n', plugins: [] }, /non-empty list/],
    ];
    for (const [content, msg] of cases) {
      fs.writeFileSync(s.conflist, typeof content === 'string' ? content : JSON.stringify(content));
      const r = await tabbyInstall(flags(s));
      expect(r.code, shown(r)).not.toBe(0);
      expect(r.stderr).toMatch(msg);
    }
    expect(ls(s.bin)).toEqual([]);
    expect(fs.existsSync(s.conf)).toBe(false);
    const usage = await tabbyInstall(['--cni-bin-dir', s.bin]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--conflist FILE is required');
  });

  it('writes by rename: a reader never sees half a file, and an open one keeps the old whole', async () => {
    const s = setup();
    expect((await tabbyInstall(flags(s))).code).toBe(0);
    const written = path.join(s.conf, '10-tabby.conflist');
    // Two big versions (~2 MB), so a write in place would be seen half done.
    const big = (tag: string): string => JSON.stringify({ ...s.list, padding: tag.repeat(2_000_000) });
    const versions = [big('a'), big('b')];
    fs.writeFileSync(s.conflist, versions[0]);
    expect((await tabbyInstall([...flags(s), '--skip-binaries'])).code).toBe(0);

    const fd = fs.openSync(written, 'r');
    const inode = fs.fstatSync(fd).ino;
    const reader = spawn(process.execPath, [
      '-e',
      `const fs=require('fs');let reads=0,bad=0;const end=Date.now()+60000;
       process.stdin.on('data',()=>{console.log(JSON.stringify({reads,bad}));process.exit(0)});
       (function loop(){for(let i=0;i<20;i++){let t;try{t=fs.readFileSync(${JSON.stringify(written)},'utf8')}catch{bad++;continue}
       reads++;try{JSON.parse(t)}catch{bad++}} if(Date.now()<end)setImmediate(loop)})();`,
    ]);
    let out = '';
    reader.stdout.on('data', (b) => (out += b));
    for (let i = 1; i <= 8; i++) {
      fs.writeFileSync(s.conflist, versions[i % 2]);
      const r = await tabbyInstall([...flags(s), '--skip-binaries']);
      expect(r.code, shown(r)).toBe(0);
    }
    reader.stdin.write('stop\n');
    await new Promise((r) => reader.once('exit', r));
    const { reads, bad } = JSON.parse(out);
    expect(reads).toBeGreaterThan(0);
    expect(bad).toBe(0);
    // The descriptor opened before still reads the whole old version: the new one is a new file.
    expect(fs.fstatSync(fd).ino).toBe(inode);
    expect(fs.statSync(written).ino).not.toBe(inode);
    const old = Buffer.alloc(fs.fstatSync(fd).size);
    fs.readSync(fd, old, 0, old.length, 0);
    fs.closeSync(fd);
    expect(old.toString()).toBe(versions[0] + '\n');
    // No temp files left behind.
    expect(ls(s.conf)).toEqual(['10-tabby.conflist']);
  });

  it('replaces a running executable (no ETXTBSY), and --watch keeps the conflist in sync until SIGTERM', async () => {
    const s = setup();
    expect((await tabbyInstall(flags(s))).code).toBe(0);
    // The installed copy runs, watching its sources.
    const watcher = spawn(path.join(s.bin, 'tabby'), ['install', ...flags(s), '--skip-binaries', '--watch', '0.2']);
    let out = '';
    watcher.stdout.on('data', (b) => (out += b));
    await waitFor(() => out.includes('unchanged'), 10_000, 'the watcher to start');
    const again = await tabbyInstall(flags(s));
    expect(again.code, shown(again)).toBe(0);
    expect(ls(s.bin)).toEqual(['tabby', 'tabby-ipam']);

    fs.writeFileSync(s.conflist, JSON.stringify({ ...s.list, name: 'watched' }));
    const written = path.join(s.conf, '10-tabby.conflist');
    await waitFor(
      () => JSON.parse(fs.readFileSync(written, 'utf8')).name === 'watched',
      10_000,
      'the watcher to install the change',
    );
    const exited = new Promise<number | null>((r) => watcher.once('exit', (code) => r(code)));
    const t0 = Date.now();
    watcher.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('installs the cluster file beside the conflist', async () => {
    const s = setup();
    const cluster = path.join(s.dir, 'cluster.yaml');
    fs.writeFileSync(
      cluster,
      'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-a}\nspec: {cidr: 10.244.0.0/16}\n',
    );
    const dest = path.join(s.dir, 'node/etc/tabby/cluster.yaml');
    const r = await tabbyInstall([...flags(s), '--cluster-file', cluster, '--cluster-dest', dest]);
    expect(r.code, shown(r)).toBe(0);
    expect(fs.readFileSync(dest, 'utf8')).toBe(fs.readFileSync(cluster, 'utf8'));
    expect(r.stdout).toContain(`wrote ${dest}`);
  });

  it('defaults to /opt/cni/bin and /etc/cni/net.d (seen in a private mount namespace)', async () => {
    const s = setup();
    requireTools({ '/usr/bin/unshare': 'util-linux' });
    if (RUNTIME_TABBY.startsWith('/opt/') || RUNTIME_TABBY.startsWith('/etc/cni/'))
      throw new Error(`${RUNTIME_TABBY} would be hidden by the test's mounts`);
    // /etc/cni must exist to be mounted over; it is put back if the test makes it.
    const realBefore = ['/opt/cni/bin/tabby', '/etc/cni/net.d/10-tabby.conflist'].map((f) => fs.existsSync(f));
    const etcCni = new PreservedDir('/etc/cni');
    fs.mkdirSync('/etc/cni', { recursive: true });
    try {
      const script = [
        'set -e',
        'mount -t tmpfs tmpfs /opt',
        'mount -t tmpfs tmpfs /etc/cni',
        'mkdir -p /opt/cni/bin', // as the runtime's packaging makes it
        `${RUNTIME_TABBY} install --conflist ${s.conflist}`,
        'ls /opt/cni/bin /etc/cni/net.d',
      ].join('\n');
      const r = await run('/usr/bin/unshare', ['--mount', '--propagation', 'private', '/bin/sh', '-c', script]);
      expect(r.code, shown(r)).toBe(0);
      expect(r.stdout).toContain('installed /opt/cni/bin/tabby');
      expect(r.stdout).toContain('wrote /etc/cni/net.d/10-tabby.conflist');
      expect(r.stdout).toContain('/opt/cni/bin:\ntabby\ntabby-ipam\n');
      expect(r.stdout).toContain('/etc/cni/net.d:\n10-tabby.conflist\n');
    } finally {
      const problems = etcCni.restore();
      expect(problems).toEqual([]);
    }
    // The real directories never saw any of it.
    expect(['/opt/cni/bin/tabby', '/etc/cni/net.d/10-tabby.conflist'].map((f) => fs.existsSync(f))).toEqual(realBefore);
  });

  it('as a DaemonSet runs it: --node-name, then --watch --reconcile makes the node follow the cluster file', async () => {
    const s = setup();
    // A node (namespace) whose address 192.168.77.1/24 is on its eth0.
    const node = await sb.nodeNetns();
    await ip(node, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
    await ip(node, ['address', 'add', '192.168.77.1/24', 'dev', 'eth0']);
    for (const l of ['eth0', 'peer0']) await ip(node, ['link', 'set', l, 'up']);
    const doc = (name: string, spec: string, kind: string): string =>
      `apiVersion: projectcalico.org/v3\nkind: ${kind}\nmetadata: {name: ${name}}\nspec: ${spec}\n`;
    const pool = doc('pool-a', '{cidr: 10.77.0.0/16, blockSize: 24}', 'IPPool');
    const nodeA =
      doc('node-a', '{bgp: {ipv4Address: 192.168.77.1/24}}', 'Node') +
      '---\n' +
      doc('node-a-1', '{node: node-a, cidr: 10.77.1.0/24}', 'BlockAffinity');
    const nodeB =
      doc('node-b', '{bgp: {ipv4Address: 192.168.77.2/24}}', 'Node') +
      '---\n' +
      doc('node-b-2', '{node: node-b, cidr: 10.77.2.0/24}', 'BlockAffinity');
    const clusterSrc = path.join(s.dir, 'configmap-cluster.yaml');
    fs.writeFileSync(clusterSrc, [pool, nodeA].join('---\n'));
    const clusterDest = path.join(s.dir, 'node/etc/tabby/cluster.yaml');
    fs.writeFileSync(
      s.conflist,
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'k8s-pod-network',
        plugins: [
          {
            type: 'tabby',
            cluster: clusterDest,
            stateDir: path.join(s.dir, 'node/run/tabby'),
            ipam: { type: 'tabby-ipam' },
          },
        ],
      }),
    );
    const routes117 = async (): Promise<string[]> =>
      (await ipJson<{ dst: string; type?: string; gateway?: string }[]>(node, ['route', 'show', 'proto', '117'])).map(
        (r) => `${r.type ?? ''} ${r.dst} ${r.gateway ?? ''}`.trim(),
      );

    const watcher = spawn('/usr/sbin/ip', [
      'netns',
      'exec',
      node,
      RUNTIME_TABBY,
      'install',
      ...flags(s),
      '--skip-binaries',
      '--cluster-file',
      clusterSrc,
      '--cluster-dest',
      clusterDest,
      '--node-name',
      'node-a',
      '--watch',
      '0.2',
      '--reconcile',
    ]);
    let out = '';
    watcher.stdout.on('data', (b) => (out += b));
    watcher.stderr.on('data', (b) => (out += b));
    try {
      await waitFor(() => out.includes('reconcile: '), 20_000, 'the first reconcile');
      const written = JSON.parse(fs.readFileSync(path.join(s.conf, '10-tabby.conflist'), 'utf8'));
      expect(written.plugins[0].nodeName).toBe('node-a');
      expect(await routes117(), out).toEqual(['blackhole 10.77.1.0/24']);

      // node-b joins: the ConfigMap (here, the source file) changes, the watcher installs and reconciles.
      fs.writeFileSync(clusterSrc, [pool, nodeA, nodeB].join('---\n'));
      await waitFor(async () => (await routes117()).length === 2, 20_000, `node-b's route (output so far: ${out})`);
      expect((await routes117()).sort()).toEqual(['10.77.2.0/24 192.168.77.2', 'blackhole 10.77.1.0/24']);
      expect(fs.readFileSync(clusterDest, 'utf8')).toContain('node-b');
    } finally {
      watcher.kill('SIGTERM');
      await new Promise((r) => (watcher.exitCode !== null ? r(null) : watcher.once('exit', r)));
    }
  });
});
