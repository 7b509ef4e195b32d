import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ip, run, RunResult } from '../helpers/netns';
import {
  busyboxOciArchive,
  Call,
  expectVersionAnswers,
  makeRecorder,
  PreservedDir,
  recordedCalls,
  requireTools,
  restoreAll,
  rootRoutesTo,
  rootVethsOf,
  saveSysctl,
  shown,
  tabbyInstall,
  tmpdir,
  waitFor,
} from './helpers';

// containerd 1.6 (Debian) with its own root, state and socket and no CRI plugin, running busybox
// containers with `ctr run --cni`. ctr takes the first conflist of /etc/cni/net.d and plugins from
// /opt/cni/bin (fixed paths): tabby goes there with `tabby install` at its default directories, and
// everything there is put back afterwards. Plugins run in the ROOT network namespace here, so the pool
// (10.213.1.0/24) and the node's address (198.18.213.1 on lo, RFC 2544 space) are test-owned, and
// containers only ever talk to each other and to that address.

const NETWORK = 'tabbyctd';
const SUBNET_PREFIX = '10.213.1.';
const NODE_ADDR = '198.18.213.1';
const NODE_PORT = 17001;
const NS = 'tabbytest';
const IMAGE = 'docker.io/tabby/busybox:test';

let work: string;
let sock: string;
let containerd: ChildProcess | undefined;
let preserved: PreservedDir[] = [];
let restoreForward: (() => void) | undefined;
let loAddress = false;
let nodeServer: net.Server | undefined;

const ctr = (args: string[], timeoutMs = 60_000): Promise<RunResult> =>
  run('/usr/bin/ctr', ['-a', sock, '-n', NS, ...args], { timeoutMs });

async function stopContainerd(): Promise<void> {
  if (!containerd || containerd.exitCode !== null) return;
  const exited = new Promise((r) => containerd!.once('exit', r));
  containerd.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (containerd.exitCode === null) containerd.kill('SIGKILL');
}

/** Unmounts whatever containerd left mounted under the work dir (deepest first) before it is removed. */
function unmountUnder(dir: string): Promise<unknown> {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
  return Promise.all(mounts.map((m) => run('/usr/bin/umount', ['-l', m])));
}

