import { describe, expect, it } from 'vitest';
import { readEnv, validateIfname } from '../../lib/cni/env';
import { expectCniError } from './cni-error';

const base = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc123',
  CNI_NETNS: '/var/run/netns/c1',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
};

describe('readEnv', () => {
  it('reads a complete ADD environment', () => {
    const e = readEnv({ ...base, CNI_ARGS: 'K8S_POD_NAME=p' });
    expect(e).toMatchObject({ command: 'ADD', containerId: 'abc123', netns: '/var/run/netns/c1', ifname: 'eth0' });
    expect(e.path).toEqual(['/opt/cni/bin', '/usr/lib/cni']);
    expect(e.args.get('K8S_POD_NAME')).toBe('p');
  });

  it('names every missing variable with code 4', () => {
    const err = expectCniError(() => readEnv({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_IFNAME: 'eth0' }), 4);
    expect(err.message).toBe('required env variables [CNI_NETNS,CNI_PATH] missing');
  });

  it('treats empty as missing', () => {
    expectCniError(() => readEnv({ ...base, CNI_CONTAINERID: '' }), 4, /\[CNI_CONTAINERID\]/);
  });

  it.each(['CHECK', 'ADD'])('%s requires CNI_NETNS', (cmd) => {
    expectCniError(() => readEnv({ ...base, CNI_COMMAND: cmd, CNI_NETNS: '' }), 4, /CNI_NETNS/);
  });

  it('DEL allows an empty CNI_NETNS', () => {
    expect(readEnv({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns).toBe('');
    expect(readEnv({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }).netns).toBe('');
  });

  it('GC needs only CNI_PATH; STATUS and VERSION need nothing', () => {
    expect(readEnv({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin', CNI_CONTAINERID: '', CNI_IFNAME: '' }).command).toBe(
      'GC',
    );
    expectCniError(() => readEnv({ CNI_COMMAND: 'GC' }), 4, /\[CNI_PATH\]/);
    expect(readEnv({ CNI_COMMAND: 'STATUS' }).command).toBe('STATUS');
    expect(readEnv({ CNI_COMMAND: 'VERSION', CNI_ARGS: 'garbage' }).command).toBe('VERSION');
  });

  it('rejects an unknown or missing command with code 4', () => {
    expectCniError(() => readEnv({ ...base, CNI_COMMAND: 'add' }), 4, /unknown CNI_COMMAND: add/);
    expectCniError(() => readEnv({}), 4, /unknown CNI_COMMAND/);
  });

  it('rejects bad CNI_ARGS with code 4', () => {
    expectCniError(() => readEnv({ ...base, CNI_ARGS: 'FOO=1' }), 4, /unknown args/);
  });

  it.each(['a', 'abc_1.2-X', '0123456789abcdef'])('accepts container ID %j', (id) => {
    expect(readEnv({ ...base, CNI_CONTAINERID: id }).containerId).toBe(id);
  });

  it.each(['-abc', '.abc', '_abc', 'a b', 'a/b', 'a:b', 'é'])('rejects container ID %j with code 4', (id) => {
    expectCniError(() => readEnv({ ...base, CNI_CONTAINERID: id }), 4, /CNI_CONTAINERID/);
  });

  it.each(['a', 'eth0', 'x'.repeat(15), 'net-1.2_x'])('accepts ifname %j', (name) => {
    expect(readEnv({ ...base, CNI_IFNAME: name }).ifname).toBe(name);
  });

  it.each(['x'.repeat(16), 'ééééééééé', '.', '..', 'a/b', 'a:b', 'a b', 'a\tb', 'a\nb'])(
    'rejects ifname %j with code 4',
    (name) => {
      expectCniError(() => readEnv({ ...base, CNI_IFNAME: name }), 4, /CNI_IFNAME/);
      expectCniError(() => readEnv({ ...base, CNI_COMMAND: 'DEL', CNI_IFNAME: name }), 4, /CNI_IFNAME/);
    },
  );
});

describe('validateIfname', () => {
  it('counts bytes, not characters', () => {
    expect(validateIfname('é'.repeat(7))).toBeUndefined(); // 14 bytes
    expect(validateIfname('é'.repeat(8))).toMatch(/longer than 15 bytes/); // 16 bytes
  });

  it('rejects the empty name', () => {
    expect(validateIfname('')).toMatch(/empty/);
  });
});
