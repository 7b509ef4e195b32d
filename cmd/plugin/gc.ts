import { log } from '../../lib/log';
import { CniError, Code } from '../../lib/cni/errors';
import { NetConf } from '../../conf/netconf';
import { IpamClient } from '../../ipam/client';
import { gcError } from '../../ipam/ipam';
import { Attachment } from '../../lib/cni/attachment';
import { hostVethName, listHostVeths, unwirePod } from '../../lib/dataplane/veth';

const REFUSED: number[] = [Code.DecodingFailure, Code.InvalidNetworkConfig];

const key = (a: Attachment): string => `${a.containerId}/${a.ifname}`;

/**
 * CNI GC: every attachment of this network that is not in `valid` loses its reservation and its host
 * side (veth, host routes). Goes on past errors and reports them all at the end.
 */
export async function collectGarbage(conf: NetConf, valid: Attachment[], ipam: IpamClient): Promise<void> {
  const keep = new Set(valid.map(key));
  const errors: string[] = [];
  const doomed = new Set<string>();
  try {
    const outcome = await ipam.gc();
    // the host end of every stale attachment goes, whether or not its release worked
    for (const a of outcome.garbage) doomed.add(hostVethName(a.containerId, a.ifname));
    errors.push(...outcome.errors.map((e) => `IPAM GC: ${e}`));
  } catch (e) {
    // An IPAM config that cannot be read changes nothing: no veth goes either (it is no error along the way).
    if (e instanceof CniError && REFUSED.includes(e.code)) throw e;
    errors.push(`IPAM GC: ${(e as Error).message}`);
  }
  try {
    for (const v of await listHostVeths()) {
      if (v.owner && v.owner.network === conf.name && !keep.has(key(v.owner))) doomed.add(v.name);
    }
  } catch (e) {
    errors.push(`listing host veths: ${(e as Error).message}`);
  }
  for (const veth of doomed) {
    try {
      if (await unwirePod(veth)) log.info(`GC removed ${veth}`);
    } catch (e) {
      errors.push(`removing ${veth}: ${(e as Error).message}`);
    }
  }
  if (errors.length) throw gcError(errors);
}
