// Felix's `featureDetectOverride` ("ChecksumOffloadBroken=true,SNATFullyRandom=false"), as tabby takes
// it: the same key and the same string, so a Calico user's value pastes in. tabby reads one key of it,
// ChecksumOffloadBroken; the others are Felix's own and are accepted and left alone.
import * as os from 'node:os';
import { configError } from '../lib/cni/errors';

/** Parses `Key=value,...`; a malformed entry names the field and the entry. */
export function parseFeatureOverride(text: string, field: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    if (eq <= 0 || !/^[A-Za-z][A-Za-z0-9]*$/.test(key))
      throw configError(field, `"${part}" is not Key=value (e.g. "ChecksumOffloadBroken=true")`);
    out.set(key, part.slice(eq + 1).trim());
  }
  return out;
}

/**
 * Whether TX checksum offload must be turned off on tabby's tunnel devices. Given: as given. Not given:
 * as Felix detects it, broken only on kernels before 5.7 (where VXLAN with SNAT sent bad checksums). On
 * newer kernels turning it off costs 30-60 % of pod-to-pod TCP throughput (bench/results/offload.md).
 */
export function checksumOffloadBroken(overrides: Map<string, string>, field: string, release = os.release()): boolean {
  const given = overrides.get('ChecksumOffloadBroken');
  if (given !== undefined) {
    if (given !== 'true' && given !== 'false')
      throw configError(field, `ChecksumOffloadBroken must be true or false, got "${given}"`);
    return given === 'true';
  }
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? Number(m[1]) < 5 || (Number(m[1]) === 5 && Number(m[2]) < 7) : false;
}
