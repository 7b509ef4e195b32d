// Transactions: the compares and request ops a caller builds (`cmp.absent(key)`, `op.put(key, value)`),
// their JSON for /v3/kv/txn, and the decoded responses. Pure functions, no I/O.
import { b64, decodeKv, encodeRange, headerRevision, int64 } from './wire';
import type { Int64, Int64Arg, KeyRange, KeyValue, RawKeyValue } from './wire';

export type CompareResult = 'EQUAL' | 'NOT_EQUAL' | 'GREATER' | 'LESS';

export type Compare =
  | { key: string; target: 'CREATE' | 'MOD' | 'VERSION' | 'LEASE'; result: CompareResult; number: Int64 }
  | { key: string; target: 'VALUE'; result: CompareResult; value: string };

export type RequestOp =
  | { type: 'put'; key: string; value: string; lease?: Int64 }
  | { type: 'delete'; range: string | KeyRange }
  | { type: 'range'; range: string | KeyRange; keysOnly?: boolean; limit?: number };

export type ResponseOp =
  | { type: 'put'; revision: Int64 }
  | { type: 'delete'; deleted: number; revision: Int64 }
  | { type: 'range'; kvs: KeyValue[]; count: number; more: boolean };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure?: RequestOp[];
}

export interface TxnResult {
  succeeded: boolean;
  revision: Int64;
  responses: ResponseOp[];
  /**
   * Set when an earlier attempt of this call got no answer (a timeout during an election) and may have
   * been applied: a refused compare may then be refusing our own earlier write.
   */
  uncertain?: true;
}

/** Compares, named for what they mean. */
export const cmp = {
  /** The key does not exist (its create revision is 0). */
  absent: (key: string): Compare => ({ key, target: 'CREATE', result: 'EQUAL', number: '0' }),
  /** The key was last modified at `rev` (it is unchanged since it was read). */
  modRevision: (key: string, rev: Int64Arg, result: CompareResult = 'EQUAL'): Compare => ({
    key,
    target: 'MOD',
    result,
    number: int64(rev, 'modRevision'),
  }),
  createRevision: (key: string, rev: Int64Arg, result: CompareResult = 'EQUAL'): Compare => ({
    key,
    target: 'CREATE',
    result,
    number: int64(rev, 'createRevision'),
  }),
  version: (key: string, version: Int64Arg, result: CompareResult = 'EQUAL'): Compare => ({
    key,
    target: 'VERSION',
    result,
    number: int64(version, 'version'),
  }),
  value: (key: string, value: string, result: CompareResult = 'EQUAL'): Compare => ({
    key,
    target: 'VALUE',
    result,
    value,
  }),
};

/** Request ops for either branch of a transaction. */
export const op = {
  put: (key: string, value: string, opts: { lease?: Int64Arg } = {}): RequestOp => ({
    type: 'put',
    key,
    value,
    ...(opts.lease !== undefined ? { lease: int64(opts.lease, 'lease') } : {}),
  }),
  delete: (range: string | KeyRange): RequestOp => ({ type: 'delete', range }),
  range: (range: string | KeyRange, opts: { keysOnly?: boolean; limit?: number } = {}): RequestOp => ({
    type: 'range',
    range,
    ...opts,
  }),
};

const NUMBER_FIELD = { CREATE: 'create_revision', MOD: 'mod_revision', VERSION: 'version', LEASE: 'lease' } as const;

function encodeCompare(c: Compare): Record<string, string> {
  const out: Record<string, string> = { key: b64(c.key), target: c.target, result: c.result };
  if (c.target === 'VALUE') out.value = b64(c.value);
  else out[NUMBER_FIELD[c.target]] = c.number;
  return out;
}

export function encodeRangeRequest(
  range: string | KeyRange,
  opts: { keysOnly?: boolean; limit?: number; revision?: Int64 },
): Record<string, unknown> {
  const body: Record<string, unknown> = encodeRange(range);
  if (opts.keysOnly) body.keys_only = true;
  if (opts.limit) body.limit = String(opts.limit);
  if (opts.revision) body.revision = opts.revision;
  return body;
}

export function encodePut(key: string, value: string, lease?: Int64): Record<string, unknown> {
  const body: Record<string, unknown> = { key: b64(key), value: b64(value) };
  if (lease) body.lease = lease;
  return body;
}

function encodeOp(o: RequestOp): Record<string, unknown> {
  switch (o.type) {
    case 'put':
      return { request_put: encodePut(o.key, o.value, o.lease) };
    case 'delete':
      return { request_delete_range: encodeRange(o.range) };
    case 'range':
      return { request_range: encodeRangeRequest(o.range, o) };
  }
}

export function encodeTxn(t: TxnRequest): Record<string, unknown> {
  return {
    compare: t.compare.map(encodeCompare),
    success: t.success.map(encodeOp),
    failure: (t.failure ?? []).map(encodeOp),
  };
}

export interface RawRange {
  header?: { revision?: string };
  kvs?: RawKeyValue[];
  count?: string;
  more?: boolean;
}

interface RawResponseOp {
  response_put?: { header?: { revision?: string } };
  response_delete_range?: { header?: { revision?: string }; deleted?: string };
  response_range?: RawRange;
}

function decodeOp(r: RawResponseOp): ResponseOp {
  if (r.response_range) {
    const kvs = (r.response_range.kvs ?? []).map(decodeKv);
    return { type: 'range', kvs, count: Number(r.response_range.count ?? 0), more: !!r.response_range.more };
  }
  if (r.response_delete_range) {
    const d = r.response_delete_range;
    return { type: 'delete', deleted: Number(d.deleted ?? 0), revision: headerRevision(d) };
  }
  return { type: 'put', revision: headerRevision(r.response_put) };
}

/** A txn answer; a failed compare shows as a missing `succeeded` (proto3 omits false). */
export interface RawTxn {
  header?: { revision?: string };
  succeeded?: boolean;
  responses?: RawResponseOp[];
}

export function decodeTxn(body: RawTxn): TxnResult {
  return {
    succeeded: body.succeeded === true,
    revision: headerRevision(body),
    responses: (body.responses ?? []).map(decodeOp),
  };
}
