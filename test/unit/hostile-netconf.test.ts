// Property-based: the plugin config on stdin, generated (issue 12 §3). The steps a pod start takes before
// it touches anything (decode, version, plugin config, IPAM config, requested addresses, prevResult),
// in-process: each either accepts the config or throws a CniError with a code from the spec or tabby's own.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CniError } from '../../lib/cni/errors';
import { parseConfig } from '../../lib/cni/skel';
import { readEnv } from '../../lib/cni/env';
import { requireCommandVersion } from '../../lib/cni/version';
import { appendResult, toVersion } from '../../lib/cni/result';
import { parseNetConf, validAttachments, validMtu } from '../../conf/netconf';
import { parseIpamConf } from '../../ipam/config';
import {
  baseConfig,
  cniArgs,
  configStdin,
  fcParams,
  fcTimeout,
  KNOWN_CODES,
  RawJson,
  toJsonText,
} from '../helpers/hostile';

const DIR = '/nonexistent/tabby-hostile';

/** Runs fn; a throw must be a CniError with a known code and a message. Returns the error, if any. */
export function cniOutcome(fn: () => void): CniError | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!(e instanceof CniError))
      throw new Error(`threw ${(e as Error)?.constructor?.name}, not a CniError: ${(e as Error)?.message ?? e}`);
    expect(KNOWN_CODES, e.message).toContain(e.code);
    expect(e.message.length).toBeGreaterThan(0);
    return e;
  }
}

/** Everything a pod start reads from its input before it changes anything. */
function readInput(stdin: string, args: string | undefined, command = 'ADD'): void {
  const env = readEnv({
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'c1',
    CNI_NETNS: '/var/run/netns/p1',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/opt/cni/bin',
    CNI_ARGS: args,
  });
  const { cniVersion, config } = parseConfig(stdin, true);
  requireCommandVersion(command, cniVersion);
  const conf = parseNetConf(config, cniVersion);
  validMtu(conf.mtu);
  if (conf.ipamType === 'tabby-ipam') parseIpamConf(config, env);
  validAttachments(config);
  const mine = {
    interfaces: [{ name: 'tab0', mac: 'ee:ee:ee:ee:ee:ee' }],
    ips: [{ interface: 0, address: '10.244.1.2/32' }],
  };
  JSON.stringify(toVersion(appendResult(conf.prevResult, mine), cniVersion));
}

describe('plugin config, generated', () => {
  it(
    'is accepted or refused with a CNI error, never a crash',
    () => {
      fc.assert(
        fc.property(configStdin(DIR), cniArgs, (stdin, args) => {
          cniOutcome(() => readInput(stdin, args));
        }),
        fcParams(1500),
      );
    },
    fcTimeout(1500, 20),
  );

  it(
    'every command reads the same config the same way: a CNI error or nothing',
    () => {
      fc.assert(
        fc.property(configStdin(DIR), fc.constantFrom('DEL', 'CHECK', 'GC', 'STATUS'), (stdin, command) => {
          cniOutcome(() => readInput(stdin, undefined, command));
        }),
        fcParams(500),
      );
    },
    fcTimeout(500, 20),
  );

  it('the unmutated base config is accepted (the generators start from something valid)', () => {
    expect(cniOutcome(() => readInput(toJsonText(baseConfig(DIR)), undefined))).toBeUndefined();
  });
});

// Failures fast-check found, kept as plain cases (the shrunk counterexample, made readable).
describe('hostile config regressions', () => {
  const conf = (over: Record<string, unknown>): string => toJsonText({ ...baseConfig(DIR), ...over });

  it('a value nested 100,000 deep where a string belongs is a config error (code 7), not a stack overflow', () => {
    const deep = new RawJson('['.repeat(100_000) + ']'.repeat(100_000));
    const err = cniOutcome(() => readInput(conf({ ipam: { ...baseConfig(DIR).ipam, type: deep } }), undefined));
    expect(err?.code).toBe(7);
    expect(err?.message).toMatch(/^invalid config: ipam\.type: must be a string, got a list$/);
  });

  it('a long bad value is cut short in the error message', () => {
    const err = cniOutcome(() => readInput(conf({ logLevel: ['x'.repeat(70_000)] }), undefined));
    expect(err?.code).toBe(7);
    expect(err!.message.length).toBeLessThan(200);
  });

  it('a 0.2.0 prevResult whose ip4.routes is not a list is a decoding error (code 6), not a TypeError', () => {
    const prevResult = { ip4: { ip: '10.0.0.2/24', routes: { a: 1 } } };
    const err = cniOutcome(() => readInput(conf({ prevResult }), undefined));
    expect(err?.code).toBe(6);
    expect(err?.message).toBe('prevResult.ip4.routes: not a list');
  });

  it('a 0.2.0 prevResult route without a dst is a decoding error (code 6)', () => {
    const err = cniOutcome(() =>
      readInput(conf({ prevResult: { ip4: { ip: '10.0.0.2/24', routes: [null] } } }), undefined),
    );
    expect(err?.code).toBe(6);
    expect(err?.message).toBe('prevResult.ip4.routes[0].dst: missing');
  });
});

describe('hostile pod annotation regressions', () => {
  const withAnnotations = (a: Record<string, unknown>): string =>
    toJsonText({ ...baseConfig(DIR), runtimeConfig: { 'io.kubernetes.cri.pod-annotations': a } });

  it('a Calico pool annotation nested 20,000 deep is a config error (code 7), not a stack overflow', () => {
    const deep = new RawJson('['.repeat(20_000) + ']'.repeat(20_000));
    const err = cniOutcome(() => readInput(withAnnotations({ 'cni.projectcalico.org/ipv4pools': deep }), undefined));
    expect(err?.code).toBe(7);
    expect(err?.message).toMatch(
      /cni\.projectcalico\.org\/ipv4pools"\]: must be a string holding a JSON list, got a list$/,
    );
  });

  it('a long annotation that is not JSON is cut short in the error message', () => {
    const err = cniOutcome(() =>
      readInput(withAnnotations({ 'cni.projectcalico.org/ipAddrs': 'x'.repeat(70_000) }), undefined),
    );
    expect(err?.code).toBe(7);
    expect(err!.message.length).toBeLessThan(300);
  });
});
