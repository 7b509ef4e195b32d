import { describe, expect, it } from 'vitest';
import { ALL_VERSIONS, expectCniError, expectResult, expectSilentSuccess, show, TestNode } from '../helpers/cni';
import { links, nsPath, tabbyVeths, useSandbox } from '../helpers/netns';

// cni-spec.md §6 checks 1–5, and the I/O discipline: errors as JSON on stdout, logs never there.

const sb = useSandbox();

describe('VERSION (check 1)', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['stdin {"cniVersion":"1.1.0"}', {}, '{"cniVersion":"1.1.0"}'],
    [
      'libcni probe env (dummy NETNS/IFNAME/PATH)',
      { CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: 'dummy' },
      '{"cniVersion":"1.1.0"}',
    ],
    ['empty stdin', {}, ''],
    ['an old config version on stdin', {}, '{"cniVersion":"0.3.1"}'],
  ];
  it.each(cases)('%s: one JSON object listing every version', async (_, extra, stdin) => {
    const node = await TestNode.create(sb);
    const r = await node.tabby({ CNI_COMMAND: 'VERSION', ...extra }, stdin);
    const v = expectResult(r);
    expect(r.stdout.trim().split('\n'), show(r)).toHaveLength(1);
    expect(typeof v.cniVersion === 'string' && v.cniVersion.length > 0, show(r)).toBe(true);
    expect(v.supportedVersions, show(r)).toEqual(expect.arrayContaining(ALL_VERSIONS));
    for (const sv of v.supportedVersions) expect(sv).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('bad requests', () => {
  it('an unknown CNI_COMMAND is code 4 (check 2)', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const r = await node.tabby(node.env('FOO', 'c1', nsPath(pod)), node.conf());
    expectCniError(r, 4, /FOO/);
  });

  it.each(['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'])('ADD without %s is code 4 naming it (check 3)', async (v) => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const r = await node.tabby(node.env('ADD', 'c1', nsPath(pod), 'eth0', { [v]: undefined }), node.conf());
    expectCniError(r, 4, new RegExp(v));
    expect(await tabbyVeths(node.name)).toEqual([]);
    expect(node.reservations()).toEqual([]);
  });

  it('ADD without all three names all three (check 3)', async () => {
    const node = await TestNode.create(sb);
    const r = await node.tabby({ CNI_COMMAND: 'ADD', CNI_PATH: '/usr/lib/cni' }, node.conf());
    expectCniError(r, 4, /CNI_CONTAINERID.*CNI_NETNS.*CNI_IFNAME/);
  });

  it('stdin that is not JSON is code 6 (check 4)', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    expectCniError(await node.tabby(node.env('ADD', 'c1', nsPath(pod)), 'nojson'), 6);
  });

  it('an unknown cniVersion is code 1 (check 4)', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    expectCniError(await node.add(pod, 'c1', { version: '9.9.9' }), 1, /9\.9\.9/);
    expect(node.reservations()).toEqual([]);
  });

  it('a bad network name is code 7 (check 4)', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    expectCniError(await node.add(pod, 'c1', { conf: node.conf({ name: 'bad name!' }) }), 7);
    expect(await tabbyVeths(node.name)).toEqual([]);
  });

  it('a bad container ID is code 4', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    expectCniError(await node.add(pod, '-bad id'), 4, /CNI_CONTAINERID/);
  });

  it.each(['abcdefghijklmnop', 'a/b', 'a b', '..'])(
    'CNI_IFNAME=%j is code 4 and creates nothing (check 5)',
    async (ifname) => {
      const node = await TestNode.create(sb);
      const pod = await sb.netns();
      const r = await node.add(pod, 'c1', { ifname });
      expectCniError(r, 4, /CNI_IFNAME/);
      expect(await tabbyVeths(node.name)).toEqual([]);
      expect((await links(pod)).map((l) => l.ifname)).toEqual(['lo']);
      expect(node.reservations()).toEqual([]);
    },
  );

  it('a missing netns is an error and leaves no reservation', async () => {
    const node = await TestNode.create(sb);
    const r = await node.add('unused', 'c1', { netns: '/var/run/netns/tbt-does-not-exist' });
    expect(r.code, show(r)).not.toBe(0);
    expect(r.json?.code, show(r)).toBeTypeOf('number');
    expect(node.reservations()).toEqual([]);
  });

  it('an invalid config field is code 7 naming it', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    expectCniError(
      await node.add(pod, 'c1', { conf: node.conf({ ipam: { ranges: [[{ subnet: '10.244.1.0/33' }]] } }) }),
      7,
      /subnet/,
    );
    expectCniError(await node.add(pod, 'c1', { conf: node.conf({ mtu: 20 }) }), 7, /mtu/);
    const noIpam = node.conf();
    delete noIpam.ipam;
    expectCniError(await node.add(pod, 'c1', { conf: noIpam }), 7, /ipam/);
    expect(await tabbyVeths(node.name)).toEqual([]);
    expect(node.reservations()).toEqual([]);
  });
});

describe('output discipline', () => {
  it('logs go to stderr and the log file, never stdout, even at debug level', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const conf = node.conf({ logLevel: 'debug' });
    const add = await node.add(pod, 'c1', { conf });
    const res = expectResult(add);
    expect(add.stdout.trim().split('\n'), show(add)).toHaveLength(1);
    expect(add.stderr.length, 'debug logging should reach stderr').toBeGreaterThan(0);
    expectSilentSuccess(await node.check(pod, 'c1', { conf, prevResult: res }));
    expectSilentSuccess(await node.del(pod, 'c1', { conf }));
    const fs = await import('node:fs');
    expect(fs.readFileSync(node.logFile, 'utf8')).toMatch(/ADD c1\/eth0/);
  });

  it('an error is one JSON object on stdout carrying the request cniVersion', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const r = await node.add(pod, 'c1', { version: '0.4.0', conf: node.conf({ mtu: 20 }) });
    expectCniError(r, 7);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(Object.keys(r.json).sort()).toEqual(expect.arrayContaining(['code', 'msg']));
  });
});
