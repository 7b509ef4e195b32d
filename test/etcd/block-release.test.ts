import { afterAll, beforeAll, expect, test } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EtcdCluster, startEtcd } from '../helpers/etcd';
import { tabbyArgv } from '../helpers/cni';
import { IP, ip, nsExec, run } from '../helpers/proc';
import { metricValue, waitFor } from '../helpers/agent';

// One node in etcd, with a pool of /30 blocks (one pod address each): the node claims a block per pod,
// and its agent gives back a block once it has stayed empty for --block-release-after, keeping the last
// block of the pool. etcd runs inside the node's namespace; every wait has a deadline.

const tag = `tbr${process.pid}`;
const node = `${tag}-node`;
const peer = `${tag}-peer`;
const pods: string[] = [];
let etcd: EtcdCluster;
let dir: string;
let conflist: string;
let agent: ReturnType<typeof import('node:child_process').spawn> | undefined;
let agentLog = '';

const tabby = (...args: string[]) => nsExec(node, tabbyArgv()[0], [...tabbyArgv().slice(1), ...args]);

async function cni(command: string, pod: string) {
  const list = JSON.parse(fs.readFileSync(conflist, 'utf8'));
  const env = {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod,
    CNI_NETNS: `/var/run/netns/${pod}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
  };
  return nsExec(node, tabbyArgv()[0], tabbyArgv().slice(1), {
    env,
    input: JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] }),
  });
}

async function blocks(): Promise<{ cidr: string; owner: string }[]> {
  const r = await tabby('get', '--config', conflist, 'blocks', '-o', 'json');
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

async function metrics(): Promise<string> {
  const script = "fetch('http://127.0.0.1:9299/metrics').then(async (r) => process.stdout.write(await r.text()))";
  return (await nsExec(node, process.execPath, ['-e', script])).stdout;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
  for (const ns of [node, peer]) await ip(undefined, ['netns', 'add', ns]);
  await ip(undefined, ['link', 'add', 'eth0', 'netns', node, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer]);
  for (const [ns, addr] of [
    [node, '172.30.5.10/24'],
    [peer, '172.30.5.1/24'],
  ]) {
    await ip(ns, ['link', 'set', 'lo', 'up']);
    await ip(ns, ['address', 'add', addr, 'dev', 'eth0']);
    await ip(ns, ['link', 'set', 'eth0', 'up']);
  }
  await ip(node, ['route', 'add', 'default', 'via', '172.30.5.1']);
  etcd = await startEtcd({ netns: node, host: '127.0.0.1' });
  conflist = path.join(dir, 'node.conflist');
  fs.writeFileSync(
    conflist,
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'relnet',
      plugins: [
        {
          type: 'tabby',
          nodeName: 'node-r',
          datastore: { type: 'etcd', endpoints: etcd.endpoints, prefix: '/tabby' },
          stateDir: path.join(dir, 'state'),
          logFile: path.join(dir, 'tabby.log'),
          ipam: { type: 'tabby-ipam', dataDir: path.join(dir, 'ipam') },
        },
      ],
    }),
  );
  const pool = path.join(dir, 'pool.yaml');
  fs.writeFileSync(
    pool,
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: small}\nspec: {cidr: 10.123.0.0/24, blockSize: 30}\n',
  );
  const applied = await tabby('apply', '--config', conflist, '-f', pool);
  expect(applied.code, applied.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  agent?.kill('SIGKILL');
  for (const p of pods) await run(IP, ['netns', 'del', p]);
  await etcd?.stop();
  for (const ns of [node, peer]) await run(IP, ['netns', 'del', ns]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a block left empty is given back after the grace period; the last block of a pool is kept', async () => {
  const { spawn } = await import('node:child_process');
  agent = spawn(
    IP,
    [
      'netns',
      'exec',
      node,
      ...tabbyArgv(),
      'agent',
      '--config',
      conflist,
      '--metrics-addr',
      '127.0.0.1:9299',
      '--resync',
      '1',
      '--block-release-after',
      '1',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  agent.stderr!.setEncoding('utf8').on('data', (s: string) => (agentLog += s));
  await waitFor('the agent registered with its first block', async () => (await blocks()).length === 1, 20_000);

  for (const p of ['pod-1', 'pod-2']) {
    const pod = `${tag}-${p}`;
    await ip(undefined, ['netns', 'add', pod]);
    pods.push(pod);
    const r = await cni('ADD', pod);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }
  // one address per /30 block: the second pod made the node claim a second block
  const two = await blocks();
  expect(two.map((b) => b.owner)).toEqual(['node-r', 'node-r']);
  const pod2Ip = JSON.parse((await nsExec(pods[1], IP, ['-j', 'address', 'show', 'dev', 'eth0'])).stdout)[0]
    .addr_info[0].local;
  const pod2Block = two.find((b) => sameBlock(b.cidr, pod2Ip))!;

  expect((await cni('DEL', pods[1])).code).toBe(0);
  await waitFor(
    'the empty block given back',
    async () => !(await blocks()).some((b) => b.cidr === pod2Block.cidr),
    30_000,
  );
  expect(agentLog).toMatch(
    new RegExp(`block ${pod2Block.cidr.replace(/[./]/g, '\\$&')}: empty for the grace period, released`),
  );
  await waitFor(
    'its blackhole route gone',
    async () =>
      !JSON.parse((await nsExec(node, IP, ['-j', 'route', 'show', 'proto', '117'])).stdout || '[]').some(
        (r: { dst: string }) => r.dst === pod2Block.cidr,
      ),
  );
  const snapshot = JSON.parse(fs.readFileSync(path.join(dir, 'state', 'node.json'), 'utf8'));
  expect(snapshot.blocks).not.toContain(pod2Block.cidr);

  // the last block of the pool stays, empty or not: three more full applies later it is still there
  expect((await cni('DEL', pods[0])).code).toBe(0);
  const fullApplies = async () =>
    metricValue(await metrics(), 'tabby_agent_applies_total', '{kind="full",result="ok"}') ?? 0;
  const before = await fullApplies();
  await waitFor('three more resyncs', async () => (await fullApplies()) >= before + 3, 30_000);
  expect(await blocks()).toHaveLength(1);
}, 120_000);

function sameBlock(cidr: string, ip: string): boolean {
  const [net, len] = cidr.split('/');
  const toInt = (a: string) => a.split('.').reduce((v, o) => v * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(len));
  return Math.floor(toInt(ip) / size) === Math.floor(toInt(net) / size);
}
