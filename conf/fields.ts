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
  if (typeof v !== 'string') throw configError(join(path, key), `must be a string, got ${JSON.stringify(v)}`);
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
    throw configError(join(path, key), `must be an integer, got ${JSON.stringify(v)}`);
  if (v < min || v > max) throw configError(join(path, key), `must be between ${min} and ${max}, got ${v}`);
  return v;
}

/** Booleans may be JSON booleans or the strings "true"/"false" (libcni accepts both). */
export function optBool(o: Obj, key: string, path: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw configError(join(path, key), `must be a boolean, got ${JSON.stringify(v)}`);
}

export function optArr(o: Obj, key: string, path: string): unknown[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw configError(join(path, key), 'must be a list');
  return v;
}

export const join = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
