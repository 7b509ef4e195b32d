import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CniEnv,
  CniRun,
  expectCniError,
  expectResult,
  expectSilentSuccess,
  REF_CNI_DIR,
  show,
  tabbyArgv,
  TestNode,
} from '../helpers/cni';
import { reservationMap } from '../helpers/ipam';
import { IP, link, routes, run, tabbyVeths, useSandbox } from '../helpers/netns';

// CNI 1.1 GC and STATUS beyond the basics of gc-status.test.ts: GC goes on past errors and reports them
// all, matches attachments by container *and* interface, forwards to a delegated IPAM; STATUS says why.

const sb = useSandbox();

/**
 * Runs tabby inside `node` in a private mount namespace where `roDir` is mounted read-only (as root,
 * file modes do not stop writes; a read-only mount does). The mount goes away with the process.
 */
async function tabbyWithReadOnly(node: TestNode, roDir: string, env: CniEnv, stdin: object): Promise<CniRun> {
  const script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"';
  const r = await run(
    '/usr/bin/unshare',
    [
      '--mount',
      '--propagation',
      'private',
      '/bin/sh',
      '-c',
      script,
      roDir,
      IP,
      'netns',
      'exec',
      node.name,
      ...tabbyArgv(),
    ],
    {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      input: JSON.stringify(stdin),
    },
  );
  let json: any;
  try {
    json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

const ipOf = (r: any): string => r.ips[0].address.split('/')[0];

describe('GC', () => {
  it('goes on past errors: with a read-only store it still removes the host side, and reports every failed release', async () => {
    const node = await TestNode.create(sb);
    const pods = { A: await sb.netns(), B: await sb.netns(), C: await sb.netns() };
    const res = Object.fromEntries(
      await Promise.all(Object.entries(pods).map(async ([cid, pod]) => [cid, expectResult(await node.add(pod, cid))])),
    );
    const gcConf = { ...node.conf(), 'cni.dev/valid-attachments': [{ containerID: 'A', ifname: 'eth0' }] };

    const r = await tabbyWithReadOnly(node, node.ipamDir, node.env('GC', '', '', ''), gcConf);
    expectCniError(r, 5, /GC met 2 error\(s\)/);
    expect(r.json.msg, show(r)).toContain(`releasing ${ipOf(res.B)} (B/eth0)`);
    expect(r.json.msg, show(r)).toContain(`releasing ${ipOf(res.C)} (C/eth0)`);
    // the host side of B and C is gone all the same; A is untouched
    expect(await tabbyVeths(node.name)).toEqual([res.A.interfaces[0].name]);
    expect((await routes(node.name)).map((x) => x.dst)).not.toContain(ipOf(res.B));
    expect(await link(pods.A, 'eth0')).toBeDefined();
    expect(Object.keys(reservationMap(node.ipamDir))).toHaveLength(3);

    // once the store is writable again, the next GC finishes the job
    expectSilentSuccess(await node.global('GC', gcConf));
    expect(reservationMap(node.ipamDir)).toEqual({ [ipOf(res.A)]: 'A\r\neth0' });
    expectSilentSuccess(await node.check(pods.A, 'A', { prevResult: res.A }));
  });

  it("matches attachments by container and interface: a container's eth1 listed does not keep its eth0", async () => {
    const node = await TestNode.create(sb);
    // (two pods for one container ID: tabby's wiring gives each pod one interface on a network)
    const [pod0, pod1] = [await sb.netns(), await sb.netns()];
    const eth0 = expectResult(await node.add(pod0, 'X', { ifname: 'eth0' }));
    const eth1 = expectResult(await node.add(pod1, 'X', { ifname: 'eth1' }));
    expectSilentSuccess(
      await node.global('GC', { ...node.conf(), 'cni.dev/attachments': [{ containerID: 'X', ifname: 'eth1' }] }),
    );
    expect(reservationMap(node.ipamDir)).toEqual({ [ipOf(eth1)]: 'X\r\neth1' });
    expect(await tabbyVeths(node.name)).toEqual([eth1.interfaces[0].name]);
    expect(await link(pod0, 'eth0')).toBeUndefined();
    expect(await link(pod1, 'eth1')).toBeDefined();
    expect(ipOf(eth0)).not.toBe(ipOf(eth1));
  });

  it('releases reservations left by an interrupted ADD (no veth was ever made), and legacy ones whose container is gone', async () => {
    const node = await TestNode.create(sb);
    const a = expectResult(await node.add(await sb.netns(), 'A'));
    fs.writeFileSync(path.join(node.ipamDir, '10.244.1.77'), 'half\r\neth0', { mode: 0o600 }); // no veth, no pod
    fs.writeFileSync(path.join(node.ipamDir, '10.244.1.78'), 'legacy', { mode: 0o600 }); // host-local's old format
    fs.writeFileSync(path.join(node.ipamDir, '10.244.1.79'), '', { mode: 0o600 }); // killed between create and write
    expectSilentSuccess(
      await node.global('GC', { ...node.conf(), 'cni.dev/valid-attachments': [{ containerID: 'A', ifname: 'eth0' }] }),
    );
    expect(reservationMap(node.ipamDir)).toEqual({ [ipOf(a)]: 'A\r\neth0' });
  });
});

describe('STATUS', () => {
  it('is code 50 saying the store is unusable when the data directory is read-only', async () => {
    const node = await TestNode.create(sb);
    expectResult(await node.add(await sb.netns(), 'c1'));
    const r = await tabbyWithReadOnly(node, node.ipamDir, node.env('STATUS', '', '', ''), node.conf());
    expectCniError(r, 50, /IPAM store for network tabbynet is unusable: .*read-only/i);
    expectSilentSuccess(await node.global('STATUS', node.conf()));
  });

  it('is code 50 naming the rangeset and network that have no free address, even when another family has', async () => {
    const node = await TestNode.create(sb);
    // v4 has 253 addresses, v6 (a /126) leases ::2 and ::3
    const conf = node.conf({ ipam: { ranges: [[{ subnet: '10.244.3.0/24' }], [{ subnet: 'fd00:3::/126' }]] } });
    expectSilentSuccess(await node.global('STATUS', conf));
    expectResult(await node.add(await sb.netns(), 'c1', { conf }));
    expectResult(await node.add(await sb.netns(), 'c2', { conf }));
    expectCniError(
      await node.global('STATUS', conf),
      50,
      /no free address in range set fd00:3::[0-9a-f]*-fd00:3::3 of network tabbynet/,
    );
    // and ADD fails accordingly, keeping nothing of the v4 address it could have had
    const before = reservationMap(node.ipamDir);
    const r = await node.add(await sb.netns(), 'c3', { conf });
    expect(r.code, show(r)).not.toBe(0);
    expect(reservationMap(node.ipamDir)).toEqual(before);
  });
});

describe('GC, STATUS and the rest forwarded to a delegated IPAM plugin', () => {
  /** A fake IPAM plugin that records each call and can be told to fail STATUS or GC. */
  function fakeIpam(): { dir: string; calls: () => string[]; stdinOf: (cmd: string) => any } {
    const dir = sb.tmpdir();
    fs.writeFileSync(
      path.join(dir, 'fake-ipam'),
      `#!/bin/sh
d=${JSON.stringify(dir)}
echo "$CNI_COMMAND" >> "$d/calls"
cat > "$d/stdin.$CNI_COMMAND"
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.1.0","ips":[{"address":"10.99.0.5/24","gateway":"10.99.0.1"}],"routes":[{"dst":"0.0.0.0/0"}]}' ;;
STATUS) if [ -e "$d/down" ]; then echo '{"cniVersion":"1.1.0","code":50,"msg":"fake: pool offline"}'; exit 1; fi ;;
GC) if [ -e "$d/gc-broken" ]; then echo '{"cniVersion":"1.1.0","code":5,"msg":"fake: gc broke"}'; exit 1; fi ;;
esac
exit 0
`,
      { mode: 0o755 },
    );
    return {
      dir,
      calls: () => fs.readFileSync(path.join(dir, 'calls'), 'utf8').trim().split('\n'),
      stdinOf: (cmd) => JSON.parse(fs.readFileSync(path.join(dir, `stdin.${cmd}`), 'utf8')),
    };
  }

  it("ADD, CHECK, GC, STATUS and DEL reach the delegate; its errors are tabby's, and GC still removes the host side", async () => {
    const node = await TestNode.create(sb);
    const fake = fakeIpam();
    const conf = node.conf({ ipam: { type: 'fake-ipam' } });
    const env = { CNI_PATH: `${fake.dir}:${REF_CNI_DIR}` };
    const pod = await sb.netns();
    const res = expectResult(await node.add(pod, 'D', { conf, env }));
    expect(res.ips[0].address).toBe('10.99.0.5/32');
    expectSilentSuccess(await node.check(pod, 'D', { conf, env, prevResult: res }));

    const status = (c = conf) => node.tabby({ ...node.env('STATUS', '', '', ''), ...env }, c);
    expectSilentSuccess(await status());
    fs.writeFileSync(path.join(fake.dir, 'down'), '');
    expectCniError(await status(), 50, /pool offline/);

    fs.writeFileSync(path.join(fake.dir, 'gc-broken'), '');
    const gcConf = { ...conf, 'cni.dev/valid-attachments': [] };
    const gc = await node.tabby({ ...node.env('GC', '', '', ''), ...env }, gcConf);
    expectCniError(gc, 5, /GC met 1 error\(s\): IPAM GC: fake-ipam: fake: gc broke/);
    expect(fake.stdinOf('GC')['cni.dev/valid-attachments']).toEqual([]);
    expect(await tabbyVeths(node.name)).toEqual([]); // the host side went all the same
    fs.unlinkSync(path.join(fake.dir, 'gc-broken'));
    expectSilentSuccess(await node.tabby({ ...node.env('GC', '', '', ''), ...env }, gcConf));

    expectSilentSuccess(await node.del(pod, 'D', { conf, env }));
    expect(fake.calls()).toEqual(['ADD', 'CHECK', 'STATUS', 'STATUS', 'GC', 'GC', 'DEL']);
    expect(fake.stdinOf('DEL').ipam.type).toBe('fake-ipam');
  });
});
