import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseIpamConf } from '../../ipam/config';
import { parseCniArgs } from '../../lib/cni/args';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from '../../ipam/ipam';
import { expectCniErrorAsync } from './cni-error';

let dataDir: string;
let netDir: string;
beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-ipam-'));
  netDir = path.join(dataDir, 'net1');
});
afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

const V4 = [{ subnet: '10.0.0.0/29' }]; // .1 gateway, leases .2-.6
const V6 = [{ subnet: 'fd00::/125' }]; // ::1 gateway, leases ::2-::7
const conf = (ranges: unknown[][] = [V4], args = '', extra: Record<string, unknown> = {}) =>
  parseIpamConf(
    {
      cniVersion: '1.1.0',
      name: 'net1',
      ipam: { type: 'tabby-ipam', dataDir, ranges, routes: [{ dst: '0.0.0.0/0' }] },
      ...extra,
    },
    { command: 'ADD', containerId: 'x', netns: '/x', ifname: 'eth0', args: parseCniArgs(args), path: [] },
  );
const who = (containerId: string, ifname = 'eth0') => ({ containerId, ifname });
const addr = async (id: string, c = conf(), ifname = 'eth0') =>
  (await ipamAdd(c, who(id, ifname))).ips!.map((i) => i.address);
const files = () =>
  fs
    .readdirSync(netDir)
    .filter((f) => f !== 'tabby.lock')
    .sort();
const held = () => files().filter((f) => !f.startsWith('last_reserved_ip.'));

describe('ipamAdd', () => {
  it('allocates sequentially from .2, skipping the gateway, and returns an IPAM result', async () => {
    const r = await ipamAdd(conf(), who('c1'));
    expect(r).toEqual({ ips: [{ address: '10.0.0.2/29', gateway: '10.0.0.1' }], routes: [{ dst: '0.0.0.0/0' }] });
    expect(await addr('c2')).toEqual(['10.0.0.3/29']);
    expect(await addr('c3')).toEqual(['10.0.0.4/29']);
  });

  it("writes host-local's on-disk format", async () => {
    await addr('c1');
    await addr('c2', conf(), 'net1');
    expect(files()).toEqual(['10.0.0.2', '10.0.0.3', 'last_reserved_ip.0']);
    expect(fs.readFileSync(path.join(netDir, '10.0.0.2'), 'utf8')).toBe('c1\r\neth0');
    expect(fs.readFileSync(path.join(netDir, '10.0.0.3'), 'utf8')).toBe('c2\r\nnet1');
    expect(fs.readFileSync(path.join(netDir, 'last_reserved_ip.0'), 'utf8')).toBe('10.0.0.3');
    expect(fs.statSync(path.join(netDir, '10.0.0.2')).mode & 0o777).toBe(0o600);
  });

  it('names IPv6 files as Go prints them, one last_reserved_ip per rangeset', async () => {
    const c = conf([V4, V6]);
    expect(await addr('c1', c)).toEqual(['10.0.0.2/29', 'fd00::2/125']);
    expect(files()).toEqual(['10.0.0.2', 'fd00::2', 'last_reserved_ip.0', 'last_reserved_ip.1']);
    expect(fs.readFileSync(path.join(netDir, 'fd00::2'), 'utf8')).toBe('c1\r\neth0');
    expect(fs.readFileSync(path.join(netDir, 'last_reserved_ip.1'), 'utf8')).toBe('fd00::2');
  });

  it('does not reuse a released address until the range wraps around', async () => {
    await addr('c1'); // .2
    await addr('c2'); // .3
    await ipamDel(conf(), who('c1'));
    expect(await addr('c3')).toEqual(['10.0.0.4/29']);
    expect(await addr('c4')).toEqual(['10.0.0.5/29']);
    expect(await addr('c5')).toEqual(['10.0.0.6/29']);
    expect(await addr('c6')).toEqual(['10.0.0.2/29']); // wrapped, .3 still held
    expect(fs.readFileSync(path.join(netDir, 'last_reserved_ip.0'), 'utf8')).toBe('10.0.0.2');
  });

  it('fails with code 101 naming the range when it is full', async () => {
    for (let i = 0; i < 5; i++) await addr(`c${i}`);
    await expectCniErrorAsync(
      ipamAdd(conf(), who('c9')),
      101,
      'no IP addresses available in range set: 10.0.0.1-10.0.0.6',
    );
    expect(held()).toHaveLength(5);
  });

  it('gives a free requested IP', async () => {
    expect(await addr('c1', conf([V4], 'IP=10.0.0.5'))).toEqual(['10.0.0.5/29']);
    expect(await addr('c2', conf([V4, V6], '', { runtimeConfig: { ips: ['fd00::7/125'] } }))).toEqual([
      '10.0.0.6/29',
      'fd00::7/125',
    ]);
  });

  it('fails on a taken requested IP and keeps nothing from the call', async () => {
    await addr('c1', conf([V4, V6])); // 10.0.0.2, fd00::2
    const before = held();
    await expectCniErrorAsync(
      ipamAdd(conf([V4, V6], 'IP=fd00::2'), who('c2')),
      102,
      /fd00::2 is already in use by container c1/,
    );
    expect(held()).toEqual(before); // 10.0.0.3 was taken for the first rangeset, then rolled back
  });

  it('refuses the gateway or an address outside every range, keeping nothing', async () => {
    await expectCniErrorAsync(ipamAdd(conf([V4], 'IP=10.0.0.1'), who('c1')), 102, /10\.0\.0\.1 is the gateway/);
    await expectCniErrorAsync(
      ipamAdd(conf([V4], 'IP=10.0.0.7'), who('c1')),
      102,
      /10\.0\.0\.7 is outside every configured range/,
    );
    expect(held()).toEqual([]);
  });

  it('rejects a duplicate (containerID, ifname) but allows another ifname', async () => {
    await addr('c1');
    await expectCniErrorAsync(
      ipamAdd(conf(), who('c1')),
      102,
      /c1\/eth0 already holds 10\.0\.0\.2 \(duplicate allocation\)/,
    );
    expect(await addr('c1', conf(), 'net1')).toEqual(['10.0.0.3/29']);
    expect(held()).toEqual(['10.0.0.2', '10.0.0.3']);
  });

  it('returns configured dns', async () => {
    const f = path.join(dataDir, 'resolv.conf');
    fs.writeFileSync(f, 'nameserver 10.96.0.10\n');
    const c = parseIpamConf(
      { name: 'net1', ipam: { type: 'tabby-ipam', dataDir, ranges: [V4], resolvConf: f } },
      { command: 'ADD', containerId: 'x', netns: '/x', ifname: 'eth0', args: parseCniArgs(''), path: [] },
    );
    expect((await ipamAdd(c, who('c1'))).dns).toEqual({ nameservers: ['10.96.0.10'] });
  });

  it('without ranges fails with code 7', async () => {
    await expectCniErrorAsync(ipamAdd(conf([]), who('c1')), 7, /no IP ranges/);
  });
});

