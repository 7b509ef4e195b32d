import { Plugin, Request } from '../lib/cni/skel';
import { log } from '../lib/log';
import { parseIpamConf } from '../conf/ipam';
import { parseNetConf, validAttachments } from '../conf/netconf';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from '../ipam/ipam';
import { Attachment } from '../ipam/store';

/** `tabby-ipam`: the same IPAM, as a standalone plugin that other plugins delegate to. */

function load(req: Request) {
  const conf = parseNetConf(req.config, req.cniVersion);
  log.configure({ file: conf.logFile, level: conf.logLevel });
  return parseIpamConf(req.config, req.env);
}

const who = (req: Request): Attachment => ({ containerId: req.env.containerId, ifname: req.env.ifname });

export const ipamPlugin: Plugin = {
  add: (req) => ipamAdd(load(req), who(req)),
  del: async (req) => { await ipamDel(load(req), who(req)); },
  check: async (req) => { await ipamCheck(load(req), who(req)); },
  gc: async (req) => { await ipamGc(load(req), validAttachments(req.config)); },
  status: (req) => ipamStatus(load(req)),
};
