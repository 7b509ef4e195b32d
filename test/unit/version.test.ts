import { describe, expect, it } from 'vitest';
import {
  compareVersions,
  isSupported,
  requireCommandVersion,
  requireSupported,
  SUPPORTED_VERSIONS,
} from '../../lib/cni/version';
import { expectCniError } from './cni-error';

describe('compareVersions', () => {
  it('orders numerically, not lexically', () => {
    expect(compareVersions('0.4.0', '0.3.1')).toBeGreaterThan(0);
    expect(compareVersions('0.3.1', '0.4.0')).toBeLessThan(0);
    expect(compareVersions('1.1.0', '1.1.0')).toBe(0);
    expect(compareVersions('0.10.0', '0.4.0')).toBeGreaterThan(0);
    expect(compareVersions('1.0.0', '0.99.99')).toBeGreaterThan(0);
  });

  it('rejects malformed versions with code 1', () => {
    expectCniError(() => compareVersions('1.0', '1.0.0'), 1, /invalid cniVersion "1.0"/);
    expectCniError(() => compareVersions('1.0.0', 'v1.0.0'), 1);
  });
});

describe('requireSupported', () => {
  it('accepts every spec version from 0.1.0 to 1.1.0', () => {
    expect([...SUPPORTED_VERSIONS]).toEqual(['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    for (const v of SUPPORTED_VERSIONS) expect(() => requireSupported(v)).not.toThrow();
  });

  it.each(['0.5.0', '1.2.0', '2.0.0', '', '1.0'])('rejects %j with code 1', (v) => {
    expect(isSupported(v)).toBe(false);
    expectCniError(() => requireSupported(v), 1, /incompatible CNI versions/);
  });
});

describe('requireCommandVersion', () => {
  it('CHECK needs 0.4.0', () => {
    expectCniError(() => requireCommandVersion('CHECK', '0.3.1'), 1, /CHECK.*0\.4\.0/);
    expect(() => requireCommandVersion('CHECK', '0.4.0')).not.toThrow();
    expect(() => requireCommandVersion('CHECK', '1.0.0')).not.toThrow();
  });

  it.each(['GC', 'STATUS'])('%s needs 1.1.0', (cmd) => {
    expectCniError(() => requireCommandVersion(cmd, '1.0.0'), 1, new RegExp(`${cmd}.*1\\.1\\.0`));
    expectCniError(() => requireCommandVersion(cmd, '0.4.0'), 1);
    expect(() => requireCommandVersion(cmd, '1.1.0')).not.toThrow();
  });

  it('ADD and DEL work at every version', () => {
    expect(() => requireCommandVersion('ADD', '0.1.0')).not.toThrow();
    expect(() => requireCommandVersion('DEL', '0.1.0')).not.toThrow();
  });
});
