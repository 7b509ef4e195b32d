import { expect } from 'vitest';
import { CniError } from '../../lib/cni/errors';

/** Runs `fn`, expecting a CniError with `code` whose message matches `msg`; returns it. */
export function expectCniError(fn: () => unknown, code: number, msg?: RegExp | string): CniError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a CniError to be thrown').toBeInstanceOf(CniError);
  const err = caught as CniError;
  expect(err.code).toBe(code);
  if (msg !== undefined) expect(err.message).toMatch(msg);
  return err;
}

/** The async form of expectCniError. */
export async function expectCniErrorAsync(p: Promise<unknown>, code: number, msg?: RegExp | string): Promise<CniError> {
  const caught = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(caught, 'expected a CniError to be rejected').toBeInstanceOf(CniError);
  const err = caught as CniError;
  expect(err.code).toBe(code);
  if (msg !== undefined) expect(err.message).toMatch(msg);
  return err;
}
