import { parseCidr, parseIP } from '../lib/net/addr';

/** Checks an `ipAutodetectionMethod` (Calico's IP_AUTODETECTION_METHOD); returns the problem, or undefined. */
export function validAutodetectMethod(m: string): string | undefined {
  if (m === 'first-found' || m === 'default-route') return undefined;
  const eq = m.indexOf('=');
  const kind = eq > 0 ? m.slice(0, eq) : m;
  const arg = eq > 0 ? m.slice(eq + 1) : '';
  switch (kind) {
    case 'interface':
      try {
        new RegExp(arg);
      } catch {
        return `interface=${arg}: not a regular expression`;
      }
      return arg ? undefined : 'interface= needs a regular expression';
    case 'can-reach':
      return parseIP(arg) ? undefined : `can-reach=${arg}: not an IP address`;
    case 'cidrs':
      return arg.split(',').every((s) => parseCidr(s.trim())) ? undefined : `cidrs=${arg}: not a list of CIDRs`;
  }
  return `unknown method "${m}" (use first-found, interface=REGEX, can-reach=IP or cidrs=CIDR,...)`;
}
