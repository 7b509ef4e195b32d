// CNI error codes (SPEC.md "Error") and tabby's own (100 and up).
export const Code = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  NotAvailableDegraded: 51,
  // tabby's own codes
  KernelOperationFailed: 100,
  NoFreeAddress: 101,
  AddressUnavailable: 102,
  DatastoreError: 103,
  MissingKernelSupport: 104,
  DelegateFailed: 105,
  CheckFailed: 106,
  Internal: 999,
} as const;

export type CodeValue = (typeof Code)[keyof typeof Code];

/** An error that reaches the runtime as CNI error JSON. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string): Record<string, unknown> {
    const out: Record<string, unknown> = { cniVersion, code: this.code, msg: this.message };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** Wraps anything thrown into a CniError, keeping typed errors as they are. */
export function asCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new CniError(Code.Internal, msg);
}

export const configError = (field: string, problem: string): CniError =>
  new CniError(Code.InvalidNetworkConfig, `invalid config: ${field}: ${problem}`);
