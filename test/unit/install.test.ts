import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BIN_DIR,
  DEFAULT_CONF_DIR,
  parseInstallArgs,
  selfExecutable,
  validateConflist,
} from '../../cmd/cli/install';
import { UsageError } from '../../cmd/cli/main';

describe('tabby install: flags', () => {
  it('defaults to /opt/cni/bin, /etc/cni/net.d and 10-tabby.conflist', () => {
    const { opts, watchSeconds } = parseInstallArgs(['--conflist', '/c']);
    expect(opts).toMatchObject({
      binDir: '/opt/cni/bin',
      binDirGiven: false,
      confDir: '/etc/cni/net.d',
      confName: '10-tabby.conflist',
      conflist: '/c',
      force: false,
      skipBinaries: false,
      clusterDest: '/etc/tabby/cluster.yaml',
    });
    expect([DEFAULT_BIN_DIR, DEFAULT_CONF_DIR]).toEqual(['/opt/cni/bin', '/etc/cni/net.d']);
    expect(watchSeconds).toBeUndefined();
  });

  it('takes values as the next argument or after =', () => {
    const { opts, watchSeconds } = parseInstallArgs([
      '--conflist=/c',
      '--cni-bin-dir',
      '/b',
      '--cni-conf-dir=/n',
      '--name',
      '00-x.conflist',
      '--force',
      '--watch',
      '30',
    ]);
    expect(opts).toMatchObject({ conflist: '/c', binDir: '/b', confDir: '/n', confName: '00-x.conflist', force: true });
    expect(watchSeconds).toBe(30);
  });

  it('rejects what it cannot use', () => {
    expect(() => parseInstallArgs([])).toThrow(UsageError);
    expect(() => parseInstallArgs(['--conflist', '/c', '--bogus'])).toThrow(/unknown flag --bogus/);
    expect(() => parseInstallArgs(['--conflist'])).toThrow(/needs a value/);
    expect(() => parseInstallArgs(['--conflist', '/c', '--name', 'x.txt'])).toThrow(/--name/);
    expect(() => parseInstallArgs(['--conflist', '/c', '--name', 'a/b.conflist'])).toThrow(/--name/);
    expect(() => parseInstallArgs(['--conflist', '/c', '--watch', '0'])).toThrow(/--watch/);
  });
});

describe('tabby install: the conflist', () => {
  const ok = { cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'tabby' }, { type: 'portmap' }] };
  it('returns the plugin types of a valid list', () => {
    expect(validateConflist(JSON.stringify(ok), 'f')).toEqual(['tabby', 'portmap']);
  });
  it('names the problem', () => {
    expect(() => validateConflist('[]', 'f')).toThrow(/f: not a JSON object/);
    expect(() => validateConflist(JSON.stringify({ ...ok, cniVersion: undefined }), 'f')).toThrow(/cniVersion/);
    expect(() => validateConflist(JSON.stringify({ ...ok, plugins: [{}] }), 'f')).toThrow(/plugins\[0\] has no "type"/);
    expect(() => validateConflist(JSON.stringify({ ...ok, plugins: [{ type: 'ptp' }] }), 'f')).toThrow(
      /no plugin of type "tabby"/,
    );
  });
});

it('refuses to copy itself when it is not the single executable (node running a script)', () => {
  expect(() => selfExecutable()).toThrow(/not tabby's single executable/);
});

it('--node-name and --reconcile', () => {
  expect(parseInstallArgs(['--conflist', '/c', '--node-name', 'node-a', '--reconcile']).opts).toMatchObject({
    nodeName: 'node-a',
    reconcile: true,
  });
  expect(parseInstallArgs(['--conflist', '/c']).opts).toMatchObject({ nodeName: undefined, reconcile: false });
});
