import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseInstallArgs, validateConflist } from '../../cmd/cli/install';
import { parseClusterText } from '../../conf/calico';

// deploy/tabby-daemonset.yaml is consistent with what tabby install and the plugin read: the
// ConfigMap's conflist and cluster file are valid, and every path a container writes lands where the
// conflist (read by the plugin on the host) looks for it.

const file = path.join(__dirname, '../../deploy/tabby-daemonset.yaml');
const docs = parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => d.toJS());
const configMap = docs.find((d) => d.kind === 'ConfigMap');
const ds = docs.find((d) => d.kind === 'DaemonSet');
const pod = ds.spec.template.spec;

interface Container {
  name: string;
  command: string[];
  volumeMounts: { name: string; mountPath: string }[];
}

/** The node path behind a path inside the container (through its hostPath mounts). */
function hostPath(c: Container, p: string): string | undefined {
  const m = c.volumeMounts
    .filter((v) => p === v.mountPath || p.startsWith(v.mountPath + '/'))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  const vol = pod.volumes.find((v: { name: string }) => v.name === m?.name);
  return vol?.hostPath ? vol.hostPath.path + p.slice(m!.mountPath.length) : undefined;
}

const installOpts = (c: Container) => {
  expect(c.command.slice(0, 2)).toEqual(['/usr/local/bin/tabby', 'install']);
  return parseInstallArgs(c.command.slice(2).map((a) => a.replace('$(NODE_NAME)', 'node-a')));
};

describe('deploy/tabby-daemonset.yaml', () => {
  const conflist = configMap.data['10-tabby.conflist'];
  const conf = JSON.parse(conflist);

  it('ships a valid conflist and cluster file in its ConfigMap', async () => {
    expect(validateConflist(conflist, 'ConfigMap')).toEqual(['tabby', 'portmap', 'bandwidth']);
    // libcni before 1.2 (containerd 1.6/1.7) reads cniVersion and parses results up to 1.0.0.
    expect(conf.cniVersion).toBe('1.0.0');
    const r = await parseClusterText(configMap.data['cluster.yaml']);
    expect(r.pools.map((p) => p.name)).toEqual(['pool-a']);
  });

  it("runs tabby install from an init container into the node's CNI directories", () => {
    expect(pod.hostNetwork).toBe(true);
    const [init] = pod.initContainers as Container[];
    const { opts } = installOpts(init);
    expect(opts.skipBinaries).toBe(false);
    expect(hostPath(init, opts.binDir)).toBe('/opt/cni/bin');
    expect(hostPath(init, opts.confDir)).toBe('/etc/cni/net.d');
    // The cluster file lands where the installed conflist says it is.
    expect(hostPath(init, opts.clusterDest)).toBe(conf.plugins[0].cluster);
    expect(init.volumeMounts.find((m) => m.mountPath === path.dirname(opts.conflist))?.name).toBe('config');
    expect(opts.nodeName).toBe('node-a');
  });

  it("runs tabby agent on the installed conflist, seeing the node's paths where the conflist names them", () => {
    const [agent] = pod.containers as (Container & { readinessProbe: any; livenessProbe: any })[];
    expect(agent.command.slice(0, 2)).toEqual(['/usr/local/bin/tabby', 'agent']);
    const flag = (name: string) => agent.command.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
    const init = pod.initContainers[0] as Container;
    const { opts } = installOpts(init);
    // the conflist tabby install wrote (with the node's name) is the one the agent reads
    expect(hostPath(agent, flag('--config')!)).toBe(hostPath(init, path.join(opts.confDir, opts.confName)));
    // the ConfigMap's cluster file is mirrored to where the plugin on the host reads it
    expect(agent.volumeMounts.find((m) => m.mountPath === path.dirname(flag('--cluster-source')!))?.name).toBe(
      'config',
    );
    for (const p of [conf.plugins[0].cluster, conf.plugins[0].logFile, '/run/tabby/x'])
      expect(hostPath(agent, p)).toBe(p);
    // probes on /healthz, where --metrics-addr serves it
    const [host, port] = flag('--metrics-addr')!.split(':');
    for (const probe of [agent.readinessProbe, agent.livenessProbe]) {
      expect(probe.httpGet).toEqual({ host, port: Number(port), path: '/healthz' });
    }
  });
});
