// Errors of the etcd client. Each one is a CniError, so a plugin can report it as it is:
// EtcdUnavailableError as code 11 (try again later), the others as datastore errors (103).
// Messages never carry the password, a token, key material or an endpoint URL (see redact.ts).
import { CniError, Code } from '../../cni/errors';

export class EtcdError extends CniError {
  constructor(message: string, code: number = Code.DatastoreError) {
    super(code, message);
    this.name = 'EtcdError';
  }
}

/** No endpoint answered within the client's time bound: the caller may try again later. */
export class EtcdUnavailableError extends EtcdError {
  constructor(message: string) {
    super(message, Code.TryAgainLater);
    this.name = 'EtcdUnavailableError';
  }
}

/** A watch asked for history that was compacted away: the caller must resync with a full read. */
export class EtcdCompactedError extends EtcdError {
  constructor(readonly compactRevision: string) {
    super(`etcd: watch start revision was compacted (compacted up to revision ${compactRevision}); resync needed`);
    this.name = 'EtcdCompactedError';
  }
}

export class EtcdAuthError extends EtcdError {
  constructor(message: string) {
    super(message);
    this.name = 'EtcdAuthError';
  }
}

export class EtcdTlsError extends EtcdError {
  constructor(reason: string) {
    super(`etcd: TLS handshake failed: ${reason}`);
    this.name = 'EtcdTlsError';
  }
}

/** The lease expired or was revoked (keepAlive, or a put that names it). */
export class EtcdLeaseNotFoundError extends EtcdError {
  constructor(readonly leaseId: string) {
    super(`etcd: lease ${leaseId} not found (expired or revoked)`);
    this.name = 'EtcdLeaseNotFoundError';
  }
}

/** etcd answered and refused the request (bad argument, permission denied, ...). */
export class EtcdRequestError extends EtcdError {
  constructor(
    message: string,
    readonly grpcCode: number | undefined,
  ) {
    super(message);
    this.name = 'EtcdRequestError';
  }
}
