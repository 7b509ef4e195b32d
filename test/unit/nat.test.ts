import { describe, expect, it } from 'vitest';
import { IPT_CHAIN, NAT_TABLE, NatPlan, renderIptables, renderNft, SAFE_UDP_PORTS } from '../../lib/dataplane/nat';

const PLAN: NatPlan = {
  allPools: ['10.244.0.0/16', '10.9.0.0/16', 'fd00::/48', 'fd01::/48'],
  natPools: ['10.244.0.0/16', 'fd00::/48'],
  tunnelDevices: ['vxlan.tabby', 'tunl0'],
};

/** The `table <fam> tabby { ... }` definition of one family, or undefined. */
function tableOf(text: string, fam: 'ip' | 'ip6'): string | undefined {
  const start = text.indexOf(`table ${fam} tabby {`);
  if (start < 0) return undefined;
  return text.slice(start, text.indexOf('\n}\n', start) + 2);
}
const rulesOf = (table: string): string[] =>
  table
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /masquerade/.test(l));

describe('renderNft', () => {
  const text = renderNft(PLAN);
  const lines = text.split('\n');

  it("names tabby's own table and port range", () => {
    expect(NAT_TABLE).toBe('tabby');
    expect(SAFE_UDP_PORTS).toBe('4790-65535');
  });

  it("replaces each family's table atomically: declare, delete, then define, in one file", () => {
    for (const fam of ['ip', 'ip6']) {
      const decl = lines.indexOf(`table ${fam} tabby`);
      const del = lines.indexOf(`delete table ${fam} tabby`);
      const def = lines.indexOf(`table ${fam} tabby {`);
      expect(decl, fam).toBeGreaterThanOrEqual(0);
      expect(del).toBe(decl + 1);
      expect(def).toBe(del + 1);
    }
    expect(text.endsWith('\n')).toBe(true);
    // nothing outside tabby's tables is touched
    expect(text).not.toMatch(/flush ruleset/);
    expect(lines.filter((l) => /^(table|delete table) /.test(l)).every((l) => / tabby( \{)?$/.test(l))).toBe(true);
  });

  it('holds all pools and the NAT pools of each family in interval sets', () => {
    const v4 = tableOf(text, 'ip')!;
    expect(v4).toContain(
      'set all-pools { type ipv4_addr; flags interval; elements = { 10.244.0.0/16, 10.9.0.0/16 }; }',
    );
    expect(v4).toContain('set nat-pools { type ipv4_addr; flags interval; elements = { 10.244.0.0/16 }; }');
    const v6 = tableOf(text, 'ip6')!;
    expect(v6).toContain('set all-pools { type ipv6_addr; flags interval; elements = { fd00::/48, fd01::/48 }; }');
    expect(v6).toContain('set nat-pools { type ipv6_addr; flags interval; elements = { fd00::/48 }; }');
    expect(v4).not.toMatch(/fd0/);
    expect(v6).not.toMatch(/10\.244/);
  });

  it('hooks a nat chain at srcnat', () => {
    for (const fam of ['ip', 'ip6'] as const) {
      expect(tableOf(text, fam)).toContain(
        'chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;',
      );
    }
  });

  it('masquerades, fully random, pod traffic from a NAT pool to outside all pools', () => {
    const v4 = rulesOf(tableOf(text, 'ip')!);
    expect(v4).toContain(
      'ip saddr @nat-pools ip daddr != @all-pools meta l4proto udp counter masquerade to :4790-65535 fully-random',
    );
    expect(v4).toContain('ip saddr @nat-pools ip daddr != @all-pools counter masquerade fully-random');
    // the UDP rule comes first, so UDP never reaches the unrestricted one
    expect(v4.findIndex((r) => /^ip saddr .*udp/.test(r))).toBeLessThan(
      v4.findIndex((r) => r === 'ip saddr @nat-pools ip daddr != @all-pools counter masquerade fully-random'),
    );
    const v6 = rulesOf(tableOf(text, 'ip6')!);
    expect(v6).toEqual([
      'ip6 saddr @nat-pools ip6 daddr != @all-pools meta l4proto udp counter masquerade to :4790-65535 fully-random',
      'ip6 saddr @nat-pools ip6 daddr != @all-pools counter masquerade fully-random',
    ]);
  });

  it('never lets UDP masquerade pick the VXLAN port 4789 (Calico PR #13118)', () => {
    for (const r of rulesOf(text)) {
      expect(r).toMatch(/fully-random$/);
      if (/udp/.test(r)) expect(r).toMatch(/masquerade to :4790-65535 /);
      expect(r).not.toMatch(/4789/);
    }
    // every masquerade that could see UDP is preceded by a UDP rule with the safe range and the same match
    const all = rulesOf(text);
    for (const [i, r] of all.entries()) {
      if (/udp/.test(r)) continue;
      const match = r.replace(/ counter masquerade fully-random$/, '');
      expect(all[i - 1]).toBe(`${match} meta l4proto udp counter masquerade to :${SAFE_UDP_PORTS} fully-random`);
    }
  });

  it('masquerades host-originated traffic leaving vxlan-v6.tabby in the ip6 table, with the same rules', () => {
    const t = renderNft({ ...PLAN, tunnelDevices: ['vxlan.tabby', 'vxlan-v6.tabby'] });
    const host = `oifname "vxlan-v6.tabby" fib saddr . oif type != local fib saddr type local`;
    expect(rulesOf(tableOf(t, 'ip6')!)).toEqual([
      'ip6 saddr @nat-pools ip6 daddr != @all-pools meta l4proto udp counter masquerade to :4790-65535 fully-random',
      'ip6 saddr @nat-pools ip6 daddr != @all-pools counter masquerade fully-random',
      `${host} meta l4proto udp counter masquerade to :4790-65535 fully-random`,
      `${host} counter masquerade fully-random`,
    ]);
    expect(tableOf(t, 'ip')).not.toMatch(/vxlan-v6/);
  });

  it('masquerades host-originated traffic leaving each IPv4 tunnel device in the ip table', () => {
    const v4 = rulesOf(tableOf(text, 'ip')!);
    for (const dev of ['vxlan.tabby', 'tunl0']) {
      const host = `oifname "${dev}" fib saddr . oif type != local fib saddr type local`;
      expect(v4).toContain(`${host} meta l4proto udp counter masquerade to :4790-65535 fully-random`);
      expect(v4).toContain(`${host} counter masquerade fully-random`);
    }
    expect(v4).toHaveLength(6);
    expect(tableOf(text, 'ip6')).not.toMatch(/oifname/);
  });

  it('has tunnel rules without NAT pools, and no pool rules then', () => {
    const t = renderNft({ allPools: ['10.244.0.0/16'], natPools: [], tunnelDevices: ['vxlan.tabby'] });
    const v4 = tableOf(t, 'ip')!;
    expect(v4).toContain('set nat-pools { type ipv4_addr; flags interval; }');
    expect(rulesOf(v4)).toEqual([
      'oifname "vxlan.tabby" fib saddr . oif type != local fib saddr type local meta l4proto udp counter masquerade to :4790-65535 fully-random',
      'oifname "vxlan.tabby" fib saddr . oif type != local fib saddr type local counter masquerade fully-random',
    ]);
    expect(tableOf(t, 'ip6')).toBeUndefined();
    expect(t).toContain('table ip6 tabby\ndelete table ip6 tabby\n');
  });

  it('with nothing to do, only deletes its tables (an IPv6-only cluster leaves no IPv4 table)', () => {
    expect(renderNft({ allPools: [], natPools: [], tunnelDevices: [] })).toBe(
      'table ip tabby\ndelete table ip tabby\ntable ip6 tabby\ndelete table ip6 tabby\n',
    );
    const v6only = renderNft({ allPools: ['fd00::/48'], natPools: ['fd00::/48'], tunnelDevices: [] });
    expect(tableOf(v6only, 'ip')).toBeUndefined();
    expect(tableOf(v6only, 'ip6')).toBeDefined();
  });

  it('keeps the all-pools set when no pool NATs (disabled pools still exempt their CIDR)', () => {
    const t = renderNft({ allPools: ['10.244.0.0/16', '172.16.0.0/12'], natPools: [], tunnelDevices: [] });
    expect(tableOf(t, 'ip')).toContain('elements = { 10.244.0.0/16, 172.16.0.0/12 }');
    expect(rulesOf(tableOf(t, 'ip')!)).toEqual([]);
  });
});

describe('renderIptables', () => {
  const text = renderIptables(PLAN);
  const lines = text.trimEnd().split('\n');

  it("replaces tabby's own chain in the nat table, in one restore", () => {
    expect(IPT_CHAIN).toBe('TABBY-POSTROUTING');
    expect(lines[0]).toBe('*nat');
    expect(lines[1]).toBe(':TABBY-POSTROUTING - [0:0]');
    expect(lines[lines.length - 1]).toBe('COMMIT');
    expect(lines.slice(2, -1).every((l) => l.startsWith('-A TABBY-POSTROUTING ') || l === '-F TABBY-POSTROUTING')).toBe(
      true,
    );
  });

  it('returns early for every pool destination of each NAT pool, disabled pools included', () => {
    expect(lines).toContain('-A TABBY-POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -j RETURN');
    expect(lines).toContain('-A TABBY-POSTROUTING -s 10.244.0.0/16 -d 10.9.0.0/16 -j RETURN');
    expect(lines.filter((l) => l.endsWith('-j RETURN'))).toHaveLength(2);
  });

  it('then masquerades fully random, UDP never to port 4789', () => {
    const i = lines.indexOf(
      '-A TABBY-POSTROUTING -s 10.244.0.0/16 -p udp -j MASQUERADE --to-ports 4790-65535 --random-fully',
    );
    const j = lines.indexOf('-A TABBY-POSTROUTING -s 10.244.0.0/16 -j MASQUERADE --random-fully');
    expect(i).toBeGreaterThan(lines.indexOf('-A TABBY-POSTROUTING -s 10.244.0.0/16 -d 10.9.0.0/16 -j RETURN'));
    expect(j).toBe(i + 1);
    for (const l of lines.filter((x) => /MASQUERADE/.test(x))) {
      expect(l).toMatch(/--random-fully$/);
      if (/-p udp/.test(l)) expect(l).toMatch(/--to-ports 4790-65535/);
      expect(l).not.toMatch(/4789/);
    }
  });

  it('masquerades host traffic out of each tunnel device', () => {
    for (const dev of ['vxlan.tabby', 'tunl0']) {
      const host = `-o ${dev} -m addrtype ! --src-type LOCAL --limit-iface-out -m addrtype --src-type LOCAL`;
      expect(lines).toContain(`-A TABBY-POSTROUTING ${host} -p udp -j MASQUERADE --to-ports 4790-65535 --random-fully`);
      expect(lines).toContain(`-A TABBY-POSTROUTING ${host} -j MASQUERADE --random-fully`);
    }
  });

  it('leaves IPv6 pools out of the IPv4 rules', () => {
    expect(text).not.toMatch(/fd0/);
  });

  it('renders the IPv6 pools and vxlan-v6.tabby for ip6tables, with the same rules', () => {
    const t = renderIptables({ ...PLAN, tunnelDevices: ['vxlan.tabby', 'vxlan-v6.tabby'] }, 6);
    const host = '-o vxlan-v6.tabby -m addrtype ! --src-type LOCAL --limit-iface-out -m addrtype --src-type LOCAL';
    expect(t.trimEnd().split('\n')).toEqual([
      '*nat',
      ':TABBY-POSTROUTING - [0:0]',
      '-F TABBY-POSTROUTING',
      '-A TABBY-POSTROUTING -s fd00::/48 -d fd00::/48 -j RETURN',
      '-A TABBY-POSTROUTING -s fd00::/48 -d fd01::/48 -j RETURN',
      '-A TABBY-POSTROUTING -s fd00::/48 -p udp -j MASQUERADE --to-ports 4790-65535 --random-fully',
      '-A TABBY-POSTROUTING -s fd00::/48 -j MASQUERADE --random-fully',
      `-A TABBY-POSTROUTING ${host} -p udp -j MASQUERADE --to-ports 4790-65535 --random-fully`,
      `-A TABBY-POSTROUTING ${host} -j MASQUERADE --random-fully`,
      'COMMIT',
    ]);
    expect(t).not.toMatch(/10\.244|vxlan\.tabby|tunl0/);
  });

  it('with no NAT pool and no tunnel, is an empty chain', () => {
    expect(renderIptables({ allPools: ['10.244.0.0/16'], natPools: [], tunnelDevices: [] })).toBe(
      '*nat\n:TABBY-POSTROUTING - [0:0]\n-F TABBY-POSTROUTING\nCOMMIT\n',
    );
  });
});
