import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { show, tabbyArgv, TABBY_BIN } from '../helpers/cni';
import { nsExec, run, RunResult, useSandbox } from '../helpers/netns';
import { waitFor } from '../helpers/agent';
import { DiskStore } from '../../ipam/disk-store';
import { leafCommands } from '../../cmd/cli/main';

// The built tabby as people run it: every command's --help, unknown flags, errors about files,
// `tabby validate`, `tabby install` refusing a bad cluster file (and --watch keeping the good one),
// and `tabby ipam --config`.

const sb = useSandbox();

const tabby = (...args: string[]): Promise<RunResult> => {
  const [bin, ...pre] = tabbyArgv();
  return run(bin, [...pre, ...args], { env: { PATH: process.env.PATH } });
};
const showRun = (r: RunResult): string => show({ ...r, json: undefined });

// every command and subcommand, as the parser knows them
const COMMANDS = leafCommands().map((c) => c.name);

const doc = (kind: string, name: string, spec: string): string =>
  `apiVersion: projectcalico.org/v3\nkind: ${kind}\nmetadata: {name: ${name}}\nspec: ${spec}\n`;
const POOL = doc('IPPool', 'pool-a', '{cidr: 10.77.0.0/16, blockSize: 24}');
const NODE_A = doc('Node', 'node-a', '{bgp: {ipv4Address: 192.168.77.1/24}}');
const BLOCK_A = doc('BlockAffinity', 'node-a-1', '{node: node-a, cidr: 10.77.1.0/24}');
const GOOD = [POOL, NODE_A, BLOCK_A].join('---\n');

describe('every command', () => {
  it('answers --help and -h with its own help on stdout, exit 0 (groups too)', async () => {
    const runs = await Promise.all(
      [...COMMANDS, 'ipam'].flatMap((c) => [
        tabby(...c.split(' '), '--help').then((r) => ({ c, flag: '--help', r })),
        tabby(...c.split(' '), '-h').then((r) => ({ c, flag: '-h', r })),
      ]),
    );
    for (const { c, flag, r } of runs) {
      expect(r.code, `${c} ${flag}: ${showRun(r)}`).toBe(0);
      expect(r.stdout, `${c} ${flag}`).toMatch(new RegExp(`^Usage: tabby ${c} `));
      expect(r.stderr, `${c} ${flag}`).toBe('');
    }
    // `tabby help X` is `tabby X --help`
    const viaHelp = await tabby('help', 'ipam', 'check');
    expect(viaHelp.stdout).toBe(runs.find((x) => x.c === 'ipam check' && x.flag === '--help')!.r.stdout);
  });

  it('refuses an unknown flag with one line and its own short usage, exit 2, stdout empty', async () => {
    const runs = await Promise.all(COMMANDS.map((c) => tabby(...c.split(' '), '--bogus').then((r) => ({ c, r }))));
    for (const { c, r } of runs) {
      expect(r.code, `${c}: ${showRun(r)}`).toBe(2);
      expect(r.stdout, c).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, c).toEqual([
        `tabby ${c}: unknown flag --bogus`,
        expect.stringMatching(new RegExp(`^usage: tabby ${c}( |$)`)),
      ]);
    }
  });

  it('suggests the near miss for a flag or a command', async () => {
    const cases: [string[], string][] = [
      [['plan', '--confg', 'x'], 'tabby plan: unknown flag --confg (did you mean --config?)'],
      [['status', '--config', 'x', '--jsn'], 'tabby status: unknown flag --jsn (did you mean --json?)'],
      [['version', '--bogus'], 'tabby version: unknown flag --bogus'],
      [['ipam', 'list', '--data'], 'tabby ipam list: unknown flag --data (did you mean --data-dir?)'],
      [['pln'], 'tabby: unknown command "pln" (did you mean plan?)'],
      [['ipam', 'lst'], 'tabby ipam: unknown ipam command "lst" (did you mean list?)'],
      [['plan'], 'tabby plan: --config CONFLIST is required'],
      [['plan', '--config'], 'tabby plan: --config needs a value (--config CONFLIST)'],
      [['validate'], 'tabby validate: FILE is required'],
    ];
    for (const [args, line] of cases) {
      const r = await tabby(...args);
      expect(r.code, showRun(r)).toBe(2);
      expect(r.stderr.split('\n')[0]).toBe(line);
      expect(r.stderr.split('\n')[1]).toMatch(/^usage: tabby /);
    }
  });

  it('takes --flag=value as --flag value', async () => {
    const dir = sb.tmpdir();
    const [a, b] = await Promise.all([
      tabby('ipam', 'list', `--data-dir=${dir}`, '--network=net', '--json'),
      tabby('ipam', 'list', '--data-dir', dir, '--network', 'net', '--json'),
    ]);
    expect(a.code, showRun(a)).toBe(0);
    expect(a.stdout).toBe('[]\n');
    expect(b).toEqual(a);
  });

  it('names a file that is not JSON or not there, in words', async () => {
    const notJson = await tabby('plan', '--config', '/etc/passwd');
    expect(notJson.code, showRun(notJson)).toBe(1);
    expect(notJson.stderr).toMatch(/^tabby plan: \/etc\/passwd: not JSON \(.+\)\n$/);
    const missing = await tabby('status', '--config=/nonexistent/x.conflist');
    expect(missing.code, showRun(missing)).toBe(1);
    expect(missing.stderr).toBe('tabby status: /nonexistent/x.conflist: no such file\n');
    const ipam = await tabby('ipam', 'list', '--config', '/nonexistent/x.conflist');
    expect(ipam.stderr).toBe('tabby ipam list: /nonexistent/x.conflist: no such file\n');
  });
});

