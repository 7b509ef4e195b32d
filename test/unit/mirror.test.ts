import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Mirror } from '../../lib/agent/mirror';

const POOL = 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16}\n';

describe('tabby agent --cluster-source (Mirror)', () => {
  it('copies a valid source, keeps the last good copy when the source is empty or broken, and copies again once valid', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mirror-'));
    const source = path.join(dir, 'source.yaml');
    const dest = path.join(dir, 'cluster.yaml');
    const m = new Mirror(source, dest);
    fs.writeFileSync(source, POOL);
    expect(await m.once()).toBe(true);
    expect(fs.readFileSync(dest, 'utf8')).toBe(POOL);
    for (const bad of ['', POOL.replace('10.244.0.0/16', '10.244.0.0/99'), 'kind: [unclosed\n']) {
      fs.writeFileSync(source, bad);
      expect(await m.once()).toBe(false);
      expect(fs.readFileSync(dest, 'utf8')).toBe(POOL);
    }
    const next = POOL.replace('10.244.0.0/16', '10.245.0.0/16');
    fs.writeFileSync(source, next);
    expect(await m.once()).toBe(true);
    expect(fs.readFileSync(dest, 'utf8')).toBe(next);
    fs.rmSync(dir, { recursive: true });
  });
});
