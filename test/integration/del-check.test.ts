import { describe, expect, it } from 'vitest';
import { expectCniError, expectResult, expectSilentSuccess, show, TestNode } from '../helpers/cni';
import { ip, link, links, routes, tabbyVeths, useSandbox } from '../helpers/netns';

// cni-spec.md §6 checks 10 (CHECK), 11 (DEL) and 14 (rollback).

const sb = useSandbox();

async function addedPod(node: TestNode, cid = 'c1') {
  const pod = await sb.netns();
  const res = expectResult(await node.add(pod, cid));
  return { pod, res, hostVeth: res.interfaces[0].name as string, ip: (res.ips[0].address as string).split('/')[0] };
}

async function expectGone(node: TestNode, a: { pod: string; hostVeth: string; ip: string }, podAlive = true) {
  if (podAlive) expect(await link(a.pod, 'eth0')).toBeUndefined();
  expect(await tabbyVeths(node.name)).not.toContain(a.hostVeth);
  expect((await routes(node.name)).map((r) => r.dst)).not.toContain(a.ip);
  expect(node.reservations().map((r) => r.ip)).not.toContain(a.ip);
}

describe('DEL (check 11)', () => {
  it('removes the pod interface, host veth, host route and IPAM file; repeated DEL succeeds', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    expect(node.reservations()).toHaveLength(1);
    expectSilentSuccess(await node.del(a.pod, 'c1'));
    await expectGone(node, a);
    expect((await links(a.pod)).map((l) => l.ifname)).toEqual(['lo']);
    expectSilentSuccess(await node.del(a.pod, 'c1'));
    expectSilentSuccess(await node.del(a.pod, 'c1', { prevResult: a.res }));
  });

  it('with prevResult (as libcni sends it) cleans up the same way', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    expectSilentSuccess(await node.del(a.pod, 'c1', { prevResult: a.res }));
    await expectGone(node, a);
  });

  it('with CNI_NETNS="" succeeds and still cleans up the node', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    expectSilentSuccess(await node.del(a.pod, 'c1', { netns: '' }));
    await expectGone(node, a);
    expectSilentSuccess(await node.del(a.pod, 'c1', { netns: '' }));
  });

  it('with CNI_NETNS unset succeeds', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    expectSilentSuccess(await node.tabby(node.env('DEL', 'c1', '', 'eth0', { CNI_NETNS: undefined }), node.conf()));
    await expectGone(node, a);
  });

  it('after the netns was deleted succeeds and releases the address', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    await sb.deleteNetns(a.pod);
    expectSilentSuccess(await node.del(a.pod, 'c1'));
    await expectGone(node, a, false);
    expectSilentSuccess(await node.del(a.pod, 'c1'));
  });

  it('of an attachment that never existed succeeds', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    expectSilentSuccess(await node.del(pod, 'never'));
  });

  it('of one pod leaves the others alone', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node, 'ca');
    const b = await addedPod(node, 'cb');
    expectSilentSuccess(await node.del(a.pod, 'ca'));
    await expectGone(node, a);
    expect(await tabbyVeths(node.name)).toEqual([b.hostVeth]);
    expect(node.reservations()).toEqual([{ ip: b.ip, content: 'cb\r\neth0' }]);
    expectSilentSuccess(await node.check(b.pod, 'cb', { prevResult: b.res }));
  });
});

describe('CHECK (check 10)', () => {
  it('passes after ADD with empty stdout', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    expectSilentSuccess(await node.check(a.pod, 'c1', { prevResult: a.res }));
  });

  it('at 0.4.0 with a 0.4.0 prevResult passes', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const res = expectResult(await node.add(pod, 'c1', { version: '0.4.0' }));
    expectSilentSuccess(await node.check(pod, 'c1', { version: '0.4.0', prevResult: res }));
  });

  it('fails with code 106 naming eth0 once eth0 is deleted', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    await ip(a.pod, ['link', 'del', 'eth0']);
    expectCniError(await node.check(a.pod, 'c1', { prevResult: a.res }), 106, /eth0/);
  });

  it('fails with code 106 naming the route once the default route is deleted', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    await ip(a.pod, ['route', 'del', 'default']);
    expectCniError(await node.check(a.pod, 'c1', { prevResult: a.res }), 106, /route 0\.0\.0\.0\/0/);
  });

  it('fails with code 106 once the pod address is removed', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    await ip(a.pod, ['address', 'del', `${a.ip}/32`, 'dev', 'eth0']);
    expectCniError(await node.check(a.pod, 'c1', { prevResult: a.res }), 106, new RegExp(a.ip.replace(/\./g, '\\.')));
  });

  it('fails with code 106 once the host route is removed', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    await ip(node.name, ['route', 'del', a.ip, 'dev', a.hostVeth]);
    expectCniError(await node.check(a.pod, 'c1', { prevResult: a.res }), 106, /host route/);
  });

  it('fails once the IPAM reservation is gone', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    const fs = await import('node:fs');
    fs.unlinkSync(`${node.ipamDir}/${a.ip}`);
    const r = await node.check(a.pod, 'c1', { prevResult: a.res });
    expectCniError(r, 106, /reservation/);
  });

  it('at 0.3.1 is code 1', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    expectCniError(await node.check(a.pod, 'c1', { version: '0.3.1', prevResult: a.res }), 1);
  });

  it('without prevResult is an error', async () => {
    const node = await TestNode.create(sb);
    const a = await addedPod(node);
    const r = await node.check(a.pod, 'c1');
    expect(r.code, show(r)).not.toBe(0);
    expect(r.json?.msg, show(r)).toMatch(/prevResult/);
  });
});

