import { describe, expect, it } from 'vitest';
import { expectResult, expectSilentSuccess, podAddresses, TestNode } from '../helpers/cni';
import { ping, routes, RunResult, useSandbox } from '../helpers/netns';

// Traffic through the Calico-style wiring: pod <-> pod on one node, node <-> pod, IPv4 and IPv6.

const sb = useSandbox();

const NODE_ADDR = '10.99.0.1';
const shown = (r: RunResult): string => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

async function expectPing(from: string, to: string): Promise<void> {
  const r = await ping(from, to);
  expect(r.code, `ping ${to} from ${from}: ${shown(r)}`).toBe(0);
}

const bare = (cidr: string): string => cidr.split('/')[0];

describe('IPv4', () => {
  it('two pods reach each other, the node reaches both, and a pod reaches the node', async () => {
    const node = await TestNode.create(sb);
    await node.addLoAddress(`${NODE_ADDR}/32`);
    const podA = await sb.netns();
    const podB = await sb.netns();
    const a = bare(expectResult(await node.add(podA, 'A')).ips[0].address);
    const b = bare(expectResult(await node.add(podB, 'B')).ips[0].address);

    await expectPing(podA, b);
    await expectPing(podB, a);
    await expectPing(node.name, a);
    await expectPing(node.name, b);
    await expectPing(podA, NODE_ADDR);

    // after DEL of B, A still reaches the node
    expectSilentSuccess(await node.del(podB, 'B'));
    await expectPing(podA, NODE_ADDR);
  });

  it('a pod with two tabby interfaces (eth0 and net1) is reachable on both; eth0 keeps the default route', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const peer = await sb.netns();
    const a0 = bare(expectResult(await node.add(pod, 'M', { ifname: 'eth0' })).ips[0].address);
    const a1 = bare(expectResult(await node.add(pod, 'M', { ifname: 'net1' })).ips[0].address);
    const p = bare(expectResult(await node.add(peer, 'P')).ips[0].address);
    await expectPing(peer, a0);
    await expectPing(peer, a1);
    await expectPing(pod, p);
    const def = (await routes(pod)).filter((r) => r.dst === 'default');
    expect(def[0]?.dev).toBe('eth0');
    expectSilentSuccess(await node.del(pod, 'M', { ifname: 'net1' }));
    await expectPing(peer, a0);
    await expectPing(pod, p);
  });

  it('pods reach each other on a node with no address of its own', async () => {
    const node = await TestNode.create(sb);
    const podA = await sb.netns();
    const podB = await sb.netns();
    const a = bare(expectResult(await node.add(podA, 'A')).ips[0].address);
    const b = bare(expectResult(await node.add(podB, 'B')).ips[0].address);
    await expectPing(podA, b);
    await expectPing(podB, a);
  });
});

describe('dual stack', () => {
  it('each pod gets an IPv4 and an IPv6 address and the pods ping each other over both', async () => {
    const node = await TestNode.create(sb);
    const conf = node.conf({
      ipam: {
        ranges: [[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:10:244:1::/64' }]],
        routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
      },
    });
    const podA = await sb.netns();
    const podB = await sb.netns();
    const ra = expectResult(await node.add(podA, 'A', { conf }));
    const rb = expectResult(await node.add(podB, 'B', { conf }));
    for (const r of [ra, rb]) {
      expect(r.ips.map((i: any) => i.address)).toEqual([
        expect.stringMatching(/^10\.244\.1\.\d+\/32$/),
        expect.stringMatching(/^fd00:10:244:1::[0-9a-f]+\/128$/),
      ]);
      expect(r.ips.every((i: any) => i.interface === 1)).toBe(true);
      expect(r.routes).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ dst: '0.0.0.0/0' }),
          expect.objectContaining({ dst: '::/0' }),
        ]),
      );
    }
    expect(await podAddresses(podA)).toEqual(expect.arrayContaining(ra.ips.map((i: any) => i.address)));
    expect((await routes(podA, 6)).map((r) => r.dst)).toContain('default');
    expect(
      node
        .reservations()
        .map((f) => f.ip)
        .sort(),
    ).toEqual([...ra.ips, ...rb.ips].map((i: any) => bare(i.address)).sort());

    const [a4, a6] = ra.ips.map((i: any) => bare(i.address));
    const [b4, b6] = rb.ips.map((i: any) => bare(i.address));
    await expectPing(podA, b6);
    await expectPing(podB, a6);
    await expectPing(podA, b4);
    await expectPing(podB, a4);
    await expectPing(node.name, a6);

    expectSilentSuccess(await node.check(podA, 'A', { conf, prevResult: ra }));

    // a second dual-stack tabby interface in pod A: both families route behind eth0's
    const rn = expectResult(await node.add(podA, 'A', { conf, ifname: 'net1' }));
    const [n4, n6] = rn.ips.map((i: any) => bare(i.address));
    await expectPing(podB, n4);
    await expectPing(podB, n6);
    expect((await routes(podA, 6)).find((r) => r.dst === 'default')?.dev).toBe('eth0');
    expectSilentSuccess(await node.check(podA, 'A', { conf, prevResult: rn, ifname: 'net1' }));
    expectSilentSuccess(await node.del(podA, 'A', { conf, ifname: 'net1' }));
    await expectPing(podB, a6);

    expectSilentSuccess(await node.del(podA, 'A', { conf }));
    expectSilentSuccess(await node.del(podB, 'B', { conf }));
    expect(node.reservations()).toEqual([]);
  });

  it('an IPv6-only network works', async () => {
    const node = await TestNode.create(sb);
    const conf = node.conf({ ipam: { ranges: [[{ subnet: 'fd00:10:244:2::/64' }]], routes: [] } });
    const podA = await sb.netns();
    const podB = await sb.netns();
    const ra = expectResult(await node.add(podA, 'A', { conf }));
    const rb = expectResult(await node.add(podB, 'B', { conf }));
    expect(ra.ips).toHaveLength(1);
    expect(ra.routes).toEqual([{ dst: '::/0', gw: expect.stringMatching(/^fe80:/) }]);
    await expectPing(podA, bare(rb.ips[0].address));
    expectSilentSuccess(await node.check(podB, 'B', { conf, prevResult: rb }));
  });
});
