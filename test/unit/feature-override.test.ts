import { describe, expect, it } from 'vitest';
import { checksumOffloadBroken, parseFeatureOverride } from '../../conf/feature-override';
import { expectCniError } from './cni-error';

describe("featureDetectOverride (Felix's)", () => {
  it('parses Key=value lists and takes ChecksumOffloadBroken from them', () => {
    const o = parseFeatureOverride('SNATFullyRandom=true, ChecksumOffloadBroken=true', 'featureDetectOverride');
    expect([...o]).toEqual([
      ['SNATFullyRandom', 'true'],
      ['ChecksumOffloadBroken', 'true'],
    ]);
    expect(checksumOffloadBroken(o, 'f', '6.18.0')).toBe(true);
    expect(checksumOffloadBroken(parseFeatureOverride('ChecksumOffloadBroken=false', 'f'), 'f', '4.19.0')).toBe(false);
  });

  it('defaults as Felix detects it: broken only before kernel 5.7', () => {
    const none = parseFeatureOverride('', 'f');
    expect(checksumOffloadBroken(none, 'f', '5.6.19-generic')).toBe(true);
    expect(checksumOffloadBroken(none, 'f', '4.19.0')).toBe(true);
    expect(checksumOffloadBroken(none, 'f', '5.7.0')).toBe(false);
    expect(checksumOffloadBroken(none, 'f', '6.18.44-fc-v1045')).toBe(false);
  });

  it('names the field for a malformed entry or value', () => {
    expectCniError(
      () => parseFeatureOverride('ChecksumOffloadBroken', 'featureDetectOverride'),
      7,
      /featureDetectOverride.*not Key=value/,
    );
    expectCniError(
      () => checksumOffloadBroken(parseFeatureOverride('ChecksumOffloadBroken=yes', 'x'), 'featureDetectOverride'),
      7,
      /featureDetectOverride.*must be true or false, got "yes"/,
    );
  });
});
