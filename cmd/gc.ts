import { CniError, Code } from '../lib/cni/errors';
import { log } from '../lib/log';
import { NetConf } from '../conf/netconf';
import { IpamClient } from '../ipam/client';
import { Attachment } from '../ipam/store';
import { hostVethName, listHostVeths, unwirePod } from '../lib/dataplane/veth';

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
    for (const a of await ipam.gc()) doomed.add(hostVethName(a.containerId, a.ifname));
  } catch (e) {
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
  if (errors.length) throw new CniError(Code.Internal, `GC met ${errors.length} error(s): ${errors.join('; ')}`);
}
