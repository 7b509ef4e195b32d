import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseDatastoreConf } from '../../conf/datastore';
import { parseNetConf } from '../../conf/netconf';
import { resourcesFromDocuments } from '../../conf/calico';
import { blockCandidates, blockCount, fnv1a32 } from '../../ipam/block-order';
import { formatCidr, parseCidr } from '../../lib/net/addr';
import { claimPlan } from '../../lib/datastore/etcd-blocks';
import { EtcdKeys } from '../../lib/datastore/etcd-keys';
import { parseNodeLabels } from '../../lib/cluster/registration';

const base = { name: 'net', ipam: { type: 'tabby-ipam' } };
const etcd = (extra: object = {}) => ({ type: 'etcd', endpoints: ['https://192.168.10.100:2379'], ...extra });

describe('the datastore key', () => {
  it('reads endpoints, prefix, TLS files and credentials', () => {
    const c = parseDatastoreConf({
      datastore: etcd({
        prefix: '/tabby',
        caFile: '/ca.pem',
        certFile: '/c.pem',
        keyFile: '/k.pem',
        username: 'u',
        password: 'p',
      }),
    });
    expect(c).toMatchObject({
      endpoints: ['https://192.168.10.100:2379'],
      prefix: '/tabby',
      caFile: '/ca.pem',
      username: 'u',
    });
  });

  it('defaults the prefix to /tabby', () => {
    expect(parseDatastoreConf({ datastore: etcd() })?.prefix).toBe('/tabby');
  });

  it.each([
    [{ type: 'consul' }, /datastore.type: must be "etcd"/],
    [etcd({ endpoints: [] }), /datastore.endpoints: needs at least one endpoint/],
    [etcd({ endpoints: ['10.0.0.1:2379'] }), /datastore.endpoints\[0\]: must be an http/],
    [etcd({ prefix: 'tabby/' }), /datastore.prefix: must be an absolute key path/],
    [etcd({ certFile: '/c.pem' }), /datastore.keyFile: is required with the other/],
    [etcd({ caFile: 'ca.pem' }), /datastore.caFile: must be an absolute path/],
    [etcd({ password: 'hunter2' }), /datastore.username: is required with a password/],
  ])('refuses %j', (d, msg) => {
    expect(() => parseDatastoreConf({ datastore: d })).toThrow(msg);
  });

  it('never echoes a credential or an endpoint in its errors', () => {
    const secret = 'https://root:s3cr3t@10.0.0.1';
    let text = '';
    try {
      parseDatastoreConf({ datastore: etcd({ endpoints: [secret] }) });
    } catch (e) {
      text = (e as Error).message;
    }
    expect(text).toMatch(/datastore.endpoints\[0\]/);
    expect(text).not.toMatch(/s3cr3t|10\.0\.0\.1/);
  });

  it('is one datastore or the other, never both', () => {
    expect(() => parseNetConf({ ...base, cluster: '/etc/tabby/cluster.yaml', datastore: etcd() }, '1.0.0')).toThrow(
      /datastore: cannot be given with "cluster"/,
    );
    const conf = parseNetConf({ ...base, nodeName: 'node-a', datastore: etcd() }, '1.0.0');
    expect(conf.cluster?.etcd?.endpoints).toHaveLength(1);
    expect(conf.cluster?.file).toBeUndefined();
  });
});

