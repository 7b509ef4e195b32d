import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REF_CNI_DIR } from '../helpers/cni';
import { ip, ipJson, nsExec, nsPath, useSandbox } from '../helpers/netns';
import { buildLibcniClient, requireTools, shown, tabbyInstall, tmpdir } from './helpers';

// A pod's Calico annotations reaching tabby the way containerd's CRI plugin sends them: libcni (Debian's
// v1.1.2, containerd 1.6's) puts a capability argument into runtimeConfig only when the conflist declares
// that capability, and containerd passes the pod's annotations as the capability argument
// `io.kubernetes.cri.pod-annotations` (go-cni WithCapability). `ctr run --cni` has no way to send
// annotations (only the CRI plugin does), so the Go libcni client passes that same argument here. The
// conflist is the one `tabby install` wrote: it adds the capability. Everything runs in a node namespace.

const POD_ANNOTATIONS = 'io.kubernetes.cri.pod-annotations';
const sb = useSandbox();
let work: string;
let client: string;
let binDir: string;
let confDir: string;

beforeAll(async () => {
  requireTools({});
  work = tmpdir('tbr-annotations-');
  client = await buildLibcniClient(work);
});
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

// The node holds a block of `main` (its default pool) and one of `pinned`, a pool that selects no node.
const CLUSTER = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: main}
spec: {cidr: 10.214.0.0/16, blockSize: 24}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pinned}
spec: {cidr: 10.215.0.0/16, blockSize: 24, nodeSelector: "zone == 'x'"}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-x}
spec: {bgp: {ipv4Address: 192.0.2.10/24}}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: node-x-main}
spec: {node: node-x, cidr: 10.214.1.0/24}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: node-x-pinned}
spec: {node: node-x, cidr: 10.215.1.0/24}
`;

interface ClientOut {
  ok: boolean;
  error?: string;
  result?: { ips: { address: string }[] };
}

async function libcni(
  node: string,
  cmd: string,
  net: string,
  pod: string,
  cid: string,
  cap?: object,
): Promise<ClientOut> {
  const argv = [
    '-confdir',
    confDir,
    '-net',
    net,
    '-path',
    `${binDir}:${REF_CNI_DIR}`,
    '-cache',
    path.join(work, 'cache'),
  ];
  argv.push('-netns', nsPath(pod), '-cid', cid);
  if (cap) argv.push('-cap', JSON.stringify(cap));
  const r = await nsExec(node, client, [...argv, cmd]);
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`libcni client ${cmd}: no JSON\n${shown(r)}`);
  }
}

const podAddrs = async (pod: string): Promise<string[]> =>
  (await ipJson<{ addr_info: { family: string; local: string }[] }[]>(pod, ['address', 'show', 'dev', 'eth0']))
    .flatMap((l) => l.addr_info)
    .filter((a) => a.family === 'inet')
    .map((a) => a.local);

describe('pod annotations through runtimeConfig (libcni, the capability tabby install writes)', () => {
  it('the annotated pod lands in the annotated pool, and at the annotated address; without the capability libcni drops them', async () => {
    const node = await sb.nodeNetns();
    // the node's address, on a veth pair of its own (this kernel has no dummy module)
    await ip(node, ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
    await ip(node, ['address', 'add', '192.0.2.10/24', 'dev', 'd0']);
    await ip(node, ['link', 'set', 'd0', 'up']);
    const dir = sb.tmpdir();
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), CLUSTER);
    const entry = {
      type: 'tabby',
      cluster: path.join(dir, 'cluster.yaml'),
      nodeName: 'node-x',
      stateDir: path.join(dir, 'state'),
      logFile: path.join(dir, 'tabby.log'),
      ipam: { type: 'tabby-ipam', dataDir: path.join(dir, 'ipam') },
    };
    // The source conflist has no capabilities: `tabby install` adds the one for pod annotations.
    const src = path.join(dir, 'src.conflist');
    fs.writeFileSync(src, JSON.stringify({ cniVersion: '1.0.0', name: 'annotated', plugins: [entry] }));
    binDir = path.join(dir, 'bin');
    confDir = path.join(dir, 'net.d');
    fs.mkdirSync(binDir); // install wants the bin directory to exist, as on a node
    const inst = await tabbyInstall(['--cni-bin-dir', binDir, '--cni-conf-dir', confDir, '--conflist', src]);
    expect(inst.code, shown(inst)).toBe(0);
    const installed = JSON.parse(fs.readFileSync(path.join(confDir, '10-tabby.conflist'), 'utf8'));
    expect(installed.plugins[0].capabilities).toEqual({ [POD_ANNOTATIONS]: true });
    // The same network by hand, without the capability (what a conflist not installed by tabby may be).
    fs.writeFileSync(
      path.join(confDir, '20-plain.conflist'),
      JSON.stringify({ cniVersion: '1.0.0', name: 'plain', plugins: [entry] }),
    );

    const annotations = (a: Record<string, string>) => ({
      [POD_ANNOTATIONS]: { 'kubernetes.io/config.seen': '2026-12-01T00:00:00Z', ...a },
    });
    const pinnedPod = await sb.netns();
    let out = await libcni(
      node,
      'add',
      'annotated',
      pinnedPod,
      'pinned',
      annotations({
        'cni.projectcalico.org/ipv4pools': '["pinned"]',
      }),
    );
    expect(out.ok, out.error).toBe(true);
    expect(out.result!.ips[0].address).toMatch(/^10\.215\.1\.\d+\/32$/);
    expect((await podAddrs(pinnedPod))[0]).toMatch(/^10\.215\.1\.\d+$/);

    const fixedPod = await sb.netns();
    out = await libcni(
      node,
      'add',
      'annotated',
      fixedPod,
      'fixed',
      annotations({
        'cni.projectcalico.org/ipAddrs': '["10.214.1.77"]',
      }),
    );
    expect(out.ok, out.error).toBe(true);
    expect(out.result!.ips.map((x) => x.address)).toEqual(['10.214.1.77/32']);
    expect(await podAddrs(fixedPod)).toEqual(['10.214.1.77']);

    // Without the capability, libcni leaves the annotations out: the next default address, not the one
    // asked for.
    const plainPod = await sb.netns();
    out = await libcni(
      node,
      'add',
      'plain',
      plainPod,
      'plain',
      annotations({
        'cni.projectcalico.org/ipAddrs': '["10.214.1.77"]',
      }),
    );
    expect(out.ok, out.error).toBe(true);
    expect(out.result!.ips[0].address).toMatch(/^10\.214\.1\.\d+\/32$/);
    expect(out.result!.ips[0].address).not.toBe('10.214.1.77/32');

    // With it, the same request is refused, as CNI error JSON that libcni hands back.
    const again = await sb.netns();
    out = await libcni(
      node,
      'add',
      'annotated',
      again,
      'again',
      annotations({
        'cni.projectcalico.org/ipAddrs': '["10.214.1.77"]',
      }),
    );
    expect(out.ok).toBe(false);
    expect(out.error).toMatch(/10\.214\.1\.77 .*in use by container fixed \(eth0\)/);

    for (const [net, pod, cid] of [
      ['annotated', pinnedPod, 'pinned'],
      ['annotated', fixedPod, 'fixed'],
      ['plain', plainPod, 'plain'],
    ]) {
      const del = await libcni(node, 'del', net, pod, cid);
      expect(del.ok, del.error).toBe(true);
    }
    expect((await ipJson<{ ifname: string }[]>(node, ['link', 'show'])).map((l) => l.ifname).sort()).toEqual([
      'd0',
      'd1',
      'lo',
    ]);
  });
});
