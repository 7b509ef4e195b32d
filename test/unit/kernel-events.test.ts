import { describe, expect, it } from 'vitest';
import { kernelEventReason } from '../../lib/agent/watch';

// Lines as `ip -o monitor link address` prints them (iproute2 6.1), and whether the agent resyncs.
describe('kernel events that wake the agent', () => {
  it.each([
    [
      'Deleted 4: vxlan.tabby: <BROADCAST,MULTICAST> mtu 1450 qdisc noop state DOWN group default',
      'vxlan.tabby was deleted',
    ],
    ['Deleted 9: tunl0@NONE: <NOARP> mtu 1480 qdisc noop state DOWN', 'tunl0 was deleted'],
    [
      '3: eth0    inet 192.168.10.11/24 scope global eth0\\       valid_lft forever preferred_lft forever',
      'address added to eth0',
    ],
    [
      'Deleted 3: eth0    inet 192.168.10.11/24 scope global eth0\\       valid_lft forever',
      'address removed from eth0',
    ],
    ['3: eth0    inet6 2001:db8:10::11/64 scope global \\       valid_lft forever', 'address added to eth0'],
    ['Deleted 5: vxlan-v6.tabby: <BROADCAST,MULTICAST> mtu 1430 qdisc noop state DOWN', 'vxlan-v6.tabby was deleted'],
  ])('%s -> %s', (line, why) => {
    expect(kernelEventReason(line)).toBe(why);
  });

  it.each([
    ['4: vxlan.tabby: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN'], // tabby's own change
    ['4: vxlan.tabby    inet 10.244.1.1/32 scope global vxlan.tabby'], // its tunnel address
    ['Deleted 12: tab1a2b3c4d5e6f@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450'], // a pod went
    ['7: kube-ipvs0    inet 10.96.0.10/32 scope global kube-ipvs0'], // kube-proxy IPVS: a Service
    ['8: docker0    inet 172.17.0.1/16 scope global docker0'],
    ['3: eth0    inet6 fe80::1/64 scope link'], // link-local: every link has one, never the node's address
    ['5: vxlan-v6.tabby    inet6 fd00:10::1/128 scope global'], // the IPv6 tunnel address
    ['garbage'],
  ])('ignores %s', (line) => {
    expect(kernelEventReason(line)).toBeUndefined();
  });
});
