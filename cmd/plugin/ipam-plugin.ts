import { Plugin, Request } from '../../lib/cni/skel';
import { log } from '../../lib/log';
import { parseIpamConf } from '../../ipam/config';
import { parseNetConf, validAttachments } from '../../conf/netconf';
import { gcError, ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from '../../ipam/ipam';
import { Attachment } from '../../lib/cni/attachment';

/** `tabby-ipam`: the same IPAM, as a standalone plugin that other plugins delegate to. */

async function load(req: Request) {
  const conf = parseNetConf(req.config, req.cniVersion);
  log.configure({ file: conf.logFile, level: conf.logLevel });
  // the cluster code is loaded only for a config with a `cluster` file
  // ... and only for ADD and STATUS: DEL, CHECK and GC must work with the cluster file gone
  const needsBlocks = req.env.command === 'ADD' || req.env.command === 'STATUS';
  const blocks =
    conf.cluster && needsBlocks
      ? await new (await import('../../lib/cluster/context')).ClusterContext(conf.cluster).nodeIpam()
      : undefined;
  return parseIpamConf(req.config, req.env, blocks);
}

const who = (req: Request): Attachment => ({ containerId: req.env.containerId, ifname: req.env.ifname });

export const ipamPlugin: Plugin = {
  add: async (req) => ipamAdd(await load(req), who(req)),
  del: async (req) => {
    await ipamDel(await load(req), who(req));
  },
  check: async (req) => {
    await ipamCheck(await load(req), who(req));
  },
  gc: async (req) => {
    const { errors } = await ipamGc(await load(req), validAttachments(req.config));
    if (errors.length) throw gcError(errors);
  },
  status: async (req) => ipamStatus(await load(req)),
};
