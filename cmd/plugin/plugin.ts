import * as fs from 'node:fs';
import { CniError, Code } from '../../lib/cni/errors';
import { Plugin, Request } from '../../lib/cni/skel';
import { appendResult, Result } from '../../lib/cni/result';
import { log } from '../../lib/log';
import { ClusterConf, IN_PROCESS_IPAM, NetConf, parseNetConf, validAttachments, validMtu } from '../../conf/netconf';
import { configuresRanges } from '../../ipam/config';
import { ipamClient } from '../../ipam/client';
import { hostMtu } from '../../lib/dataplane/links';
import {
  hostVethName,
  PodAddress,
  PodWiring,
  WiredPod,
  gatewayFor,
  podRoutes,
  unwirePod,
  wirePod,
} from '../../lib/dataplane/veth';
import type { ClusterContext } from '../../lib/cluster/context';
import { ipamOf, NodeSnapshot } from '../../lib/cluster/snapshot';
import { checkPod } from './check';
import { collectGarbage } from './gc';

/** The `tabby` interface plugin: reads like ptp, wires like Calico. */

/** The cluster code (datastore, overlay, NAT) is loaded only for a config with a `cluster` file. */
async function clusterContext(conf: ClusterConf): Promise<ClusterContext> {
  const { ClusterContext } = await import('../../lib/cluster/context');
  return new ClusterContext(conf);
}

function loadConf(req: Request): NetConf {
  const conf = parseNetConf(req.config, req.cniVersion);
  validMtu(conf.mtu);
  log.configure({ file: conf.logFile, level: conf.logLevel });
  return conf;
}

function requireNetns(netns: string): void {
  if (!fs.existsSync(netns))
    throw new CniError(Code.InvalidEnvironment, `CNI_NETNS: network namespace ${netns} does not exist`);
}

/** What the pod gets, from what IPAM handed out. */
function planWiring(req: Request, conf: NetConf, ipam: Result, mtu: number): PodWiring {
  const addresses: PodAddress[] = (ipam.ips ?? []).map((c) => {
    const ip = c.address.split('/')[0];
    return { ip, family: ip.includes(':') ? 6 : 4 };
  });
  if (addresses.length === 0)
    throw new CniError(Code.InvalidNetworkConfig, `IPAM plugin ${conf.ipamType} returned no IP addresses`);
  return {
    netns: req.env.netns,
    ifname: req.env.ifname,
    hostVeth: hostVethName(req.env.containerId, req.env.ifname),
    owner: { network: conf.name, containerId: req.env.containerId, ifname: req.env.ifname },
    mtu,
    addresses,
    routes: (ipam.routes ?? []).map((r) => r.dst),
  };
}

/** The result this plugin adds: both ends of the pair, the pod's addresses and routes. */
function podResult(w: PodWiring, wired: WiredPod, conf: NetConf, ipam: Result): Result {
  return {
    interfaces: [
      { name: w.hostVeth, mac: wired.hostMac },
      { name: w.ifname, mac: wired.podMac, mtu: w.mtu, sandbox: w.netns },
    ],
    ips: w.addresses.map((a) => ({
      interface: 1,
      address: `${a.ip}/${a.family === 4 ? 32 : 128}`,
      gateway: gatewayFor(a.family),
    })),
    routes: podRoutes(w),
    dns: conf.dns ?? ipam.dns,
  };
}

/**
 * IPAM ADD. On a cluster node whose ranges are its blocks, the pod's request (pools, addresses) picks
 * the blocks, and on etcd the pod start claims what is missing (lib/cluster/pod-pools.ts).
 */
async function allocate(req: Request, conf: NetConf, cluster?: ClusterContext, node?: NodeSnapshot) {
  if (cluster && node && conf.ipamType === IN_PROCESS_IPAM && !configuresRanges(req.config)) {
    const { allocateForPod } = await import('../../lib/cluster/pod-pools');
    return allocateForPod(req, cluster, node);
  }
  const ipam = ipamClient(req, conf.ipamType, node ? ipamOf(node) : undefined);
  return { ipam, addresses: await ipam.add(), node };
}

export const tabbyPlugin: Plugin = {
  async add(req) {
    const conf = loadConf(req);
    requireNetns(req.env.netns);
    // The overlay first: a kernel without the pool's tunnel type fails the ADD before anything is allocated.
    // With an agent running this only reads the node's snapshot.
    const cluster = conf.cluster ? await clusterContext(conf.cluster) : undefined;
    const { ipam, addresses, node } = await allocate(req, conf, cluster, cluster && (await cluster.ensureOverlay()));
    try {
      const mtu = conf.mtu || (node ? node.mtu : hostMtu());
      const wiring = planWiring(req, conf, addresses, mtu);
      const wired = await wirePod(wiring);
      log.info(
        `wired ${wiring.hostVeth} <-> ${wiring.ifname} in ${wiring.netns}: ${wiring.addresses.map((a) => a.ip).join(', ')} mtu ${wiring.mtu}`,
      );
      return appendResult(conf.prevResult, podResult(wiring, wired, conf, addresses));
    } catch (e) {
      await ipam.del().catch((d) => log.error(`rollback: IPAM DEL failed: ${(d as Error).message}`));
      throw e;
    }
  },

  async del(req) {
    const conf = loadConf(req);
    // Unwire first: an address is released only once nothing routes to it any more.
    const hostVeth = hostVethName(req.env.containerId, req.env.ifname);
    if (await unwirePod(hostVeth)) log.info(`removed ${hostVeth}`);
    await ipamClient(req, conf.ipamType).del();
  },

  async check(req) {
    const conf = loadConf(req);
    if (!conf.prevResult)
      throw new CniError(Code.InvalidNetworkConfig, 'CHECK needs prevResult, and the config has none');
    requireNetns(req.env.netns);
    await ipamClient(req, conf.ipamType).check();
    await checkPod(req.env, conf.prevResult);
  },

  async gc(req) {
    const conf = loadConf(req);
    // On a cluster node, GC judges only this node's blocks (a data directory may be shared).
    const blocks = conf.cluster ? await (await clusterContext(conf.cluster)).nodeIpam({ lastGood: true }) : undefined;
    await collectGarbage(conf, validAttachments(req.config), ipamClient(req, conf.ipamType, blocks));
  },

  async status(req) {
    const conf = loadConf(req);
    let blocks;
    if (conf.cluster) {
      try {
        blocks = await (await clusterContext(conf.cluster)).nodeIpam();
      } catch (e) {
        // not ready: a refused read (the dataplane stays as last applied) or an unreachable datastore
        throw new CniError(Code.NotAvailable, `cluster datastore unusable: ${(e as Error).message}`);
      }
    }
    await ipamClient(req, conf.ipamType, blocks).status();
  },
};
