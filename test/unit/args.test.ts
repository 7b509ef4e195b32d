import { describe, expect, it } from 'vitest';
import { parseCniArgs } from '../../lib/cni/args';
import { expectCniError } from './cni-error';

describe('parseCniArgs', () => {
  it('empty or missing CNI_ARGS gives no values', () => {
    expect(parseCniArgs(undefined).values.size).toBe(0);
    expect(parseCniArgs('').values.size).toBe(0);
    expect(parseCniArgs('').ignoreUnknown).toBe(false);
  });

  it('accepts the K8S_* keys in any order without IgnoreUnknown', () => {
    const a = parseCniArgs('K8S_POD_UID=u;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c;K8S_POD_NAMESPACE=ns');
    expect(a.get('K8S_POD_NAME')).toBe('p');
    expect(a.get('K8S_POD_NAMESPACE')).toBe('ns');
    expect(a.get('K8S_POD_INFRA_CONTAINER_ID')).toBe('c');
    expect(a.get('K8S_POD_UID')).toBe('u');
    expect(a.ignoreUnknown).toBe(false);
  });

  it('reads IP=', () => {
    expect(parseCniArgs('IP=10.0.0.5').get('IP')).toBe('10.0.0.5');
    expect(parseCniArgs('IP=').get('IP')).toBe('');
  });

  it('rejects unknown keys with code 4 naming them', () => {
    expectCniError(() => parseCniArgs('FOO=1;K8S_POD_NAME=x;BAR=2'), 4, /unknown args \[FOO, BAR\]/);
    expectCniError(() => parseCniArgs('ip=10.0.0.5'), 4, /ip/); // keys are case-sensitive
    expectCniError(() => parseCniArgs('FOO=1;IgnoreUnknown=0'), 4);
    expectCniError(() => parseCniArgs('FOO=1;IgnoreUnknown=false'), 4);
  });

  it.each(['1', 'true', 'TRUE', 'True'])('IgnoreUnknown=%s allows unknown keys, wherever it appears', (v) => {
    const a = parseCniArgs(`FOO=1;IgnoreUnknown=${v};BAR=x`);
    expect(a.ignoreUnknown).toBe(true);
    expect(a.get('FOO')).toBe('1');
    expect(a.get('BAR')).toBe('x');
  });

  it.each(['FOO', 'A=b=c', 'IP=1.2.3.4;x', '=v'])('rejects the malformed pair in %j with code 4', (raw) => {
    expectCniError(() => parseCniArgs(`IgnoreUnknown=1;${raw}`), 4, /CNI_ARGS/);
  });

  it('tolerates empty pairs from stray semicolons', () => {
    expect(parseCniArgs('IP=10.0.0.5;').get('IP')).toBe('10.0.0.5');
  });
});
