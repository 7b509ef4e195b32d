// Property-based: the CNI environment variables and CNI_ARGS, generated (issue 12 §3). Whatever a runtime
// passes, readEnv either returns what the command needs, valid, or throws a CniError with code 4.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CniError, Code } from '../../lib/cni/errors';
import { ID_RE, readEnv, validateIfname } from '../../lib/cni/env';
import { parseCniArgs } from '../../lib/cni/args';
import { cniArgs, cniCommand, envValue, fcParams, fcTimeout, oddString } from '../helpers/hostile';

/** Runs fn; a throw must be a CniError with code 4 (invalid environment). */
function outcome<T>(fn: () => T): T | CniError {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof CniError)) throw new Error(`threw ${(e as Error)?.constructor?.name}, not a CniError: ${e}`);
    expect(e.code).toBe(Code.InvalidEnvironment);
    expect(e.message.length).toBeGreaterThan(0);
    return e;
  }
}

const env = fc.record({
  CNI_COMMAND: cniCommand,
  CNI_CONTAINERID: envValue(fc.constantFrom('c1', 'abc-123_x.y', 'a'.repeat(300), '-c', '.c')),
  CNI_NETNS: envValue(fc.constantFrom('/var/run/netns/p1', '/proc/1/ns/net', 'relative')),
  CNI_IFNAME: envValue(fc.constantFrom('eth0', 'net1', 'a'.repeat(15), 'a'.repeat(16), 'é'.repeat(8), '.', 'a:b')),
  CNI_PATH: envValue(fc.constantFrom('/opt/cni/bin', '/a::/b:', ':')),
  CNI_ARGS: cniArgs,
});

describe('CNI environment, generated', () => {
  it(
    'readEnv returns a valid environment or throws code 4, never anything else',
    () => {
      fc.assert(
        fc.property(env, (vars) => {
          const r = outcome(() => readEnv(vars));
          if (r instanceof CniError) return;
          expect(r.command).toBe(vars.CNI_COMMAND);
          expect(r.path.every((p) => p !== '' && !p.includes(':'))).toBe(true);
          if (['ADD', 'DEL', 'CHECK'].includes(r.command)) {
            expect(r.containerId).toMatch(ID_RE);
            expect(validateIfname(r.ifname)).toBeUndefined();
            expect(Buffer.byteLength(r.ifname)).toBeLessThanOrEqual(15);
          }
        }),
        fcParams(2000),
      );
    },
    fcTimeout(2000, 10),
  );

  it(
    'CNI_ARGS of any text parses or throws code 4',
    () => {
      fc.assert(
        fc.property(fc.oneof(cniArgs, oddString), (raw) => {
          outcome(() => parseCniArgs(raw));
        }),
        fcParams(2000),
      );
    },
    fcTimeout(2000, 10),
  );

  it(
    'well-formed CNI_ARGS with IgnoreUnknown=1 read back as written (the last of a key wins)',
    () => {
      const part = fc.string({ minLength: 1, maxLength: 10 }).filter((s) => !/[=;]/.test(s));
      const value = fc.string({ maxLength: 10 }).filter((s) => !/[=;]/.test(s));
      fc.assert(
        fc.property(fc.array(fc.tuple(part, value), { maxLength: 6 }), (pairs) => {
          const all: [string, string][] = [...pairs, ['IgnoreUnknown', '1']];
          const args = parseCniArgs(all.map(([k, v]) => `${k}=${v}`).join(';'));
          expect(Object.fromEntries(args.values)).toEqual(Object.fromEntries(all));
        }),
        fcParams(1000),
      );
    },
    fcTimeout(1000, 10),
  );
});
