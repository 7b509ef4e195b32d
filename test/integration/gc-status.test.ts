import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expectCniError, expectResult, expectSilentSuccess, TestNode } from '../helpers/cni';
import { link, routes, tabbyVeths, useSandbox } from '../helpers/netns';

// cni-spec.md §6 checks 13 (parallel ADDs) and 15 (GC, STATUS).

const sb = useSandbox();

describe('20 parallel ADDs (check 13)', () => {
  it('all succeed with distinct addresses, one host-local style file each; 20 parallel DELs clean up', async () => {
    const node = await TestNode.create(sb);
    const pods = await Promise.all(Array.from({ length: 20 }, () => sb.netns()));
    const cids = pods.map((_, i) => `par-${i}`);
    const runs = await Promise.all(pods.map((pod, i) => node.add(pod, cids[i])));
    const results = runs.map(expectResult);
    const ips = results.map((r) => r.ips[0].address.split('/')[0]);
    expect(new Set(ips).size).toBe(20);
    expect(new Set(results.map((r) => r.interfaces[0].name)).size).toBe(20);

    const files = node.reservations();
    expect(files.map((f) => f.ip).sort()).toEqual([...ips].sort());
    for (const [i, ip] of ips.entries()) expect(files.find((f) => f.ip === ip)?.content).toBe(`${cids[i]}\r\neth0`);
    expect(fs.readdirSync(node.ipamDir)).toContain('last_reserved_ip.0');
    expect(await tabbyVeths(node.name)).toHaveLength(20);

    const dels = await Promise.all(pods.map((pod, i) => node.del(pod, cids[i])));
    dels.forEach(expectSilentSuccess);
    expect(node.reservations()).toEqual([]);
    expect(await tabbyVeths(node.name)).toEqual([]);
  });
});

describe('GC (check 15)', () => {
  it('keeps valid attachments and removes the reservation and host veth of the others', async () => {
    const node = await TestNode.create(sb);
    const podA = await sb.netns();
    const podB = await sb.netns();
    const a = expectResult(await node.add(podA, 'A'));
    const b = expectResult(await node.add(podB, 'B'));
    const [ipA, ipB] = [a, b].map((r) => r.ips[0].address.split('/')[0]);
    const [vethA, vethB] = [a, b].map((r) => r.interfaces[0].name);

    const gc = await node.global('GC', {
      ...node.conf(),
      'cni.dev/valid-attachments': [{ containerID: 'A', ifname: 'eth0' }],
    });
    expectSilentSuccess(gc);

    expect(node.reservations()).toEqual([{ ip: ipA, content: 'A\r\neth0' }]);
    expect(await tabbyVeths(node.name)).toEqual([vethA]);
    expect((await routes(node.name)).map((r) => r.dst)).not.toContain(ipB);
    expect(await link(podB, 'eth0')).toBeUndefined();
    expect(vethB).not.toBe(vethA);
    // A is intact
    expect(await link(podA, 'eth0')).toBeDefined();
    expectSilentSuccess(await node.check(podA, 'A', { prevResult: a }));
    // and B's address can be handed out again
    const c = expectResult(await node.add(await sb.netns(), 'C', { env: { CNI_ARGS: `IP=${ipB}` } }));
    expect(c.ips[0].address).toBe(`${ipB}/32`);
  });

  it('honours the legacy cni.dev/attachments key', async () => {
    const node = await TestNode.create(sb);
    const podA = await sb.netns();
    const podB = await sb.netns();
    const a = expectResult(await node.add(podA, 'A'));
    expectResult(await node.add(podB, 'B'));
    expectSilentSuccess(
      await node.global('GC', { ...node.conf(), 'cni.dev/attachments': [{ containerID: 'A', ifname: 'eth0' }] }),
    );
    expect(node.reservations().map((r) => r.content)).toEqual(['A\r\neth0']);
    expect(await tabbyVeths(node.name)).toEqual([a.interfaces[0].name]);
  });

  it('leaves other networks alone', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const other = node.conf({ name: 'othernet', ipam: { ranges: [[{ subnet: '10.250.0.0/24' }]] } });
    const o = expectResult(await node.add(pod, 'X', { conf: other }));
    expectSilentSuccess(await node.global('GC', { ...node.conf(), 'cni.dev/valid-attachments': [] }));
    expect(await tabbyVeths(node.name)).toEqual([o.interfaces[0].name]);
    expect(fs.readdirSync(`${node.dataDir}/othernet`)).toContain(o.ips[0].address.split('/')[0]);
  });

  it('without any list (as cnitool gc sends it) removes every attachment of the network', async () => {
    const node = await TestNode.create(sb);
    expectResult(await node.add(await sb.netns(), 'A'));
    expectResult(await node.add(await sb.netns(), 'B'));
    expectSilentSuccess(await node.global('GC', node.conf()));
    expect(node.reservations()).toEqual([]);
    expect(await tabbyVeths(node.name)).toEqual([]);
  });

  it('removes a host veth whose reservation is already gone', async () => {
    const node = await TestNode.create(sb);
    const b = expectResult(await node.add(await sb.netns(), 'B'));
    fs.unlinkSync(`${node.ipamDir}/${b.ips[0].address.split('/')[0]}`);
    expect(await tabbyVeths(node.name)).toEqual([b.interfaces[0].name]);
    expectSilentSuccess(await node.global('GC', { ...node.conf(), 'cni.dev/valid-attachments': [] }));
    expect(await tabbyVeths(node.name)).toEqual([]);
  });

  it('at 1.0.0 is code 1', async () => {
    const node = await TestNode.create(sb);
    expectCniError(
      await node.global('GC', { ...node.conf({ cniVersion: '1.0.0' }), 'cni.dev/valid-attachments': [] }),
      1,
    );
  });
});

describe('STATUS (check 15)', () => {
  it('is silent success on a healthy node', async () => {
    const node = await TestNode.create(sb);
    expectSilentSuccess(await node.global('STATUS', node.conf()));
    expectResult(await node.add(await sb.netns(), 'c1'));
    expectSilentSuccess(await node.global('STATUS', node.conf()));
  });

  it('is code 50 once a /30 range is used up, and ok again after DEL', async () => {
    const node = await TestNode.create(sb);
    const conf = node.conf({ ipam: { ranges: [[{ subnet: '10.244.9.0/30' }]] } });
    expectSilentSuccess(await node.global('STATUS', conf));
    const pod = await sb.netns();
    expectResult(await node.add(pod, 'c1', { conf }));
    expectCniError(await node.global('STATUS', conf), 50);
    expectSilentSuccess(await node.del(pod, 'c1', { conf }));
    expectSilentSuccess(await node.global('STATUS', conf));
  });

  it('is code 50 when the data dir cannot be written', async () => {
    const node = await TestNode.create(sb);
    const file = `${sb.tmpdir()}/not-a-dir`;
    fs.writeFileSync(file, '');
    expectCniError(await node.global('STATUS', node.conf({ ipam: { dataDir: `${file}/data` } })), 50);
  });

  it('at 1.0.0 is code 1', async () => {
    const node = await TestNode.create(sb);
    expectCniError(await node.global('STATUS', node.conf({ cniVersion: '1.0.0' })), 1);
  });
});
