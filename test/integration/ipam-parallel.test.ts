import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectResult, expectSilentSuccess, show, TestNode } from '../helpers/cni';
import { delay, ipamOnlyConf, ipamRun, randInt, reservationMap, tabbyIpamDir } from '../helpers/ipam';
import { routes, tabbyVeths, useSandbox } from '../helpers/netns';

// Parallel pod starts on one node: every address handed out once, every address given back.

const sb = useSandbox();

describe('100 pods at once on one node (the full tabby plugin)', () => {
  it('100 parallel ADDs all succeed with 100 distinct addresses; 100 parallel DELs leave nothing', async () => {
    const N = 100;
    const node = await TestNode.create(sb);
    const pods = await Promise.all(Array.from({ length: N }, () => sb.netns()));
    const cids = pods.map((_, i) => `burst-${i}`);

    const adds = await Promise.all(pods.map((pod, i) => node.add(pod, cids[i])));
    const results = adds.map(expectResult);
    const ips = results.map((r) => r.ips[0].address.split('/')[0]);
    expect(new Set(ips).size).toBe(N);
    const files = reservationMap(node.ipamDir);
    expect(Object.keys(files).sort()).toEqual([...ips].sort());
    ips.forEach((ip, i) => expect(files[ip]).toBe(`${cids[i]}\r\neth0`));
    expect(await tabbyVeths(node.name)).toHaveLength(N);

    const dels = await Promise.all(pods.map((pod, i) => node.del(pod, cids[i])));
    dels.forEach(expectSilentSuccess);
    expect(reservationMap(node.ipamDir)).toEqual({});
    expect(await tabbyVeths(node.name)).toEqual([]);
    expect((await routes(node.name)).filter((r) => r.dev?.startsWith('tab'))).toEqual([]);
  }, 240_000); // a few seconds of CPU each way on 2 idle cores; generous for a loaded CI machine
});

describe('a storm of 500 ADDs and DELs in random order and timing', () => {
  // Through the tabby-ipam face (pure IPAM, no namespaces to wire): 500 runs of the full plugin, each
  // with its own pod namespace, would take minutes on a 2-core CI machine; the IPAM path (lock, store,
  // allocation) is the same code. 60 containers, so up to 60 processes contend at once.
  it('ends with exactly the live attachments reserved, and never gives one address to two live attachments', async () => {
    const OPS = 500;
    const CONTAINERS = 60;
    const node = await sb.nodeNetns();
    const dataDir = sb.tmpdir();
    const ranges = [[{ subnet: '10.66.0.0/24' }], [{ subnet: 'fd00:66::/120' }]];
    const conf = ipamOnlyConf({ type: 'tabby-ipam', network: 'storm', dataDir, ranges, version: '1.1.0' });
    const bin = [path.join(tabbyIpamDir(sb), 'tabby-ipam')];

    // Each container gets a chain of alternating operations (a runtime never runs two at once for one
    // attachment); most chains start with ADD, some with a DEL of nothing. The chains run concurrently.
    const counts = Array.from({ length: CONTAINERS }, () => 1);
    for (let left = OPS - CONTAINERS; left > 0; left--) counts[randInt(CONTAINERS)]++;
    const chains = counts.map((n) => {
      const first = Math.random() < 0.85 ? 'ADD' : 'DEL';
      return Array.from({ length: n }, (_, k) => ((k % 2 === 0) === (first === 'ADD') ? 'ADD' : 'DEL'));
    });

    interface Tenure {
      cid: string;
      ips: string[];
      from: bigint;
      to?: bigint;
    }
    const tenures: Tenure[] = [];
    const failures: string[] = [];
    let ran = 0;
    await Promise.all(
      chains.map(async (ops, c) => {
        const cid = `storm-${c}`;
        let held: Tenure | undefined;
        await delay(randInt(400));
        for (const op of ops) {
          await delay(randInt(40));
          if (op === 'DEL' && held) held.to = process.hrtime.bigint(); // no longer the holder from here on
          const r = await ipamRun(node, bin, op, cid, conf);
          ran++;
          if (r.code !== 0 || (op === 'ADD' && !r.json?.ips)) {
            failures.push(`${op} ${cid}: ${show(r)}`);
            continue;
          }
          if (op === 'ADD') {
            held = {
              cid,
              ips: r.json.ips.map((i: { address: string }) => i.address.split('/')[0]),
              from: process.hrtime.bigint(),
            };
            tenures.push(held);
          } else held = undefined;
        }
      }),
    );
    expect(failures).toEqual([]);
    expect(ran).toBe(OPS);

    // exactly the live attachments (chains that ended on ADD) hold addresses, the ones their ADD returned
    const live = tenures.filter((t) => t.to === undefined);
    expect(live.length).toBe(chains.filter((ops) => ops[ops.length - 1] === 'ADD').length);
    const expected: Record<string, string> = {};
    for (const t of live) for (const ip of t.ips) expected[ip] = `${t.cid}\r\neth0`;
    expect(reservationMap(path.join(dataDir, 'storm'))).toEqual(expected);
    expect(Object.keys(expected)).toHaveLength(2 * live.length);

    // no address was held by two attachments at once: tenures of one address never overlap
    const byIp = new Map<string, Tenure[]>();
    for (const t of tenures) for (const ip of t.ips) byIp.set(ip, [...(byIp.get(ip) ?? []), t]);
    const clashes: string[] = [];
    for (const [ip, ts] of byIp) {
      const sorted = [...ts].sort((a, b) => (a.from < b.from ? -1 : 1));
      for (let i = 1; i < sorted.length; i++) {
        const prevEnd = sorted[i - 1].to;
        if (prevEnd === undefined || prevEnd > sorted[i].from)
          clashes.push(`${ip}: ${sorted[i - 1].cid} and ${sorted[i].cid}`);
      }
    }
    expect(clashes).toEqual([]);
  }, 240_000);
});