describe('tabby validate FILE', () => {
  const file = (name: string, text: string): string => {
    const f = path.join(sb.tmpdir(), name);
    fs.writeFileSync(f, text);
    return f;
  };

  it('exits 0 with a one-line summary for a valid file', async () => {
    const f = file('cluster.yaml', GOOD);
    const r = await tabby('validate', f);
    expect(r.code, showRun(r)).toBe(0);
    expect(r.stdout).toBe(`${f}: valid: 1 pool, 1 node, 1 block\n`);
    expect(r.stderr).toBe('');
  });

  it("exits 1 with the datastore's message: document, resource, field", async () => {
    const cases: [string, string][] = [
      [
        POOL.replace('blockSize: 24', 'blockSize: 31'),
        'document 1 (IPPool pool-a): spec.blockSize: must be between 20 and 30 for an IPv4 pool, got 31',
      ],
      [
        [POOL, NODE_A, BLOCK_A.replace('10.77.1.0/24', '10.78.1.0/24')].join('---\n'),
        'document 3 (BlockAffinity node-a-1): spec.cidr: 10.78.1.0/24 is in no IPPool',
      ],
      ['kind: IPPool\n  bad: [\n', 'document 1: (YAML): '],
      [
        doc('IPPool', 'p', '{cidr: 10.1.0.0/16, vxlanMode: Sometimes}'),
        'document 1 (IPPool p): spec.vxlanMode: must be one of',
      ],
    ];
    for (const [text, message] of cases) {
      const f = file('bad.yaml', text);
      const r = await tabby('validate', f);
      expect(r.code, showRun(r)).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`tabby validate: ${f}: ${message}`);
    }
  });

  it('refuses a file without an IPPool: an empty file never means "no pools"', async () => {
    for (const text of ['', '# nothing yet\n', NODE_A]) {
      const f = file('empty.yaml', text);
      const r = await tabby('validate', f);
      expect(r.code, showRun(r)).toBe(1);
      expect(r.stderr).toContain(`${f}: holds no IPPool`);
    }
    const missing = await tabby('validate', '/nonexistent/cluster.yaml');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('tabby validate: /nonexistent/cluster.yaml: no such file\n');
  });
});