describe('ipamDel / ipamCheck', () => {
  it("releases only the attachment's addresses; repeating it succeeds", async () => {
    await addr('c1', conf([V4, V6]));
    await addr('c1', conf([V4, V6]), 'net1');
    expect((await ipamDel(conf([V4, V6]), who('c1'))).sort()).toEqual(['10.0.0.2', 'fd00::2']);
    expect(held()).toEqual(['10.0.0.3', 'fd00::3']);
    expect(await ipamDel(conf([V4, V6]), who('c1'))).toEqual([]);
    expect(await ipamDel(conf(), who('nobody'))).toEqual([]);
  });

  it('releases a legacy reservation holding only the container ID', async () => {
    fs.mkdirSync(netDir, { recursive: true });
    fs.writeFileSync(path.join(netDir, '10.0.0.4'), 'old');
    expect(await ipamCheck(conf(), who('old', 'eth3'))).toEqual(['10.0.0.4']);
    expect(await ipamDel(conf(), who('old', 'eth3'))).toEqual(['10.0.0.4']);
    expect(held()).toEqual([]);
  });

  it('CHECK fails with code 106 when nothing is held', async () => {
    await addr('c1');
    expect(await ipamCheck(conf(), who('c1'))).toEqual(['10.0.0.2']);
    await expectCniErrorAsync(ipamCheck(conf(), who('c1', 'net1')), 106, /no reservation for c1\/net1/);
  });
});

describe('ipamGc', () => {
  it('releases everything not in the valid list', async () => {
    for (const id of ['c1', 'c2', 'c3']) await addr(id);
    await addr('c2', conf(), 'net1');
    const { released } = await ipamGc(conf(), [who('c2'), who('gone')]);
    expect(released.map((r) => `${r.ip} ${r.containerId}/${r.ifname}`).sort()).toEqual([
      '10.0.0.2 c1/eth0',
      '10.0.0.4 c3/eth0',
      '10.0.0.5 c2/net1',
    ]);
    expect(held()).toEqual(['10.0.0.3']);
    expect(fs.existsSync(path.join(netDir, 'last_reserved_ip.0'))).toBe(true);
  });

  it('with an empty list releases everything; keeps a legacy reservation whose container is valid', async () => {
    fs.mkdirSync(netDir, { recursive: true });
    fs.writeFileSync(path.join(netDir, '10.0.0.6'), 'old');
    await addr('c1');
    await ipamGc(conf(), [who('old', 'eth0')]);
    expect(held()).toEqual(['10.0.0.6']);
    await ipamGc(conf(), []);
    expect(held()).toEqual([]);
  });
});

describe('ipamStatus', () => {
  it('succeeds on a fresh store and while addresses remain', async () => {
    await expect(ipamStatus(conf([V4, V6]))).resolves.toBeUndefined();
    for (let i = 0; i < 4; i++) await addr(`c${i}`);
    await expect(ipamStatus(conf())).resolves.toBeUndefined();
  });

  it('fails with code 50 naming the full rangeset', async () => {
    for (let i = 0; i < 5; i++) await addr(`c${i}`, conf([V6, V4]));
    await expect(ipamStatus(conf([V6]))).resolves.toBeUndefined();
    await expectCniErrorAsync(ipamStatus(conf([V6, V4])), 50, /no free address in range set 10\.0\.0\.1-10\.0\.0\.6/);
  });

  it('fails with code 50 when the store is unusable', async () => {
    fs.writeFileSync(netDir, 'not a directory');
    await expectCniErrorAsync(ipamStatus(conf()), 50, /IPAM store for network net1 is unusable/);
  });
});
