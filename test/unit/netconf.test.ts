import { describe, expect, it } from 'vitest';
import { parseNetConf, validAttachments, validMtu } from '../../conf/netconf';
import { expectCniError } from './cni-error';

const base = { cniVersion: '1.0.0', name: 'net1', type: 'tabby', ipam: { type: 'tabby-ipam' } };

describe('parseNetConf', () => {
  it('says a whole conflist piped in by hand is a list, not "ipam: is required"', () => {
    const list = { cniVersion: '1.1.0', name: 'tabbynet', plugins: [{ type: 'tabby', ipam: { type: 'tabby-ipam' } }] };
    expectCniError(() => parseNetConf(list, '1.1.0'), 7, /plugins: this is a network configuration list/);
  });

  it('applies defaults', () => {
    const c = parseNetConf({ ...base }, '1.0.0');
    expect(c).toMatchObject({ name: 'net1', cniVersion: '1.0.0', mtu: 0, logLevel: 'info', ipamType: 'tabby-ipam' });
    expect(c.logFile).toBeUndefined();
    expect(c.dns).toBeUndefined();
    expect(c.prevResult).toBeUndefined();
  });

  it('reads every field', () => {
    const c = parseNetConf(
      { ...base, mtu: 1450, logFile: '/var/log/tabby.log', logLevel: 'debug', dns: { nameservers: ['10.96.0.10'] } },
      '1.1.0',
    );
    expect(c).toMatchObject({
      mtu: 1450,
      logFile: '/var/log/tabby.log',
      logLevel: 'debug',
      dns: { nameservers: ['10.96.0.10'] },
    });
  });

  it('treats an empty dns object as absent', () => {
    expect(parseNetConf({ ...base, dns: {} }, '1.0.0').dns).toBeUndefined();
  });

  it('converts a prevResult of any version', () => {
    const c = parseNetConf(
      { ...base, prevResult: { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.2/24' }] } },
      '0.4.0',
    );
    expect(c.prevResult).toEqual({ ips: [{ address: '10.0.0.2/24' }] });
    expectCniError(() => parseNetConf({ ...base, prevResult: 'x' }, '1.0.0'), 6, /prevResult/);
  });

  it.each([
    [{ ipam: undefined }, 'invalid config: ipam: is required'],
    [{ ipam: 'host-local' }, 'invalid config: ipam: must be an object'],
    [{ ipam: {} }, 'invalid config: ipam.type: is required'],
    [{ name: '' }, 'invalid config: name: is required'],
    [{ logLevel: 'verbose' }, 'invalid config: logLevel: must be one of error, warn, info, debug'],
    [{ logFile: 'tabby.log' }, 'invalid config: logFile: must be an absolute path'],
    [{ mtu: '1500' }, 'invalid config: mtu: must be an integer'],
    [{ mtu: 1500.5 }, 'invalid config: mtu: must be an integer'],
    [{ mtu: 70000 }, 'invalid config: mtu: must be between 0 and 65535'],
    [{ dns: [] }, 'invalid config: dns: must be an object'],
  ])('rejects %j naming the field', (over, msg) => {
    expectCniError(() => parseNetConf({ ...base, ...over }, '1.0.0'), 7, msg);
  });
});

describe('validMtu', () => {
  it('allows 0 (auto) and at least 68', () => {
    expect(() => validMtu(0)).not.toThrow();
    expect(() => validMtu(68)).not.toThrow();
    expectCniError(() => validMtu(67), 7, /mtu/);
  });
});

describe('validAttachments', () => {
  it('reads cni.dev/valid-attachments', () => {
    expect(
      validAttachments({
        'cni.dev/valid-attachments': [
          { containerID: 'c1', ifname: 'eth0' },
          { containerID: 'c2', ifname: 'net1' },
        ],
      }),
    ).toEqual([
      { containerId: 'c1', ifname: 'eth0' },
      { containerId: 'c2', ifname: 'net1' },
    ]);
  });

  it('falls back to the legacy cni.dev/attachments, preferring the new key', () => {
    expect(validAttachments({ 'cni.dev/attachments': [{ containerID: 'c1', ifname: 'eth0' }] })).toEqual([
      { containerId: 'c1', ifname: 'eth0' },
    ]);
    expect(
      validAttachments({
        'cni.dev/valid-attachments': [],
        'cni.dev/attachments': [{ containerID: 'c1', ifname: 'eth0' }],
      }),
    ).toEqual([]);
  });

  it('with no list, nothing is valid', () => {
    expect(validAttachments({})).toEqual([]);
    expect(validAttachments({ 'cni.dev/valid-attachments': null })).toEqual([]);
  });

  it('names a malformed entry', () => {
    expectCniError(
      () => validAttachments({ 'cni.dev/valid-attachments': {} }),
      7,
      'cni.dev/valid-attachments: must be a list',
    );
    expectCniError(
      () => validAttachments({ 'cni.dev/valid-attachments': ['x'] }),
      7,
      'cni.dev/valid-attachments[0]: must be an object',
    );
    expectCniError(
      () =>
        validAttachments({
          'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }, { containerID: 'c2' }],
        }),
      7,
      'cni.dev/valid-attachments[1].ifname: is required',
    );
  });
});
