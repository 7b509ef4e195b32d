import { describe, expect, it } from 'vitest';
import {
  expectCniError,
  expectResult,
  expectSilentSuccess,
  GATEWAY_V4,
  HOST_VETH_MAC,
  podAddresses,
  show,
  TestNode,
} from '../helpers/cni';
import { ipJson, link, nsExec, nsPath, routes, tabbyVeths, useSandbox } from '../helpers/netns';

// cni-spec.md §6 checks 6, 7, 8, 9 and 12, and the Calico-style wiring itself.

const sb = useSandbox();

async function sysctl(ns: string, key: string): Promise<string> {
  const r = await nsExec(ns, '/bin/cat', [`/proc/sys/${key.replace(/\./g, '/')}`]);
  return r.stdout.trim();
}

describe('ADD result per spec version (check 6)', () => {
  it.each(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'])('%s', async (version) => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const r = await node.add(pod, 'c1', { version });
    const res = expectResult(r);
    expect(res.cniVersion).toBe(version);
    expect(res.ip4).toBeUndefined();

    const eth0 = res.interfaces.findIndex((i: any) => i.name === 'eth0' && i.sandbox === nsPath(pod));
    expect(eth0, show(r)).toBeGreaterThanOrEqual(0);
    expect(res.ips, show(r)).toHaveLength(1);
    for (const ip of res.ips) {
      expect(ip.interface, show(r)).toBe(eth0);
      expect(res.interfaces[ip.interface]).toBeDefined();
      if (version < '1.0.0') expect(ip.version, show(r)).toBe('4');
      else expect(ip, show(r)).not.toHaveProperty('version');
      expect(ip.address).toMatch(/^10\.244\.1\.\d+\/32$/);
      expect(ip.gateway).toBe(GATEWAY_V4);
    }
    // interface mtu is a 1.1 field
    if (version === '1.1.0') expect(res.interfaces[eth0].mtu).toBe(1450);
    else expect(res.interfaces[eth0]).not.toHaveProperty('mtu');
    expect(res.routes).toEqual([{ dst: '0.0.0.0/0', gw: GATEWAY_V4 }]);

    expect(await podAddresses(pod)).toEqual([res.ips[0].address]);
    expectSilentSuccess(await node.del(pod, 'c1', { version }));
  });
});

describe('ADD at legacy versions (check 7)', () => {
  it.each(['0.2.0', '0.1.0'])('%s gives the ip4 shape', async (version) => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const r = await node.add(pod, 'c1', { version });
    const res = expectResult(r);
    expect(res.cniVersion).toBe(version);
    expect(res).not.toHaveProperty('ips');
    expect(res).not.toHaveProperty('interfaces');
    expect(res.ip4.ip).toMatch(/^10\.244\.1\.\d+\/32$/);
    expect(res.ip4.gateway).toBe(GATEWAY_V4);
    expect(res.ip4.routes).toEqual([{ dst: '0.0.0.0/0', gw: GATEWAY_V4 }]);
    expect(res).not.toHaveProperty('ip6');
    expect(await podAddresses(pod)).toEqual([res.ip4.ip]);
    expectSilentSuccess(await node.del(pod, 'c1', { version }));
    expect(node.reservations()).toEqual([]);
  });
});

describe('pod wiring', () => {
  it('is Calico style on both ends', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const res = expectResult(await node.add(pod, 'c1'));
    const hostName = res.interfaces[0].name;
    const ip = res.ips[0].address.split('/')[0];
    expect(hostName).toMatch(/^tab[0-9a-f]{12}$/);
    expect(res.interfaces[0].mac).toBe(HOST_VETH_MAC);

    // pod side
    const eth0 = await link(pod, 'eth0');
    expect(eth0?.linkinfo?.info_kind).toBe('veth');
    expect(eth0?.mtu).toBe(1450);
    expect(eth0?.address).toBe(res.interfaces[1].mac);
    expect(eth0?.operstate).not.toBe('DOWN');
    const podRoutes = await routes(pod);
    expect(podRoutes).toContainEqual(expect.objectContaining({ dst: GATEWAY_V4, dev: 'eth0', scope: 'link' }));
    expect(podRoutes).toContainEqual(expect.objectContaining({ dst: 'default', gateway: GATEWAY_V4, dev: 'eth0' }));
    // the gateway's MAC is known up front, so the pod never depends on proxy ARP finding a node route
    const neigh = await ipJson<{ dst: string; lladdr?: string; state?: string[] }[]>(pod, [
      'neigh',
      'show',
      'dev',
      'eth0',
    ]);
    expect(neigh).toContainEqual(
      expect.objectContaining({ dst: GATEWAY_V4, lladdr: HOST_VETH_MAC, state: ['PERMANENT'] }),
    );

    // node side
    expect(await tabbyVeths(node.name)).toEqual([hostName]);
    const host = await link(node.name, hostName);
    expect(host?.address).toBe(HOST_VETH_MAC);
    expect(host?.mtu).toBe(1450);
    expect(await routes(node.name)).toContainEqual(expect.objectContaining({ dst: ip, dev: hostName, scope: 'link' }));
    expect(await sysctl(node.name, `net.ipv4.conf.${hostName}.proxy_arp`)).toBe('1');
    expect(await sysctl(node.name, 'net.ipv4.ip_forward')).toBe('1');

    // IPAM file, host-local format
    expect(node.reservations()).toEqual([{ ip, content: 'c1\r\neth0' }]);
  });

  it('consecutive pods get consecutive addresses, .1 (the gateway) skipped', async () => {
    const node = await TestNode.create(sb);
    const a = await sb.netns();
    const b = await sb.netns();
    const ra = expectResult(await node.add(a, 'ca'));
    const rb = expectResult(await node.add(b, 'cb'));
    expect(ra.ips[0].address).toBe('10.244.1.2/32');
    expect(rb.ips[0].address).toBe('10.244.1.3/32');
  });

  it('works with the reference host-local as ipam.type (delegation)', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    // Debian's host-local (v1.1.1) speaks up to 1.0.0
    const conf = node.conf({ cniVersion: '1.0.0', ipam: { type: 'host-local' } });
    const r = await node.add(pod, 'c1', { conf });
    const res = expectResult(r);
    const ip = res.ips[0].address.split('/')[0];
    expect(res.ips[0].address).toBe(`${ip}/32`);
    expect(await podAddresses(pod)).toEqual([`${ip}/32`]);
    expect(node.reservations()).toEqual([{ ip, content: 'c1\r\neth0' }]);
    expectSilentSuccess(await node.check(pod, 'c1', { conf, prevResult: res }));
    expectSilentSuccess(await node.del(pod, 'c1', { conf }));
    expect(node.reservations()).toEqual([]);
    expect(await tabbyVeths(node.name)).toEqual([]);
  });
});

