import { Request } from '../lib/cni/skel';
import { delegate } from '../lib/cni/delegate';
import { Result } from '../lib/cni/result';
import { IN_PROCESS_IPAM, validAttachments } from '../conf/netconf';
import { ClusterIpam, parseIpamConf } from './config';
import { Attachment } from '../lib/cni/attachment';

import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from './ipam';

/**
 * IPAM as the interface plugin sees it: `tabby-ipam` runs in this process; any other `ipam.type`
 * is found in CNI_PATH and delegated to, as the spec says.
 */
export interface IpamClient {
  add(): Promise<Result>;
  del(): Promise<void>;
  check(): Promise<void>;
  /**
   * Returns the attachments whose reservations GC found stale (empty when delegated: the delegate does
   * not say) and the errors it met; a delegate's failure is thrown.
   */
  gc(): Promise<{ garbage: Attachment[]; errors: string[] }>;
  status(): Promise<void>;
}

/** `cluster`: this node's blocks from the cluster datastore (the ranges when the config gives none) and its reserved addresses. */
export function ipamClient(req: Request, type: string, cluster?: ClusterIpam): IpamClient {
  const who: Attachment = { containerId: req.env.containerId, ifname: req.env.ifname };
  if (type === IN_PROCESS_IPAM) {
    const conf = () => parseIpamConf(req.config, req.env, cluster);
    return {
      add: () => ipamAdd(conf(), who),
      del: async () => {
        await ipamDel(conf(), who);
      },
      check: async () => {
        await ipamCheck(conf(), who);
      },
      gc: () => ipamGc(conf(), validAttachments(req.config)),
      status: () => ipamStatus(conf()),
    };
  }
  const run = (cmd: string) => delegate(type, cmd, req.stdin, req.env.path);
  return {
    add: async () => (await run('ADD'))!,
    del: async () => {
      await run('DEL');
    },
    check: async () => {
      await run('CHECK');
    },
    gc: async () => {
      await run('GC');
      return { garbage: [], errors: [] };
    },
    status: async () => {
      await run('STATUS');
    },
  };
}
