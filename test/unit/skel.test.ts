import { describe, expect, it } from 'vitest';
import { parseConfig, versionInfo } from '../../lib/cni/skel';
import { expectCniError } from './cni-error';

describe('parseConfig', () => {
  it('parses a config', () => {
    const { cniVersion, config } = parseConfig('{"cniVersion":"1.0.0","name":"net1","type":"tabby"}', true);
    expect(cniVersion).toBe('1.0.0');
    expect(config.type).toBe('tabby');
  });

  it('treats a missing or empty cniVersion as 0.1.0', () => {
    expect(parseConfig('{"name":"n"}', true).cniVersion).toBe('0.1.0');
    expect(parseConfig('{"name":"n","cniVersion":""}', true).cniVersion).toBe('0.1.0');
  });

  it.each(['', '{', 'null', '[]', '"x"', '{"name":"n",}'])('rejects malformed JSON %j with code 6', (s) => {
    expectCniError(() => parseConfig(s, true), 6, /error decoding network configuration/);
  });

  it('rejects a non-string cniVersion with code 6', () => {
    expectCniError(() => parseConfig('{"cniVersion":1,"name":"n"}', true), 6);
  });

  it.each(['0.5.0', '1.2.0', '2.0.0', 'abc'])('rejects unknown version %j with code 1', (v) => {
    expectCniError(
      () => parseConfig(JSON.stringify({ cniVersion: v, name: 'n' }), true),
      1,
      /incompatible CNI versions/,
    );
  });

  it.each([undefined, '', 'bad name', '-net', 'a/b', 42])('rejects network name %j with code 7', (name) => {
    expectCniError(() => parseConfig(JSON.stringify({ cniVersion: '1.0.0', name }), true), 7);
  });

  it('does not check the name when not needed', () => {
    expect(parseConfig('{"cniVersion":"1.1.0"}', false).cniVersion).toBe('1.1.0');
  });
});

describe('versionInfo', () => {
  it('echoes a supported requested version and lists all versions', () => {
    expect(versionInfo('0.4.0')).toEqual({
      cniVersion: '0.4.0',
      supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
  });

  it('falls back to the current version', () => {
    expect(versionInfo(undefined).cniVersion).toBe('1.1.0');
    expect(versionInfo('9.9.9').cniVersion).toBe('1.1.0');
  });
});
