// The JSON gateway's wire format, both ways: keys and values are base64, int64 fields are decimal
// strings (lease IDs exceed 2^53, so they never become numbers), and a field at its proto3 default
// (0, false, empty) is omitted from answers. Pure functions, no I/O.

/** An int64 (revision, lease ID) as etcd sends it: a decimal string. */
export type Int64 = string;
/** An int64 as a caller may give it (a number only if it is a safe integer). */
export type Int64Arg = string | bigint | number;

export interface KeyValue {
  key: string;
  value: string;
  createRevision: Int64;
  modRevision: Int64;
  version: Int64;
  /** The lease the key is attached to; absent when none. */
  lease?: Int64;
}

/** One key (`string` in get/put), all keys under a prefix, or the half-open range [key, rangeEnd). */
export type KeyRange = { prefix: string } | { key: string; rangeEnd: string };

export interface RawKeyValue {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

export const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
export const unb64 = (text: string | undefined): string => (text ? Buffer.from(text, 'base64').toString('utf8') : '');

/** An int64 argument checked and made a decimal string; never goes through a lossy number. */
export function int64(value: Int64Arg, what: string): Int64 {
  const text = typeof value === 'string' ? value.trim() : String(value);
  if (!/^-?\d+$/.test(text)) throw new TypeError(`etcd: ${what} must be an integer, got ${JSON.stringify(text)}`);
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new TypeError(`etcd: ${what} is not a safe integer`);
  }
  return BigInt(text).toString();
}

/**
 * The end of the range holding every key that starts with `prefix`: the prefix with its last byte
 * below 0xff increased by one (trailing 0xff bytes dropped). The empty prefix, or one made only of
 * 0xff bytes, gets "\0", which etcd reads as "to the end of the keyspace".
 */
export function prefixEnd(prefix: string): Buffer {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** `{key, range_end}` as the gateway wants them, for one key (a string) or a KeyRange. */
export function encodeRange(what: string | KeyRange): { key: string; range_end?: string } {
  if (typeof what === 'string') return { key: b64(what) };
  if ('prefix' in what) return { key: rangeStart(what.prefix), range_end: prefixEnd(what.prefix).toString('base64') };
  return { key: rangeStart(what.key), range_end: b64(what.rangeEnd) };
}

// etcd refuses an empty key ("key is not provided"); a range from the very first key starts at "\0".
const rangeStart = (key: string): string => (key === '' ? 'AA==' : b64(key));

export function decodeKv(raw: RawKeyValue): KeyValue {
  const kv: KeyValue = {
    key: unb64(raw.key),
    value: unb64(raw.value),
    createRevision: raw.create_revision ?? '0',
    modRevision: raw.mod_revision ?? '0',
    version: raw.version ?? '0',
  };
  if (raw.lease && raw.lease !== '0') kv.lease = raw.lease;
  return kv;
}

/** The revision in a response header (omitted when 0, i.e. an empty store). */
export const headerRevision = (body: { header?: { revision?: string } } | undefined): Int64 =>
  body?.header?.revision ?? '0';
