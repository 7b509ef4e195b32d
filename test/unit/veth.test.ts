import { describe, expect, it } from 'vitest';
import { GATEWAY_V4, GATEWAY_V6, hostVethName, parseVethAlias, podRoutes, vethAlias } from '../../lib/dataplane/veth';
import { validateIfname } from '../../lib/cni/env';

describe('hostVethName', () => {
  const id = '4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa00';

  it('is "tab" and 12 hex digits, a valid interface name', () => {
    const n = hostVethName(id, 'eth0');
    expect(n).toMatch(/^tab[0-9a-f]{12}$/);
    expect(n.length).toBe(15);
    expect(validateIfname(n)).toBeUndefined();
  });

  it('is stable, and depends on both container ID and ifname', () => {
    expect(hostVethName(id, 'eth0')).toBe(hostVethName(id, 'eth0'));
    expect(hostVethName(id, 'eth0')).not.toBe(hostVethName(id, 'eth1'));
    expect(hostVethName(id, 'eth0')).not.toBe(hostVethName(id + '1', 'eth0'));
  });

  it('is sha1 of "<containerID>/<ifname>"', () => {
    expect(hostVethName('c1', 'eth0')).toBe('tab9d48f381831a'); // printf 'c1/eth0' | sha1sum
  });
});

describe('veth alias', () => {
  it('round-trips the owner', () => {
    const owner = { network: 'k8s-pod-network', containerId: 'abc_1.2-x', ifname: 'eth0' };
    expect(vethAlias(owner)).toBe('tabby:k8s-pod-network:abc_1.2-x:eth0');
    expect(parseVethAlias(vethAlias(owner))).toEqual(owner);
  });

  it.each([undefined, '', 'calico', 'tabby:', 'tabby:net:c1', 'tabby::c1:eth0', 'xtabby:net:c1:eth0'])(
    'rejects %j',
    (a) => {
      expect(parseVethAlias(a)).toBeUndefined();
    },
  );
});

describe('podRoutes', () => {
  it('gives a default route per family through the link-local gateway', () => {
    expect(
      podRoutes({
        addresses: [
          { ip: '10.0.0.2', family: 4 },
          { ip: 'fd00::2', family: 6 },
        ],
        routes: [],
      }),
    ).toEqual([
      { dst: '0.0.0.0/0', gw: GATEWAY_V4 },
      { dst: '::/0', gw: GATEWAY_V6 },
    ]);
    expect(GATEWAY_V4).toBe('169.254.1.1');
  });

  it("adds configured routes of the pod's families only, once each", () => {
    expect(
      podRoutes({
        addresses: [{ ip: '10.0.0.2', family: 4 }],
        routes: ['10.96.0.0/12', 'fd00::/8', '0.0.0.0/0', '10.96.0.0/12'],
      }),
    ).toEqual([
      { dst: '0.0.0.0/0', gw: GATEWAY_V4 },
      { dst: '10.96.0.0/12', gw: GATEWAY_V4 },
    ]);
  });
});
