import { configError } from '../lib/cni/errors';

/** Typed accessors that name the offending field in their errors. */
export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function optObj(o: Obj, key: string, path: string): Obj | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw configError(join(path, key), 'must be an object');
  return v;
}

export function optStr(o: Obj, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw configError(join(path, key), `must be a string, got ${shown(v)}`);
  return v;
}

export function reqStr(o: Obj, key: string, path: string): string {
  const v = optStr(o, key, path);
  if (v === undefined || v === '') throw configError(join(path, key), 'is required');
  return v;
}

export function optInt(o: Obj, key: string, path: string, min: number, max: number): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw configError(join(path, key), `must be an integer, got ${shown(v)}`);
  if (v < min || v > max) throw configError(join(path, key), `must be between ${min} and ${max}, got ${v}`);
  return v;
}

/** Booleans may be JSON booleans or the strings "true"/"false" (libcni accepts both). */
export function optBool(o: Obj, key: string, path: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw configError(join(path, key), `must be a boolean, got ${shown(v)}`);
}

export function optArr(o: Obj, key: string, path: string): unknown[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw configError(join(path, key), 'must be a list');
  return v;
}

/**
 * A bad value as an error message shows it: its JSON, cut short. A value nested too deep for
 * JSON.stringify (which then overflows the stack) is named by its type instead.
 */
export function shown(v: unknown): string {
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    s = undefined;
  }
  if (s === undefined) return Array.isArray(v) ? 'a list' : typeof v;
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export const join = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
