import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ip, run, RunResult } from '../helpers/netns';
import {
  busyboxRootfs,
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
} from './helpers';

// podman 4.3 (Debian) with the CNI network backend and a tabby network. Its storage, run root,
// configuration and network config dir are the test's own (CONTAINERS_CONF, --root, --runroot);
// containers run from a busybox root filesystem (--rootfs), so no image is needed. Plugins run in the
// ROOT network namespace: the pool 10.213.2.0/24 is test-owned, and containers only talk to each other.

const NETWORK = 'tabbypm';
const SUBNET_PREFIX = '10.213.2.';

let work: string;
let rootfs: string;
let preserved: PreservedDir[] = [];
let restoreForward: (() => void) | undefined;
const names = ['tbr-pa', 'tbr-pb', 'tbr-pc'];

function podman(args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return run('/usr/bin/podman', ['--root', path.join(work, 'root'), '--runroot', path.join(work, 'runroot'), ...args], {
    env: { PATH: process.env.PATH, HOME: work, CONTAINERS_CONF: path.join(work, 'containers.conf') },
    timeoutMs,
  });
}

/** `podman run` with tabby's network from the busybox root filesystem (options before --rootfs). */
const podmanRun = (opts: string[], cmd: string, timeoutMs?: number): Promise<RunResult> =>
  podman(['run', ...opts, '--network', NETWORK, '--rootfs', rootfs, 'sh', '-c', cmd], timeoutMs);

