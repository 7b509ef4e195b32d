import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CniRun, expectResult, expectSilentSuccess, show } from '../helpers/cni';
import { HOST_LOCAL, ipamOnlyConf, ipamRun, reservationMap, tabbyIpamDir } from '../helpers/ipam';
import { useSandbox } from '../helpers/netns';

// One data directory, two IPAM plugins taking turns: tabby (as tabby-ipam) and the reference host-local
// (Debian containernetworking-plugins v1.1.1). Each must skip the addresses the other has handed out,
// continue from the other's last_reserved_ip, and release the other's reservations on DEL.

const sb = useSandbox();

async function setup(ranges: object[][]) {
  const node = await sb.nodeNetns();
  const dataDir = sb.tmpdir();
  const tabbyIpam = [path.join(tabbyIpamDir(sb), 'tabby-ipam')];
  const confs = {
    tabby: ipamOnlyConf({ type: 'tabby-ipam', network: 'inet', dataDir, ranges }),
    host: ipamOnlyConf({ type: 'host-local', network: 'inet', dataDir, ranges }),
  };
  const dir = path.join(dataDir, 'inet');
  const tabby = (cmd: string, cid: string) => ipamRun(node, tabbyIpam, cmd, cid, confs.tabby);
  const host = (cmd: string, cid: string) => ipamRun(node, [HOST_LOCAL], cmd, cid, confs.host);
  return { dir, tabby, host };
}

const addrs = (r: CniRun): string[] => expectResult(r).ips.map((i: { address: string }) => i.address);
const lastReserved = (dir: string, i = 0): string => fs.readFileSync(path.join(dir, `last_reserved_ip.${i}`), 'utf8');

function expectFull(r: CniRun): void {
  expect(r.code, show(r)).not.toBe(0);
  expect(r.json?.msg, show(r)).toMatch(/no IP addresses available in range set: 10\.7\.0\.[12]-10\.7\.0\.6/);
}

describe('tabby and the reference host-local on one data directory', () => {
  // 10.7.0.0/29: the gateway is .1, leases are .2 to .6
  const V4 = [[{ subnet: '10.7.0.0/29' }]];

  it("host-local reads tabby's reservations, then tabby reads host-local's; each DELs the other's", async () => {
    const { dir, tabby, host } = await setup(V4);

    // 1. tabby writes, host-local reads
    expect(addrs(await tabby('ADD', 't1'))).toEqual(['10.7.0.2/29']);
    expect(addrs(await tabby('ADD', 't2'))).toEqual(['10.7.0.3/29']);
    expect(addrs(await tabby('ADD', 't3'))).toEqual(['10.7.0.4/29']);
    expectSilentSuccess(await tabby('DEL', 't2'));
    expect(lastReserved(dir)).toBe('10.7.0.4');
    // host-local continues after tabby's last reservation...
    expect(addrs(await host('ADD', 'h1'))).toEqual(['10.7.0.5/29']);
    expect(addrs(await host('ADD', 'h2'))).toEqual(['10.7.0.6/29']);
    // ...wraps around, skips t1's .2, takes the .3 tabby released...
    expect(addrs(await host('ADD', 'h3'))).toEqual(['10.7.0.3/29']);
    // ...and finds the range full: t1's .2 and t3's .4 are in use
    expectFull(await host('ADD', 'h4'));
    expect(reservationMap(dir)).toEqual({
      '10.7.0.2': 't1\r\neth0',
      '10.7.0.3': 'h3\r\neth0',
      '10.7.0.4': 't3\r\neth0',
      '10.7.0.5': 'h1\r\neth0',
      '10.7.0.6': 'h2\r\neth0',
    });
    // host-local sees tabby's reservation on CHECK, and releases it on DEL
    expectSilentSuccess(await host('CHECK', 't3'));
    expectSilentSuccess(await host('DEL', 't1'));
    expect(Object.keys(reservationMap(dir))).not.toContain('10.7.0.2');

    // 2. host-local wrote last: tabby reads its state
    expect(lastReserved(dir)).toBe('10.7.0.3');
    expectSilentSuccess(await tabby('DEL', 'h2')); // tabby releases host-local's .6
    expect(Object.keys(reservationMap(dir))).not.toContain('10.7.0.6');
    // tabby continues after host-local's last (.3), skips t3's .4 and host-local's .5, takes .6...
    expect(addrs(await tabby('ADD', 't4'))).toEqual(['10.7.0.6/29']);
    // ...wraps to the .2 host-local released...
    expect(addrs(await tabby('ADD', 't5'))).toEqual(['10.7.0.2/29']);
    // ...and finds the range full: host-local's .3 and .5 are in use
    expectFull(await tabby('ADD', 't6'));
    expectSilentSuccess(await tabby('CHECK', 'h1'));
    expect(lastReserved(dir)).toBe('10.7.0.2');

    // DELs across: each releases the other's
    for (const cid of ['t3', 't4', 't5']) expectSilentSuccess(await host('DEL', cid));
    for (const cid of ['h1', 'h3']) expectSilentSuccess(await tabby('DEL', cid));
    expect(reservationMap(dir)).toEqual({});
    // and each still works on the directory the other left
    expect(addrs(await host('ADD', 'h5'))).toEqual(['10.7.0.3/29']);
    expect(addrs(await tabby('ADD', 't7'))).toEqual(['10.7.0.4/29']);
    expect(reservationMap(dir)).toEqual({ '10.7.0.3': 'h5\r\neth0', '10.7.0.4': 't7\r\neth0' });
  });

  it("dual-stack: both name IPv6 files alike (Go's compressed form) and release each other's pair", async () => {
    const { dir, tabby, host } = await setup([[{ subnet: '10.8.0.0/24' }], [{ subnet: 'fd00:0:0:5::/120' }]]);
    expect(addrs(await tabby('ADD', 'd1'))).toEqual(['10.8.0.2/24', 'fd00:0:0:5::2/120']);
    expect(addrs(await host('ADD', 'd2'))).toEqual(['10.8.0.3/24', 'fd00:0:0:5::3/120']);
    expect(reservationMap(dir)).toEqual({
      '10.8.0.2': 'd1\r\neth0',
      '10.8.0.3': 'd2\r\neth0',
      'fd00:0:0:5::2': 'd1\r\neth0',
      'fd00:0:0:5::3': 'd2\r\neth0',
    });
    expect(lastReserved(dir, 1)).toBe('fd00:0:0:5::3');
    expect(addrs(await tabby('ADD', 'd3'))).toEqual(['10.8.0.4/24', 'fd00:0:0:5::4/120']);
    expectSilentSuccess(await host('DEL', 'd1'));
    expectSilentSuccess(await tabby('DEL', 'd2'));
    expect(reservationMap(dir)).toEqual({ '10.8.0.4': 'd3\r\neth0', 'fd00:0:0:5::4': 'd3\r\neth0' });
    expectSilentSuccess(await host('DEL', 'd3'));
    expect(reservationMap(dir)).toEqual({});
  });
});
