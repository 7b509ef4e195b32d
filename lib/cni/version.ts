import { CniError, Code } from './errors';

/** Every spec version tabby speaks; results are converted to the request's. */
export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';

const VERSION_RE = /^(\d+)\.(\d+)\.(\d+)$/;

/** Negative, zero or positive as a < b, a == b, a > b. */
export function compareVersions(a: string, b: string): number {
  const pa = parse(a);
  const pb = parse(b);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}

function parse(v: string): number[] {
  const m = VERSION_RE.exec(v);
  if (!m) throw new CniError(Code.IncompatibleVersion, `invalid cniVersion "${v}"`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

export function isSupported(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

export function requireSupported(v: string): void {
  if (!isSupported(v)) {
    throw new CniError(
      Code.IncompatibleVersion,
      `incompatible CNI versions: config is "${v}", plugin supports [${SUPPORTED_VERSIONS.join(', ')}]`,
    );
  }
}

/** Commands that appeared in later spec versions refuse older configs (as Go skel does). */
const MINIMUM_FOR: Record<string, string> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

export function requireCommandVersion(command: string, v: string): void {
  const min = MINIMUM_FOR[command];
  if (min && compareVersions(v, min) < 0) {
    throw new CniError(
      Code.IncompatibleVersion,
      `config version "${v}" does not allow ${command}; it needs ${min} or later`,
    );
  }
}