describe('rollback (check 14)', () => {
  it('an ipam.type missing from CNI_PATH fails and leaves no veth', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const r = await node.add(pod, 'c1', { conf: node.conf({ ipam: { type: 'no-such-ipam' } }) });
    expectCniError(r, 7, /no-such-ipam/);
    expect(await tabbyVeths(node.name)).toEqual([]);
    expect((await links(pod)).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('an eth0 already in the pod fails, releases the address and leaves that eth0 untouched', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    await ip(pod, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
    const before = await link(pod, 'eth0');
    const r = await node.add(pod, 'c1');
    expect(r.code, show(r)).not.toBe(0);
    expect(r.json?.code, show(r)).toBeTypeOf('number');
    expect(r.json?.msg, show(r)).toMatch(/eth0|exists/);
    expect(node.reservations()).toEqual([]);
    expect(await tabbyVeths(node.name)).toEqual([]);
    expect(await link(pod, 'eth0')).toEqual(before);
    expect((await routes(pod)).length).toBe(0);
    // the attachment is free again: a clean ADD under another name works
    expectResult(await node.add(pod, 'c1', { ifname: 'eth1' }));
  });

  it('an IPAM failure (range exhausted) creates nothing', async () => {
    const node = await TestNode.create(sb);
    const conf = node.conf({ ipam: { ranges: [[{ subnet: '10.244.9.0/30' }]] } });
    const p1 = await sb.netns();
    const p2 = await sb.netns();
    expectResult(await node.add(p1, 'c1', { conf }));
    const r = await node.add(p2, 'c2', { conf });
    expectCniError(r, 101, /no IP addresses available/);
    expect(await tabbyVeths(node.name)).toHaveLength(1);
    expect((await links(p2)).map((l) => l.ifname)).toEqual(['lo']);
    expect(node.reservations().map((f) => f.content)).toEqual(['c1\r\neth0']);
  });

  it('a netns path that is not a namespace fails and keeps no reservation', async () => {
    const node = await TestNode.create(sb);
    const notNs = `${sb.tmpdir()}/plain-file`;
    (await import('node:fs')).writeFileSync(notNs, '');
    const r = await node.add('unused', 'c1', { netns: notNs });
    expect(r.code, show(r)).not.toBe(0);
    expect(r.json?.code, show(r)).toBeTypeOf('number');
    expect(node.reservations()).toEqual([]);
    expect(await tabbyVeths(node.name)).toEqual([]);
  });
});

describe('found in review', () => {
  it('a second ADD of a live attachment fails and leaves the pod untouched, even with an IPAM that allows it (static)', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    // the reference static plugin speaks up to 1.0.0
    const conf = node.conf({
      cniVersion: '1.0.0',
      ipam: {
        type: 'static',
        addresses: [{ address: '10.244.9.5/24' }],
        ranges: undefined,
        routes: undefined,
        dataDir: undefined,
      },
    });
    expectResult(await node.add(pod, 'S', { conf }));
    const before = await link(pod, 'eth0');
    const again = await node.add(pod, 'S', { conf });
    expect(again.code, show(again)).not.toBe(0);
    expect(JSON.parse(again.stdout).msg).toMatch(/already exists/);
    const after = await link(pod, 'eth0');
    expect(after?.ifindex).toBe(before?.ifindex);
    expect(after?.address).toBe(before?.address);
    expect(await tabbyVeths(node.name)).toHaveLength(1);
  });

  it('DEL releases the address even when ipam.resolvConf is gone since ADD', async () => {
    const node = await TestNode.create(sb);
    const resolv = `${sb.tmpdir()}/resolv.conf`;
    (await import('node:fs')).writeFileSync(resolv, 'nameserver 10.0.0.10\nsearch svc.local\n');
    const conf = node.conf({ ipam: { resolvConf: resolv } });
    const pod = await sb.netns();
    const res = expectResult(await node.add(pod, 'R', { conf }));
    expect(res.dns?.nameservers).toEqual(['10.0.0.10']);
    (await import('node:fs')).rmSync(resolv);
    expectSilentSuccess(await node.del(pod, 'R', { conf }));
    expect(node.reservations()).toEqual([]);
  });
});
