import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { execPlugin, expectCniError, expectResult, expectSilentSuccess, podAddresses, REF_CNI_DIR, TABBY_BIN, TABBY_IS_JS, TestNode } from '../helpers/cni';
import { link, nsPath, useSandbox } from '../helpers/netns';

// The `tabby-ipam` face: the same binary under the name tabby-ipam, used as IPAM by the reference ptp.

const sb = useSandbox();

/** A CNI_PATH dir holding `tabby-ipam`: a symlink to the binary, or (for a .js bundle) a wrapper that sets argv[0]. */
function ipamDir(): string {
  const dir = sb.tmpdir();
  const target = path.join(dir, 'tabby-ipam');
  if (TABBY_IS_JS) {
    fs.writeFileSync(target, `#!/bin/bash\nexec -a tabby-ipam ${JSON.stringify(process.execPath)} ${JSON.stringify(TABBY_BIN)} "$@"\n`, { mode: 0o755 });
  } else {
    fs.symlinkSync(TABBY_BIN, target);
  }
  return dir;
}

function ptpConf(node: TestNode, dataDir: string): Record<string, unknown> {
  return {
    cniVersion: '1.0.0', // Debian's ptp (v1.1.1) speaks up to 1.0.0
    name: 'ptpnet',
    type: 'ptp',
    ipam: {
      type: 'tabby-ipam',
      ranges: [[{ subnet: '10.245.0.0/24' }]],
      routes: [{ dst: '0.0.0.0/0' }],
      dataDir,
    },
  };
}

describe('tabby-ipam under the reference ptp plugin', () => {
  it('ADD gives an address, CHECK passes, DEL releases it', async () => {
    const node = await TestNode.create(sb);
    const pod = await sb.netns();
    const cniPath = ipamDir();
    const dataDir = sb.tmpdir();
    const conf = ptpConf(node, dataDir);
    const env = (cmd: string) => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: 'ptp1', CNI_NETNS: nsPath(pod), CNI_IFNAME: 'eth0', CNI_PATH: cniPath });
    const ptp = [path.join(REF_CNI_DIR, 'ptp')];

    const res = expectResult(await execPlugin(node.name, ptp, env('ADD'), conf));
    expect(res.ips).toHaveLength(1);
    expect(res.ips[0].address).toBe('10.245.0.2/24');
    expect(res.ips[0].gateway).toBe('10.245.0.1');
    expect(await podAddresses(pod)).toEqual(['10.245.0.2/24']);
    expect(fs.readFileSync(path.join(dataDir, 'ptpnet', '10.245.0.2'), 'utf8')).toBe('ptp1\r\neth0');

    expectSilentSuccess(await execPlugin(node.name, ptp, env('CHECK'), { ...conf, prevResult: res }));

    expectSilentSuccess(await execPlugin(node.name, ptp, env('DEL'), conf));
    expect(fs.existsSync(path.join(dataDir, 'ptpnet', '10.245.0.2'))).toBe(false);
    expect(await link(pod, 'eth0')).toBeUndefined();
  });

  it('run directly as tabby-ipam, gives an IPAM result (no interfaces) and its errors', async () => {
    const node = await TestNode.create(sb);
    const dir = ipamDir();
    const dataDir = sb.tmpdir();
    const conf = ptpConf(node, dataDir);
    const env = (cmd: string, cid = 'x1') => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: '/var/run/netns/none', CNI_IFNAME: 'eth0', CNI_PATH: dir });
    const bin = [path.join(dir, 'tabby-ipam')];

    const res = expectResult(await execPlugin(node.name, bin, env('ADD'), conf));
    expect(res).not.toHaveProperty('interfaces');
    expect(res.ips).toEqual([{ address: '10.245.0.2/24', gateway: '10.245.0.1' }]);
    expect(res.routes).toEqual([{ dst: '0.0.0.0/0' }]);

    expectCniError(await execPlugin(node.name, bin, env('ADD'), conf), 102, /duplicate/);
    expectSilentSuccess(await execPlugin(node.name, bin, env('CHECK'), conf));
    expectSilentSuccess(await execPlugin(node.name, bin, env('DEL'), conf));
    expect(fs.readdirSync(path.join(dataDir, 'ptpnet')).filter((f) => /^\d/.test(f))).toEqual([]);
    expectCniError(await execPlugin(node.name, bin, env('CHECK'), conf), 106);
  });
});