beforeAll(async () => {
  requireTools({ '/usr/bin/podman': 'podman', '/usr/sbin/runc': 'runc', '/bin/busybox': 'busybox-static' });
  work = tmpdir('tbr-podman-');
  preserved = [
    new PreservedDir('/var/lib/cni'), // libcni's result cache (podman uses the default)
    new PreservedDir('/run/libpod'),
    new PreservedDir('/run/runc'), // runc's state root, as podman runs it
  ];
  restoreForward = saveSysctl('net.ipv4.ip_forward');
  rootfs = busyboxRootfs(work);
  const netDir = path.join(work, 'net.d');
  fs.writeFileSync(
    path.join(work, 'containers.conf'),
    `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[network]
network_backend = "cni"
cni_plugin_dirs = ["${work}/bin", "/usr/lib/cni"]
network_config_dir = "${netDir}"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${work}/events.log"
tmp_dir = "${work}/tmp"
volume_path = "${work}/volumes"
`,
  );
  const conflist = path.join(work, 'tabby.conflist');
  fs.writeFileSync(
    conflist,
    JSON.stringify({
      cniVersion: '1.0.0',
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
  // podman's network directory is the CNI config dir here; the recorder stands in for tabby.
  fs.mkdirSync(path.join(work, 'bin'));
  const inst = await tabbyInstall([
    '--from',
    makeRecorder(work),
    '--cni-bin-dir',
    path.join(work, 'bin'),
    '--cni-conf-dir',
    netDir,
    '--conflist',
    conflist,
    '--name',
    `${NETWORK}.conflist`,
  ]);
  expect(inst.code, shown(inst)).toBe(0);
});

afterAll(async () => {
  const problems: string[] = [];
  if (work) {
    const rm = await podman(['rm', '-f', '-t', '0', ...names]);
    if (rm.code !== 0 && !/no such container/i.test(rm.stderr)) problems.push(`podman rm: ${rm.stderr.trim()}`);
  }
  restoreForward?.();
  try {
    restoreAll(preserved);
  } catch (e) {
    problems.push((e as Error).message);
  }
  if (work) fs.rmSync(work, { recursive: true, force: true });
  const veths = await rootVethsOf(NETWORK);
  if (veths.length) {
    for (const v of veths) await ip(undefined, ['link', 'del', v]).catch(() => undefined);
    problems.push(`veths left in the root namespace: ${veths.join(', ')}`);
  }
  if (problems.length) throw new Error(problems.join('\n'));
});

const reservations = (): string[] => {
  const dir = path.join(work, 'ipam', NETWORK);
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
};
const callsFor = (calls: Call[], cmd: string, cid: string): Call[] =>
  calls.filter((c) => c.env.CNI_COMMAND === cmd && c.env.CNI_CONTAINERID === cid);

async function inspectIp(name: string): Promise<{ id: string; ip: string }> {
  const r = await podman([
    'inspect',
    name,
    '--format',
    `{{.Id}} {{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`,
  ]);
  expect(r.code, shown(r)).toBe(0);
  const [id, addr] = r.stdout.trim().split(' ');
  return { id, ip: addr };
}

describe('podman with the CNI backend', () => {
  it('lists the tabby network', async () => {
    const r = await podman(['network', 'ls', '--format', '{{.Name}} {{.Driver}}']);
    expect(r.code, shown(r)).toBe(0);
    expect(r.stdout).toContain(`${NETWORK} tabby`);
  });

  it('two containers get tabby addresses and talk; VERSION probes are answered; nothing is left after podman rm', async () => {
    // A serves one TCP connection and stays up until removed.
    const a = await podmanRun(['-d', '--name', 'tbr-pa'], 'echo hello-from-a | nc -l -p 7000; sleep 600');
    expect(a.code, shown(a)).toBe(0);
    const pa = await inspectIp('tbr-pa');
    expect(pa.ip.startsWith(SUBNET_PREFIX), pa.ip).toBe(true);

    const script = [
      'ip -o -4 addr show dev eth0',
      `ping -c 1 -W 5 ${pa.ip} >/dev/null && echo ping-a-ok`,
      `for i in $(seq 50); do nc ${pa.ip} 7000 && break; sleep 0.1; done`,
    ].join('; ');
    const b = await podmanRun(['--name', 'tbr-pb'], script);
    expect(b.code, shown(b)).toBe(0);
    expect(b.stdout).toMatch(new RegExp(`inet ${SUBNET_PREFIX.replace(/\./g, '\\.')}\\d+/32`));
    expect(b.stdout).toContain('ping-a-ok');
    expect(b.stdout).toContain('hello-from-a');
    // B has exited (and its network is down): its address is what it printed.
    const pb = { id: (await inspectIp('tbr-pb')).id, ip: /inet (\S+)\/32/.exec(b.stdout)![1] };
    expect(pb.ip).not.toBe(pa.ip);

    // A is still running: its netns, veth and reservation exist until podman rm.
    let calls = recordedCalls(work);
    const aAdd = callsFor(calls, 'ADD', pa.id);
    expect(aAdd).toHaveLength(1);
    expect(aAdd[0].env.CNI_ARGS).toBe('IgnoreUnknown=1;K8S_POD_NAME=tbr-pa');
    const aNetns = aAdd[0].env.CNI_NETNS;
    expect(fs.existsSync(aNetns)).toBe(true);
    expect(await rootVethsOf(NETWORK)).toHaveLength(1);
    expect(reservations()).toEqual([pa.ip]);

    const rm = await podman(['rm', '-f', '-t', '0', 'tbr-pa', 'tbr-pb']);
    expect(rm.code, shown(rm)).toBe(0);

    calls = recordedCalls(work);
    // podman asks each plugin's VERSION first, with dummy values, and never calls CHECK.
    const versions = calls.filter((c) => c.env.CNI_COMMAND === 'VERSION');
    expect(versions.length).toBeGreaterThanOrEqual(1);
    for (const v of versions) {
      expect(v.env).toMatchObject({ CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: 'dummy' });
    }
    expectVersionAnswers(calls);
    expect(calls.filter((c) => c.env.CNI_COMMAND === 'CHECK')).toEqual([]);
    for (const id of [pa.id, pb.id]) {
      const dels = callsFor(calls, 'DEL', id);
      expect(dels.length, `DEL of ${id}`).toBeGreaterThanOrEqual(1);
      for (const d of dels) expect(d.code, d.stdout).toBe(0);
      // The DEL carries the cached ADD result as prevResult.
      expect(JSON.parse(dels[0].stdin).prevResult?.ips?.[0]?.address).toBe(`${id === pa.id ? pa.ip : pb.ip}/32`);
    }

    // Nothing left: netns, veths, host routes, reservations, libcni cache, containers.
    expect(fs.existsSync(aNetns)).toBe(false);
    expect(await rootVethsOf(NETWORK)).toEqual([]);
    expect(await rootRoutesTo(SUBNET_PREFIX)).toEqual([]);
    expect(reservations()).toEqual([]);
    const results = '/var/lib/cni/results';
    expect(fs.existsSync(results) ? fs.readdirSync(results).filter((f) => f.startsWith(`${NETWORK}-`)) : []).toEqual(
      [],
    );
    expect((await podman(['ps', '-a', '-q'])).stdout.trim()).toBe('');
  });

  it('a container that exits on its own is torn down then, and podman rm leaves nothing', async () => {
    const c = await podmanRun(['--name', 'tbr-pc'], 'ip -o -4 addr show dev eth0');
    expect(c.code, shown(c)).toBe(0);
    const addr = /inet (\S+)\/32/.exec(c.stdout)?.[1];
    expect(addr?.startsWith(SUBNET_PREFIX), c.stdout).toBe(true);
    // Exited: the network is already down, before podman rm.
    expect(await rootVethsOf(NETWORK)).toEqual([]);
    expect(reservations()).toEqual([]);
    const rm = await podman(['rm', 'tbr-pc']);
    expect(rm.code, shown(rm)).toBe(0);
    expect(await rootRoutesTo(SUBNET_PREFIX)).toEqual([]);
    expect((await podman(['ps', '-a', '-q'])).stdout.trim()).toBe('');
  });
});
