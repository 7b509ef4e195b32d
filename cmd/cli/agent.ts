// `tabby agent`: the node daemon. It holds the node's agent socket (one agent per node), serves
// /healthz and /metrics, and runs the agent loop until SIGTERM or SIGINT, which stop it cleanly and
// leave the dataplane in place, so pods keep working while the agent is upgraded.
import * as net from 'node:net';
import { command, UsageError } from './command';
import { clusterContextFromFlags, CONFIG_FLAG } from './cluster';
import { ipamStoreOf } from './conflist';
import type { ClusterContext } from '../../lib/cluster/context';
import type { EtcdDatastore } from '../../lib/datastore/etcd-datastore';
import type { ClusterResources } from '../../conf/calico';
import { BlockReleaser } from '../../lib/agent/block-release';
import { DiskStore } from '../../ipam/disk-store';
import { agentSocketName } from '../../lib/cluster/snapshot';
import { parseListenAddr } from '../../lib/agent/http';
import { parseNodeLabels, registerNode } from '../../lib/cluster/registration';
import { log } from '../../lib/log';

const DEFAULTS = { metricsAddr: '127.0.0.1:9099', resync: 90, datastoreGrace: 30, blockReleaseAfter: 600 };

function seconds(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name}: must be a positive number of seconds, got "${v}"`);
  return n;
}

/** Binds the agent socket of the state directory; fails when another agent holds it. */
function holdAgentSocket(stateDir: string): Promise<net.Server> {
  const name = agentSocketName(stateDir);
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => s.end());
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new Error(`another tabby agent is already running for state directory ${stateDir}`)
          : e,
      ),
    );
    server.listen({ path: name, exclusive: true }, () => resolve(server));
  });
}

/** On etcd: gives back blocks that stayed empty, counted in the node's own IPAM store. */
function releaserFor(ctx: ClusterContext, etcd: EtcdDatastore, config: string, graceSeconds: number) {
  const { dataDir, network } = ipamStoreOf(config);
  const store = new DiskStore(dataDir, network);
  const releaser = new BlockReleaser(ctx, etcd, store, graceSeconds);
  return (r: ClusterResources) => releaser.check(r);
}

export const agentCommand = command({
  name: 'agent',
  summary: "keep this node's overlay current (the node daemon); health and metrics on --metrics-addr",
  options: {
    config: CONFIG_FLAG,
    'metrics-addr': {
      type: 'string',
      arg: 'HOST:PORT',
      help: `where /healthz and /metrics are served (default ${DEFAULTS.metricsAddr})`,
    },
    resync: {
      type: 'string',
      arg: 'SECONDS',
      help: `a full apply this often, repairing drift (default ${DEFAULTS.resync})`,
    },
    'datastore-grace': {
      type: 'string',
      arg: 'SECONDS',
      help: `how long the datastore may stay unreadable before /healthz fails (default ${DEFAULTS.datastoreGrace})`,
    },
    'cluster-source': {
      type: 'string',
      arg: 'FILE',
      help: "keep the conflist's cluster file a copy of FILE (a ConfigMap mount)",
    },
    'node-labels': {
      type: 'string',
      arg: 'K=V,...',
      help: '(etcd) the labels this node registers with, for IPPool nodeSelectors',
    },
    'block-release-after': {
      type: 'string',
      arg: 'SECONDS',
      help: `(etcd) give back a block empty that long (default ${DEFAULTS.blockReleaseAfter})`,
    },
  },
  async run(args) {
    const metricsAddr = args['metrics-addr'] ?? DEFAULTS.metricsAddr;
    const listen = parseListenAddr(metricsAddr);
    if (!listen) throw new UsageError(`--metrics-addr: expected HOST:PORT, got "${metricsAddr}"`);
    const resyncSeconds = seconds(args.resync, '--resync', DEFAULTS.resync);
    const datastoreGraceSeconds = seconds(args['datastore-grace'], '--datastore-grace', DEFAULTS.datastoreGrace);
    const releaseAfter = seconds(args['block-release-after'], '--block-release-after', DEFAULTS.blockReleaseAfter);
    const ctx = clusterContextFromFlags(args);
    const source = args['cluster-source'];
    if (source && !ctx.conf.file) throw new UsageError('--cluster-source needs a conflist with a "cluster" file');
    const labels = parseNodeLabels(args['node-labels']);
    log.configure({ stderrLevel: 'info', context: 'agent' });

    const lock = await holdAgentSocket(ctx.stateDirReady());
    // loaded here, so that the other commands never load prom-client
    const [{ NodeAgent }, { AgentMetrics }, { serveHttp }] = await Promise.all([
      import('../../lib/agent/agent'),
      import('../../lib/agent/metrics'),
      import('../../lib/agent/http'),
    ]);
    const metrics = new AgentMetrics();
    const etcd = ctx.etcd;
    const agent = new NodeAgent(ctx, metrics, {
      resyncSeconds,
      datastoreGraceSeconds,
      // on etcd the node registers itself and claims its first blocks before anything is applied
      prepare: etcd && (() => registerNode(ctx, etcd, labels)),
      afterFullApply: etcd && releaserFor(ctx, etcd, args.config, releaseAfter),
    });
    let server;
    try {
      server = await serveHttp(listen, agent, metrics);
    } catch (e) {
      lock.close();
      throw new Error(`--metrics-addr ${metricsAddr}: ${(e as Error).message}`);
    }
    log.info(
      `agent for node ${ctx.conf.nodeName} (${ctx.datastore.description}), health and metrics on ` +
        `http://${metricsAddr}, full resync every ${resyncSeconds} s`,
    );
    const mirror = source ? (await import('../../lib/agent/mirror')).mirrorFile(source, ctx.conf.file!) : undefined;
    agent.start();
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info(`${signal}: stopping; the dataplane stays as applied`);
    mirror?.close();
    await agent.stop();
    etcd?.close();
    server.close();
    lock.close();
    return 0;
  },
});