describe('tabby install', () => {
  /** A temp node: a conflist source, and where the config files go (the conf dir does not exist yet). */
  function setup(conflist: object = { cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'tabby' }] }) {
    const dir = sb.tmpdir();
    const src = path.join(dir, 'src.conflist');
    fs.writeFileSync(src, JSON.stringify(conflist));
    const clusterSrc = path.join(dir, 'configmap-cluster.yaml');
    const confDir = path.join(dir, 'node/etc/cni/net.d');
    const clusterDest = path.join(dir, 'node/etc/tabby/cluster.yaml');
    const flags = [
      '--conflist',
      src,
      '--skip-binaries',
      `--cni-conf-dir=${confDir}`,
      '--cluster-file',
      clusterSrc,
      '--cluster-dest',
      clusterDest,
    ];
    return { dir, src, clusterSrc, confDir, clusterDest, flags };
  }

  it('refuses a bad or empty cluster file before writing anything, naming the problem', async () => {
    const s = setup();
    for (const [text, message] of [
      [POOL.replace('blockSize: 24', 'blockSize: 31'), 'got 31'],
      ['', 'holds no IPPool'],
      ['kind: IPPool\n  bad: [\n', '(YAML)'],
    ]) {
      fs.writeFileSync(s.clusterSrc, text);
      const r = await tabby('install', ...s.flags);
      expect(r.code, showRun(r)).toBe(1);
      expect(r.stderr).toContain(`tabby install: ${s.clusterSrc}: `);
      expect(r.stderr).toContain(message);
      expect(r.stdout).toBe('');
      expect(fs.existsSync(path.join(s.dir, 'node')), 'nothing written').toBe(false);
    }
    fs.writeFileSync(s.clusterSrc, GOOD);
    const ok = await tabby('install', ...s.flags);
    expect(ok.code, showRun(ok)).toBe(0);
    expect(ok.stdout).toContain(`created ${s.confDir}`);
    expect(ok.stdout).toContain(`wrote ${s.clusterDest}`);
    expect(fs.readFileSync(s.clusterDest, 'utf8')).toBe(GOOD);
  });

  it('--watch keeps the last good cluster file when the source turns bad, says so once, and installs the next good one', async () => {
    const s = setup();
    fs.writeFileSync(s.clusterSrc, GOOD);
    const [bin, ...pre] = tabbyArgv();
    const watcher = spawn(bin, [...pre, 'install', ...s.flags, '--watch', '0.1']);
    let out = '';
    let err = '';
    watcher.stdout.on('data', (b) => (out += b));
    watcher.stderr.on('data', (b) => (err += b));
    const exited = new Promise<number | null>((r) => watcher.once('exit', (code) => r(code)));
    try {
      await waitFor('the first install', () => out.includes(`wrote ${s.clusterDest}`));
      const rounds = (): number => err.split('refused:').length - 1;

      // a truncated ConfigMap key, then a YAML error: both refused, the good file stays
      for (const [bad, message] of [
        ['', 'holds no IPPool'],
        [GOOD.replace('blockSize: 24', 'blockSize: 31'), 'got 31'],
      ]) {
        const before = rounds();
        fs.writeFileSync(s.clusterSrc, bad);
        await waitFor(`the refusal of ${message}`, () => rounds() > before && err.includes(message), 10_000);
        expect(err).toContain(`keeping ${s.clusterDest} and ${path.join(s.confDir, '10-tabby.conflist')} as installed`);
        expect(fs.readFileSync(s.clusterDest, 'utf8')).toBe(GOOD);
      }
      // node-b joins, valid again: installed
      const next = [GOOD, doc('Node', 'node-b', '{bgp: {ipv4Address: 192.168.77.2/24}}')].join('---\n');
      fs.writeFileSync(s.clusterSrc, next);
      await waitFor('the next good version', () => fs.readFileSync(s.clusterDest, 'utf8') === next, 10_000);
      await waitFor('it to say so', () => out.includes('the sources are valid again'));
      // each problem was said once, not once per round (a round every 0.1 s while it lasted)
      expect(rounds(), err).toBe(2);
    } finally {
      watcher.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('refuses a --cni-bin-dir that does not exist, creating nothing', async () => {
    const s = setup();
    fs.writeFileSync(s.clusterSrc, GOOD);
    const binDir = path.join(s.dir, 'typo/dir');
    const flags = s.flags.filter((f) => f !== '--skip-binaries');
    const r = await tabby('install', ...flags, '--cni-bin-dir', binDir, '--from', TABBY_BIN);
    expect(r.code, showRun(r)).toBe(1);
    expect(r.stderr).toContain(`--cni-bin-dir ${binDir}: no such directory`);
    expect(fs.existsSync(path.join(s.dir, 'typo'))).toBe(false);
    expect(fs.existsSync(path.join(s.dir, 'node'))).toBe(false);
  });

  it('warns (not an error) that a 1.1.0 conflist fails on containerd 1.6/1.7', async () => {
    const s = setup({ cniVersion: '1.1.0', name: 'net', plugins: [{ type: 'tabby' }] });
    fs.writeFileSync(s.clusterSrc, GOOD);
    const r = await tabby('install', ...s.flags);
    expect(r.code, showRun(r)).toBe(0);
    expect(r.stderr).toMatch(/warning: .*"cniVersion": "1.1.0" fails every pod on containerd 1.6 and 1.7/);
    expect(r.stderr).toContain('"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"]');
    expect(r.stdout).not.toContain('warning');

    const quiet = setup({
      cniVersion: '1.0.0',
      cniVersions: ['1.0.0', '1.1.0'],
      name: 'net',
      plugins: [{ type: 'tabby' }],
    });
    fs.writeFileSync(quiet.clusterSrc, GOOD);
    const q = await tabby('install', ...quiet.flags);
    expect(q.code, showRun(q)).toBe(0);
    expect(q.stderr).toBe('');
  });
});

describe('tabby ipam --config', () => {
  it("reads the data directory and network from the conflist; check's advice keeps the flags as given", async () => {
    const dir = sb.tmpdir();
    const dataDir = path.join(dir, 'ipam data'); // a space: the advice must quote it
    const conflist = path.join(dir, 'node.conflist');
    fs.writeFileSync(
      conflist,
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'podnet',
        plugins: [{ type: 'tabby', ipam: { type: 'tabby-ipam', dataDir } }],
      }),
    );
    const store = new DiskStore(dataDir, 'podnet');
    await store.withLock(() => store.reserve('10.77.1.5', { containerId: 'gone-ctr', ifname: 'eth0' }, 0));
    const other = new DiskStore(dataDir, 'other');
    await other.withLock(() => other.reserve('10.99.0.5', { containerId: 'x', ifname: 'eth0' }, 0));

    const list = await tabby('ipam', 'list', '--config', conflist, '--json');
    expect(list.code, showRun(list)).toBe(0);
    expect(JSON.parse(list.stdout).map((r: any) => [r.network, r.ip, r.containerId])).toEqual([
      ['podnet', '10.77.1.5', 'gone-ctr'],
    ]);

    // check runs in a node namespace of its own: it judges by the host veths there (none)
    const node = await sb.nodeNetns();
    const [bin, ...pre] = tabbyArgv();
    const check = await nsExec(node, bin, [...pre, 'ipam', 'check', '--config', conflist]);
    expect(check.code, showRun(check)).toBe(1);
    expect(check.stdout).toContain('1 of 1 reservation(s) in network podnet of');
    const advice = check.stdout.match(/release them with `([^`]+)`/)?.[1];
    expect(advice).toBe(`tabby ipam release IP --config ${conflist}`);

    const byDir = await nsExec(node, bin, [...pre, 'ipam', 'check', '--data-dir', dataDir, '--network', 'podnet']);
    expect(byDir.stdout.match(/release them with `([^`]+)`/)?.[1]).toBe(
      `tabby ipam release IP --data-dir '${dataDir}' --network podnet`,
    );

    // the advice, followed: releases it
    const released = await tabby('ipam', 'release', '10.77.1.5', '--config', conflist);
    expect(released.code, showRun(released)).toBe(0);
    expect(released.stdout).toBe('released 10.77.1.5 (container gone-ctr, interface eth0) in network podnet\n');
    expect(fs.readdirSync(path.join(dataDir, 'podnet')).filter((f) => /^\d/.test(f))).toEqual([]);
    expect(fs.existsSync(path.join(dataDir, 'other', '10.99.0.5'))).toBe(true);
  });
});
