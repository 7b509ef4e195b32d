// Property-based: what a pod asks for (Calico's pool and address annotations, the CNI arguments) against
// a node's pools and blocks (issue 12 §3). podRequest reads the generated runtimeConfig and CNI_ARGS;
// choosePodBlocks either chooses among this node's blocks or refuses with a CNI error, never a crash.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CniError } from '../../lib/cni/errors';
import { readEnv } from '../../lib/cni/env';
import { resourcesFromDocuments } from '../../conf/calico';
import { podRequest } from '../../ipam/pod-request';
import { choosePodBlocks, NodeView, podPoolsOf } from '../../lib/cluster/pod-choice';
import { contains, parseCidr } from '../../lib/net/addr';
import {
  baseClusterDocs,
  baseConfig,
  cniArgs,
  fcParams,
  fcTimeout,
  KNOWN_CODES,
  mutate,
  runtimeMutations,
  toJsonText,
} from '../helpers/hostile';

/** node-a of the base cluster, plus a disabled pool and an IPv6 pool with a block each. */
function view(): NodeView {
  const docs = baseClusterDocs();
  const pool = (name: string, cidr: string, extra: object = {}) => ({
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name },
    spec: { cidr, blockSize: cidr.includes(':') ? 122 : 26, ...extra },
  });
  const block = (name: string, cidr: string) => ({
    apiVersion: 'projectcalico.org/v3',
    kind: 'BlockAffinity',
    metadata: { name },
    spec: { node: 'node-a', cidr },
  });
  docs.push(
    pool('off', '10.250.0.0/16', { disabled: true }),
    pool('v6', 'fd00:10::/112'),
    block('b6', 'fd00:10::/122'),
  );
  const r = resourcesFromDocuments(docs);
  const blocks = r.affinities.filter((a) => a.node === 'node-a').map((a) => a.cidr);
  return { node: 'node-a', blocks, reserved: [parseCidr('10.244.1.1/32')!.ip], pools: podPoolsOf(r, 'node-a') };
}

describe('pod pools and addresses, generated', () => {
  it(
    'a request is met from this node blocks, or refused with a CNI error',
    () => {
      const v = view();
      fc.assert(
        fc.property(runtimeMutations, cniArgs, (ms, args) => {
          const config = mutate(baseConfig('/nonexistent'), ms);
          const env = (() => {
            try {
              return readEnv({
                CNI_COMMAND: 'ADD',
                CNI_CONTAINERID: 'c',
                CNI_NETNS: '/x',
                CNI_IFNAME: 'eth0',
                CNI_PATH: '/x',
                CNI_ARGS: args,
              });
            } catch {
              return undefined; // CNI_ARGS refused: hostile-env's business
            }
          })();
          if (!env) return;
          try {
            const choice = choosePodBlocks(v, podRequest(JSON.parse(toJsonText(config)), env));
            for (const b of choice.blocks) expect(v.blocks).toContainEqual(b);
            for (const u of choice.unheld) expect(contains(u.block, u.address)).toBe(true);
          } catch (e) {
            if (!(e instanceof CniError))
              throw new Error(
                `threw ${(e as Error)?.constructor?.name}, not a CniError: ${(e as Error)?.message ?? e}`,
              );
            expect(KNOWN_CODES).toContain(e.code);
          }
        }),
        fcParams(1500),
      );
    },
    fcTimeout(1500, 20),
  );
});
