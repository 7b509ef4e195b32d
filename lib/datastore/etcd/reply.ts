// What an etcd answer means: the body of a success, a failure worth retrying elsewhere (Retryable),
// a rejected auth token (TokenRejected: re-authenticate and retry once), or an EtcdRequestError.
// The gateway maps gRPC status codes to HTTP ones and puts {error, message, code} in the body
// (unary calls) or {error: {grpc_code, http_code, message}} (streams).
import type { Endpoint } from './config';
import { EtcdError, EtcdRequestError } from './errors';
import { Retryable } from './failover';
import type { Redactor } from './redact';
import type { Reply } from './transport';

export class TokenRejected {}

const HTTP_HINTS: Record<number, string> = { 400: ' (an http:// URL for a TLS endpoint?)', 404: ' (not etcd v3?)' };

const CN_REFUSED =
  'etcd refuses a client certificate with a Common Name on its JSON gateway when auth is on; ' +
  'use a certificate without a CN (the user comes from datastore.username)';

const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAUTHENTICATED = 16;

// Member-local trouble another member may not have, or that passes (elections, overload).
const TRANSIENT = new RegExp(
  [
    'no leader',
    'not leader',
    'leader changed',
    'request timed out',
    'server stopped',
    'not capable',
    'unhealthy cluster',
    'too many requests',
    'transport is closing',
  ].join('|'),
  'i',
);
// ...of which these reject the request before it is proposed, so it cannot have been applied.
const NOT_APPLIED = /no leader|not capable|too many requests/i;
const TOKEN_REJECTED = /invalid auth token|user name is empty|revision of auth store is old/i;

export interface ServerError {
  code?: number;
  message: string;
}

/** The error an answer carries, in either of the gateway's two shapes. */
export function serverError(json: any): ServerError | undefined {
  if (!json || typeof json !== 'object' || json.error === undefined) return undefined;
  if (typeof json.error === 'object' && json.error) {
    return { code: json.error.grpc_code, message: String(json.error.message ?? 'unknown error') };
  }
  return { code: typeof json.code === 'number' ? json.code : undefined, message: String(json.message ?? json.error) };
}

/** True for a server error that another member, or a little patience, may not give. */
export function transient(err: ServerError): boolean {
  return err.code === GRPC_UNAVAILABLE || err.code === GRPC_DEADLINE_EXCEEDED || TRANSIENT.test(err.message);
}

export const tokenRejected = (err: ServerError): boolean =>
  err.code === GRPC_UNAUTHENTICATED || TOKEN_REJECTED.test(err.message);

/** The body of a successful answer; anything else is thrown as Retryable, TokenRejected or an EtcdError. */
export function checkReply(reply: Reply, ep: Endpoint, what: string, redact: Redactor): any {
  const err = serverError(reply.json);
  if (reply.status === 200 && reply.json && !err) return reply.json;
  if (err) {
    const message = redact.scrub(err.message);
    if (transient(err)) throw new Retryable(message, !NOT_APPLIED.test(err.message));
    if (tokenRejected(err)) throw new TokenRejected();
    throw new EtcdRequestError(`etcd: ${what}: ${message}`, err.code);
  }
  if (reply.status >= 500) throw new Retryable(`HTTP ${reply.status}`, true);
  if (reply.text && /CommonName of client/.test(reply.text)) {
    // etcd (client-cert-auth + auth on) refuses gateway calls whose client certificate has a CN.
    throw new EtcdError(`etcd: ${what}: ${CN_REFUSED}`);
  }
  const hint = HTTP_HINTS[reply.status] ?? '';
  throw new EtcdError(`etcd: ${what}: ${ep.label} answered HTTP ${reply.status} without an etcd reply${hint}`);
}