describe('a second ADD for the same attachment (check 8)', () => {
  it('fails and leaves the first attachment as it was', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const first = expectResult(await node.add(pod, 'c1'));
    const before = {
      eth0: await link(pod, 'eth0'),
      veths: await tabbyVeths(node.name),
      files: node.reservations(),
      routes: await routes(node.name),
    };

    const second = await node.add(pod, 'c1');
    expect(second.code, show(second)).not.toBe(0);
    expect(second.json?.code, show(second)).toBeTypeOf('number');

    expect(await link(pod, 'eth0')).toEqual(before.eth0);
    expect(await tabbyVeths(node.name)).toEqual(before.veths);
    expect(node.reservations()).toEqual(before.files);
    expect(await routes(node.name)).toEqual(before.routes);
    expectSilentSuccess(await node.check(pod, 'c1', { prevResult: first }));
  });
});

describe('chained ADD with a prevResult (check 9)', () => {
  it('keeps every earlier interface, IP, route and DNS entry', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const prevResult = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'fake0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/elsewhere' }],
      ips: [{ interface: 0, address: '10.99.5.5/24', gateway: '10.99.5.1' }],
      routes: [{ dst: '192.168.77.0/24', gw: '10.99.5.1' }],
      dns: {
        nameservers: ['10.96.0.10'],
        domain: 'cluster.local',
        search: ['svc.cluster.local'],
        options: ['ndots:5'],
      },
    };
    const conf = {
      ...node.conf(),
      capabilities: { portMappings: true },
      args: { cni: { labels: [{ key: 'a', value: 'b' }] } },
      runtimeConfig: {},
    };
    const r = await node.add(pod, 'c1', { conf, prevResult });
    const res = expectResult(r);
    expect(res.interfaces[0]).toEqual(prevResult.interfaces[0]);
    expect(res.ips[0]).toEqual(prevResult.ips[0]);
    expect(res.routes).toContainEqual(prevResult.routes[0]);
    expect(res.dns).toEqual(prevResult.dns);

    // tabby's own entries are appended, with interface indexes that point at its eth0
    expect(res.interfaces.length).toBe(3);
    const eth0 = res.interfaces.findIndex((i: any) => i.name === 'eth0' && i.sandbox === nsPath(pod));
    expect(eth0).toBe(2);
    const own = res.ips.slice(1);
    expect(own).toHaveLength(1);
    expect(own[0].interface).toBe(eth0);
    for (const ip of res.ips) expect(res.interfaces[ip.interface]).toBeDefined();
    expect(res.routes).toContainEqual({ dst: '0.0.0.0/0', gw: GATEWAY_V4 });
    expect(await podAddresses(pod)).toEqual([own[0].address]);
  });

  it('converts an older prevResult into the request version', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const prevResult = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'fake0', sandbox: '/var/run/netns/elsewhere' }],
      ips: [{ version: '4', interface: 0, address: '10.99.5.5/24' }],
      routes: [{ dst: '192.168.77.0/24' }],
    };
    const res = expectResult(await node.add(pod, 'c1', { prevResult }));
    expect(res.cniVersion).toBe('1.1.0');
    expect(res.ips[0]).toEqual({ interface: 0, address: '10.99.5.5/24' });
    expect(res.routes).toContainEqual({ dst: '192.168.77.0/24' });
  });
});

describe('CNI_ARGS as runtimes send them (check 12)', () => {
  it.each([
    'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u',
    'K8S_POD_UID=u;K8S_POD_NAME=p;IgnoreUnknown=1;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_NAMESPACE=ns',
    'IgnoreUnknown=1;K8S_POD_NAME=p',
    'IgnoreUnknown=true;SOMETHING_ELSE=x',
  ])('%s', async (args) => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const res = expectResult(await node.add(pod, 'c1', { env: { CNI_ARGS: args } }));
    expect(await podAddresses(pod)).toEqual([res.ips[0].address]);
    expectSilentSuccess(await node.del(pod, 'c1', { env: { CNI_ARGS: args } }));
  });

  it('IP= asks for a specific address', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const res = expectResult(await node.add(pod, 'c1', { env: { CNI_ARGS: 'IgnoreUnknown=1;IP=10.244.1.77' } }));
    expect(res.ips[0].address).toBe('10.244.1.77/32');
    expect(await podAddresses(pod)).toEqual(['10.244.1.77/32']);
  });

  it('an unknown key without IgnoreUnknown is code 4 and creates nothing', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    expectCniError(await node.add(pod, 'c1', { env: { CNI_ARGS: 'FOO=bar' } }), 4, /FOO/);
    expect(await tabbyVeths(node.name)).toEqual([]);
    expect(node.reservations()).toEqual([]);
  });
});
