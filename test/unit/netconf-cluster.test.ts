import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { DEFAULT_STATE_DIR, parseNetConf } from '../../conf/netconf';
import { expectCniError } from './cni-error';

const base = { cniVersion: '1.0.0', name: 'net1', type: 'tabby', ipam: { type: 'tabby-ipam' } };
const cluster = (extra: Record<string, unknown>) =>
  parseNetConf({ ...base, cluster: '/etc/tabby/cluster.yaml', ...extra }, '1.0.0').cluster;

describe('parseNetConf cluster keys', () => {
  it('has no cluster without "cluster" (or with an empty one)', () => {
    expect(parseNetConf({ ...base }, '1.0.0').cluster).toBeUndefined();
    expect(parseNetConf({ ...base, cluster: '', nodeName: 'x' }, '1.0.0').cluster).toBeUndefined();
  });

  it('defaults nodeName to the host name, natBackend to auto, stateDir to /run/tabby', () => {
    expect(cluster({})).toEqual({
      file: '/etc/tabby/cluster.yaml',
      nodeName: hostname(),
      ipAutodetectionMethod: undefined,
      natBackend: 'auto',
      stateDir: '/run/tabby',
      checksumOffloadBroken: false, // this kernel is newer than 5.7
    });
    expect(DEFAULT_STATE_DIR).toBe('/run/tabby');
  });

  it('reads every key', () => {
    expect(
      cluster({
        nodeName: 'node-a',
        ipAutodetectionMethod: 'interface=eth.*',
        natBackend: 'iptables',
        stateDir: '/tmp/tabby-a',
        featureDetectOverride: 'ChecksumOffloadBroken=true',
      }),
    ).toEqual({
      file: '/etc/tabby/cluster.yaml',
      nodeName: 'node-a',
      ipAutodetectionMethod: 'interface=eth.*',
      natBackend: 'iptables',
      stateDir: '/tmp/tabby-a',
      checksumOffloadBroken: true,
    });
    expect(cluster({ natBackend: 'nftables' })?.natBackend).toBe('nftables');
    expect(cluster({ ipAutodetectionMethodV6: 'interface=eth1' })?.ipAutodetectionMethodV6).toBe('interface=eth1');
  });

  it.each([
    [{ cluster: 'cluster.yaml' }, /invalid config: cluster: must be an absolute path/],
    [{ cluster: 42 }, /cluster: must be a string/],
    [{ natBackend: 'pf' }, /natBackend: must be one of auto, nftables, iptables, got "pf"/],
    [{ stateDir: 'run/tabby' }, /stateDir: must be an absolute path/],
    [
      { ipAutodetectionMethod: 'can-reach=example.com' },
      /ipAutodetectionMethod: can-reach=example\.com: not an IP address/,
    ],
    [{ ipAutodetectionMethod: 'magic' }, /ipAutodetectionMethod: unknown method "magic"/],
    [{ ipAutodetectionMethodV6: 'cidrs=x' }, /ipAutodetectionMethodV6: cidrs=x: not a list of CIDRs/],
    [{ nodeName: 7 }, /nodeName: must be a string/],
  ])('rejects %j', (extra, msg) => {
    expectCniError(() => cluster(extra), 7, msg);
  });
});