beforeAll(async () => {
  requireTools({
    '/usr/bin/containerd': 'containerd',
    '/usr/bin/ctr': 'containerd',
    '/usr/sbin/runc': 'runc',
    '/bin/busybox': 'busybox-static',
  });
  work = tmpdir('tbr-containerd-');
  // Everything this test changes outside its work dir, recorded before it changes anything.
  preserved = [
    new PreservedDir('/etc/cni/net.d', ['10-tabby.conflist']),
    new PreservedDir('/opt/cni/bin', ['tabby', 'tabby-ipam']),
    new PreservedDir('/var/lib/cni'), // libcni's result cache (ctr uses the default)
    new PreservedDir('/run/containerd'), // shim sockets, fifos and runc state: fixed paths in 1.6
  ];
  restoreForward = saveSysctl('net.ipv4.ip_forward');

  sock = path.join(work, 'containerd.sock');
  const config = path.join(work, 'config.toml');
  fs.writeFileSync(
    config,
    `version = 2
root = "${work}/root"
state = "${work}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[plugins."io.containerd.internal.v1.opt"]
  path = "${work}/opt"
[grpc]
  address = "${sock}"
[ttrpc]
  address = "${sock}.ttrpc"
`,
  );
  const log = fs.openSync(path.join(work, 'containerd.log'), 'w');
  containerd = spawn('/usr/bin/containerd', ['--config', config], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  await waitFor(async () => (await ctr(['version'])).code === 0, 20_000, `containerd to answer on ${sock}`).catch(
    (e) => {
      throw new Error(
        `${(e as Error).message}\ncontainerd log:\n${fs.readFileSync(path.join(work, 'containerd.log'), 'utf8').slice(-3000)}`,
      );
    },
  );

  const imp = await ctr(['image', 'import', busyboxOciArchive(work, IMAGE)]);
  expect(imp.code, shown(imp)).toBe(0);

  // tabby on the node, at install's default directories; the recorder in front of it shows what
  // containerd sends.
  const conflist = path.join(work, 'tabby.conflist');
  fs.writeFileSync(
    conflist,
    JSON.stringify({
      cniVersion: '1.0.0',
      cniVersions: ['1.0.0', '1.1.0'],
      name: NETWORK,
      plugins: [
        {
          type: 'tabby',
          mtu: 1400,
          logFile: path.join(work, 'tabby.log'),
          ipam: {
            type: 'tabby-ipam',
            ranges: [[{ subnet: `${SUBNET_PREFIX}0/24` }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: path.join(work, 'ipam'),
          },
        },
      ],
    }),
  );
  const inst = await tabbyInstall(['--from', makeRecorder(work), '--conflist', conflist]);
  expect(inst.code, shown(inst)).toBe(0);
  const first = fs
    .readdirSync('/etc/cni/net.d')
    .filter((f) => /\.(conf|conflist|json)$/.test(f))
    .sort()[0];
  if (first !== '10-tabby.conflist') {
    throw new Error(`/etc/cni/net.d/${first} sorts before 10-tabby.conflist, so ctr would not use tabby's`);
  }

  await ip(undefined, ['address', 'add', `${NODE_ADDR}/32`, 'dev', 'lo']);
  loAddress = true;
  nodeServer = net.createServer((s) => s.end('hello-from-node\n'));
  await new Promise<void>((resolve, reject) => nodeServer!.once('error', reject).listen(NODE_PORT, NODE_ADDR, resolve));
});

afterAll(async () => {
  const problems: string[] = [];
  nodeServer?.close();
  if (sock && containerd) {
    // Anything still running (only after a failure): kill it, then delete it.
    for (const id of ['tbr-a', 'tbr-b']) {
      await ctr(['task', 'kill', '-s', 'KILL', id], 10_000);
      await ctr(['task', 'delete', '-f', id], 10_000);
      await ctr(['container', 'delete', id], 10_000);
    }
  }
  await stopContainerd();
  if (loAddress)
    await ip(undefined, ['address', 'del', `${NODE_ADDR}/32`, 'dev', 'lo']).catch((e) => problems.push(String(e)));
  restoreForward?.();
  try {
    restoreAll(preserved);
  } catch (e) {
    problems.push((e as Error).message);
  }
  if (work) {
    await unmountUnder(work);
    fs.rmSync(work, { recursive: true, force: true });
  }
  // Nothing of this network may be left in the root namespace, whatever happened.
  const veths = await rootVethsOf(NETWORK);
  if (veths.length) {
    for (const v of veths) await ip(undefined, ['link', 'del', v]).catch(() => undefined);
    problems.push(`veths left in the root namespace: ${veths.join(', ')}`);
  }
  if (problems.length) throw new Error(problems.join('\n'));
});

/** The address tabby reserved for a container (its ID is `<namespace>-<id>` under ctr). */
function reservedIp(id: string): string | undefined {
  const dir = path.join(work, 'ipam', NETWORK);
  if (!fs.existsSync(dir)) return undefined;
  return fs
    .readdirSync(dir)
    .find(
      (f) => /^\d+\.\d+\.\d+\.\d+$/.test(f) && fs.readFileSync(path.join(dir, f), 'utf8').startsWith(`${NS}-${id}\r\n`),
    );
}

const byCommand = (calls: Call[], cmd: string, cid: string): Call[] =>
  calls.filter((c) => c.env.CNI_COMMAND === cmd && c.env.CNI_CONTAINERID === cid);

describe('containerd: ctr run --cni', () => {
  it('a container gets a tabby address, reaches a second container and the node; DEL with an empty CNI_NETNS cleans up', async () => {
    // A: prints its address, then serves one TCP connection and exits.
    const a = ctr(
      [
        'run',
        '--rm',
        '--cni',
        IMAGE,
        'tbr-a',
        'sh',
        '-c',
        'ip -o -4 addr show dev eth0; echo hello-from-a | timeout 60 nc -l -p 7000',
      ],
      90_000,
    );
    let aIp: string | undefined;
    await waitFor(() => (aIp = reservedIp('tbr-a')) !== undefined, 30_000, 'container tbr-a to get an address');
    expect(aIp!.startsWith(SUBNET_PREFIX)).toBe(true);

    const script = [
      'ip -o -4 addr show dev eth0',
      `ping -c 1 -W 5 ${aIp} >/dev/null && echo ping-a-ok`,
      `ping -c 1 -W 5 ${NODE_ADDR} >/dev/null && echo ping-node-ok`,
      `for i in $(seq 50); do nc ${aIp} 7000 && break; sleep 0.1; done`,
      `nc ${NODE_ADDR} ${NODE_PORT} </dev/null`,
    ].join('; ');
    const b = await ctr(['run', '--rm', '--cni', IMAGE, 'tbr-b', 'sh', '-c', script], 90_000);
    expect(b.code, shown(b)).toBe(0);
    expect(b.stdout).toMatch(new RegExp(`inet ${SUBNET_PREFIX.replace(/\./g, '\\.')}\\d+/32`));
    expect(b.stdout).toContain('ping-a-ok');
    expect(b.stdout).toContain('ping-node-ok');
    expect(b.stdout).toContain('hello-from-a');
    expect(b.stdout).toContain('hello-from-node');

    const ra = await a;
    expect(ra.code, shown(ra)).toBe(0);
    expect(ra.stdout).toContain(`inet ${aIp}/32`);

    // What containerd sent: ADD with the task's netns, DEL after exit with CNI_NETNS empty.
    const calls = recordedCalls(work);
    expectVersionAnswers(calls);
    for (const id of ['tbr-a', 'tbr-b']) {
      const cid = `${NS}-${id}`;
      const adds = byCommand(calls, 'ADD', cid);
      expect(adds, `ADD ${cid}`).toHaveLength(1);
      expect(adds[0].env.CNI_NETNS).toMatch(/^\/proc\/\d+\/ns\/net$/);
      expect(adds[0].code).toBe(0);
      const dels = byCommand(calls, 'DEL', cid);
      expect(dels.length, `DEL ${cid}`).toBeGreaterThanOrEqual(1);
      for (const d of dels) {
        expect(d.env.CNI_NETNS).toBe('');
        expect(d.code, d.stdout).toBe(0);
        expect(d.stdout).toBe('');
      }
    }

    // Nothing left: no veth, no host route, no reservation, no libcni cache entry.
    expect(await rootVethsOf(NETWORK)).toEqual([]);
    expect(await rootRoutesTo(SUBNET_PREFIX)).toEqual([]);
    expect(reservedIp('tbr-a')).toBeUndefined();
    expect(reservedIp('tbr-b')).toBeUndefined();
    const results = '/var/lib/cni/results';
    expect(fs.existsSync(results) ? fs.readdirSync(results).filter((f) => f.startsWith(`${NETWORK}-`)) : []).toEqual(
      [],
    );
    expect((await ctr(['container', 'ls', '-q'])).stdout.trim()).toBe('');
  });
});