describe('which block a node tries first', () => {
  const pool = parseCidr('10.244.0.0/16')!;

  it('FNV-1a 32 of the node name', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('every block once, from a start that depends on the name, in order with wraparound', () => {
    const all = [...blockCandidates(pool, 24, 'node-a')].map(formatCidr);
    expect(all).toHaveLength(256);
    expect(new Set(all).size).toBe(256);
    const start = fnv1a32('node-a') % 256;
    expect(all[0]).toBe(`10.244.${start}.0/24`);
    expect(all[1]).toBe(`10.244.${(start + 1) % 256}.0/24`);
    expect([...blockCandidates(pool, 24, 'node-b')][0]).not.toBe(all[0]);
    expect(blockCount(pool, 26)).toBe(1024n);
  });
});

describe('what a node may claim from', () => {
  const doc = (name: string, spec: object) => ({
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name },
    spec,
  });
  const r = resourcesFromDocuments([
    doc('b-zone-a', { cidr: '10.1.0.0/16', nodeSelector: "zone == 'a'" }),
    doc('a-all', { cidr: '10.2.0.0/16' }),
    doc('off', { cidr: '10.3.0.0/16', disabled: true }),
    doc('lb', { cidr: '10.4.0.0/16', allowedUses: ['LoadBalancer'] }),
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPAMConfiguration',
      metadata: { name: 'default' },
      spec: { maxBlocksPerHost: 3 },
    },
  ]);

  it('enabled workload pools whose nodeSelector matches, by name, with the block limit', () => {
    expect(claimPlan(r.pools, { name: 'n', labels: { zone: 'a' } }, r.ipamConfig)).toMatchObject({
      pools: [{ name: 'a-all' }, { name: 'b-zone-a' }],
      maxBlocksPerHost: 3,
    });
    expect(claimPlan(r.pools, { name: 'n', labels: { zone: 'b' } }).pools.map((p) => p.name)).toEqual(['a-all']);
    expect(claimPlan([], { name: 'n', labels: {} }).maxBlocksPerHost).toBe(20); // Calico's 0 rule
  });

  it('says why when no pool gives blocks', () => {
    const only = r.pools.filter((p) => p.name !== 'a-all');
    expect(claimPlan(only, { name: 'n', labels: {} }).refusal).toBe(
      "no IPPool gives blocks to node n (b-zone-a: nodeSelector zone == 'a' does not match; off: disabled; " +
        'lb: not for workloads (allowedUses))',
    );
  });

  it('a nodeSelector that does not parse is refused, naming the position', () => {
    expect(() => resourcesFromDocuments([doc('bad', { cidr: '10.9.0.0/16', nodeSelector: "zone == 'a" })])).toThrow(
      /IPPool bad\): spec.nodeSelector: "zone == 'a": at position 8/,
    );
  });
});

describe('the etcd layout', () => {
  const k = new EtcdKeys('/tabby');
  it('Calico-style keys for resources and blocks', () => {
    expect(k.resource('IPPool', 'pool-a')).toBe('/tabby/resources/v3/projectcalico.org/ippools/pool-a');
    expect(k.block(parseCidr('10.244.3.64/26')!)).toBe('/tabby/ipam/v2/assignment/ipv4/block/10.244.3.64-26');
    expect(formatCidr(k.blockCidr('/tabby/ipam/v2/assignment/ipv4/block/10.244.3.64-26')!)).toBe('10.244.3.64/26');
    expect(k.resourceOf('/tabby/resources/v3/projectcalico.org/nodes/node-a')).toEqual({
      kind: 'Node',
      name: 'node-a',
    });
  });

  it('--node-labels', () => {
    expect(parseNodeLabels('zone=a, kubernetes.io/hostname=n1')).toEqual({ zone: 'a', 'kubernetes.io/hostname': 'n1' });
    expect(() => parseNodeLabels('zone')).toThrow(/"zone" is not key=value/);
  });
});

describe('deploy/tabby-daemonset-etcd.yaml', () => {
  const file = path.join(__dirname, '../../deploy/tabby-daemonset-etcd.yaml');
  const docs = parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => d.toJS());
  const conflist = JSON.parse(docs.find((d) => d.kind === 'ConfigMap').data['10-tabby.conflist']);
  const pod = docs.find((d) => d.kind === 'DaemonSet').spec.template.spec;

  it('ships a conflist tabby reads as an etcd datastore', () => {
    const conf = parseNetConf({ ...conflist.plugins[0], name: conflist.name }, conflist.cniVersion);
    expect(conf.cluster?.etcd?.endpoints.length).toBe(3);
  });

  it('puts the client files where the plugin on the host reads them, and the agent sees the same paths', () => {
    const ds = conflist.plugins[0].datastore;
    const [certs] = pod.initContainers;
    const copied = certs.command.filter((a: string) => a.startsWith('/secret/')).map((a: string) => path.basename(a));
    expect(copied.sort()).toEqual([ds.caFile, ds.certFile, ds.keyFile].map((f: string) => path.basename(f)).sort());
    const hostDir = pod.volumes.find((v: any) => v.name === 'host-etcd-certs').hostPath.path;
    expect(path.dirname(ds.caFile)).toBe(hostDir);
    const agent = pod.containers[0];
    expect(agent.volumeMounts.find((m: any) => m.name === 'host-etcd-certs').mountPath).toBe(hostDir);
    expect(agent.command.slice(0, 2)).toEqual(['/usr/local/bin/tabby', 'agent']);
    expect(agent.readinessProbe.httpGet.path).toBe('/healthz');
    expect(agent.env.find((e: any) => e.name === 'NODE_NAME').valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
  });
});
