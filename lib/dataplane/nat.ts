import { execArgs, findProgram } from '../exec';
import { CniError, Code } from '../cni/errors';
import { log } from '../log';
import { tunnelFamily } from './devices';

/**
 * natOutgoing, Calico's way (calico-behaviour.md §6): pod traffic from a NAT pool to anywhere outside all
 * pools (disabled ones included) is masqueraded, fully random; host traffic leaving a tunnel device gets
 * the tunnel address. UDP never gets source port 4789, the VXLAN port (Calico PR #13118): the node's VXLAN
 * socket would swallow the replies.
 */

export const NAT_TABLE = 'tabby';
export const IPT_CHAIN = 'TABBY-POSTROUTING';
export const SAFE_UDP_PORTS = '4790-65535';

export interface NatPlan {
  allPools: string[];
  natPools: string[];
  tunnelDevices: string[];
}

export type NatBackend = 'nftables' | 'iptables';

const family = (cidr: string): 4 | 6 => (cidr.includes(':') ? 6 : 4);

/** The whole nftables ruleset tabby owns, replacing the previous one in one transaction. */
export function renderNft(p: NatPlan): string {
  const out: string[] = [];
  for (const fam of [4, 6] as const) {
    const t = fam === 4 ? 'ip' : 'ip6';
    const type = fam === 4 ? 'ipv4_addr' : 'ipv6_addr';
    const all = p.allPools.filter((c) => family(c) === fam);
    const nat = p.natPools.filter((c) => family(c) === fam);
    const tunnels = p.tunnelDevices.filter((d) => tunnelFamily(d) === fam);
    // `table` then `delete table`: the delete succeeds whether or not the table existed before.
    out.push(`table ${t} ${NAT_TABLE}`, `delete table ${t} ${NAT_TABLE}`);
    if (all.length === 0 && tunnels.length === 0) continue;
    const elems = (l: string[]) => (l.length ? ` elements = { ${l.join(', ')} };` : '');
    const rules: string[] = [];
    if (nat.length) {
      rules.push(
        `${t} saddr @nat-pools ${t} daddr != @all-pools meta l4proto udp counter masquerade to :${SAFE_UDP_PORTS} fully-random`,
      );
      rules.push(`${t} saddr @nat-pools ${t} daddr != @all-pools counter masquerade fully-random`);
    }
    for (const dev of tunnels) {
      const host = `oifname "${dev}" fib saddr . oif type != local fib saddr type local`;
      rules.push(`${host} meta l4proto udp counter masquerade to :${SAFE_UDP_PORTS} fully-random`);
      rules.push(`${host} counter masquerade fully-random`);
    }
    out.push(
      `table ${t} ${NAT_TABLE} {`,
      `  set all-pools { type ${type}; flags interval;${elems(all)} }`,
      `  set nat-pools { type ${type}; flags interval;${elems(nat)} }`,
      `  chain postrouting {`,
      `    type nat hook postrouting priority srcnat; policy accept;`,
      ...rules.map((r) => `    ${r}`),
      `  }`,
      `}`,
    );
  }
  return out.join('\n') + '\n';
}

/**
 * The same for iptables: a chain of tabby's own, replaced with iptables-restore --noflush; `fam` 6 renders
 * the IPv6 pools and tunnel for ip6tables-restore.
 */
export function renderIptables(p: NatPlan, fam: 4 | 6 = 4): string {
  const nat = p.natPools.filter((c) => family(c) === fam);
  const all = p.allPools.filter((c) => family(c) === fam);
  const lines = ['*nat', `:${IPT_CHAIN} - [0:0]`, `-F ${IPT_CHAIN}`];
  for (const src of nat) {
    for (const dst of all) lines.push(`-A ${IPT_CHAIN} -s ${src} -d ${dst} -j RETURN`);
    lines.push(`-A ${IPT_CHAIN} -s ${src} -p udp -j MASQUERADE --to-ports ${SAFE_UDP_PORTS} --random-fully`);
    lines.push(`-A ${IPT_CHAIN} -s ${src} -j MASQUERADE --random-fully`);
  }
  for (const dev of p.tunnelDevices.filter((d) => tunnelFamily(d) === fam)) {
    const host = `-o ${dev} -m addrtype ! --src-type LOCAL --limit-iface-out -m addrtype --src-type LOCAL`;
    lines.push(`-A ${IPT_CHAIN} ${host} -p udp -j MASQUERADE --to-ports ${SAFE_UDP_PORTS} --random-fully`);
    lines.push(`-A ${IPT_CHAIN} ${host} -j MASQUERADE --random-fully`);
  }
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

/** Picks the backend: as configured, or nftables when `nft` exists, else iptables. */
export function chooseNatBackend(wanted: 'auto' | NatBackend): { backend: NatBackend; bin: string } {
  const nft = findProgram('nft');
  const ipt = findProgram('iptables');
  if ((wanted === 'auto' || wanted === 'nftables') && nft) return { backend: 'nftables', bin: nft };
  if ((wanted === 'auto' || wanted === 'iptables') && ipt) return { backend: 'iptables', bin: ipt };
  throw new CniError(
    Code.MissingKernelSupport,
    wanted === 'auto'
      ? 'natOutgoing needs nftables (nft) or iptables, and neither is installed'
      : `natBackend ${wanted}: ${wanted === 'nftables' ? 'nft' : 'iptables'} is not installed`,
  );
}

export async function applyNat(p: NatPlan, wanted: 'auto' | NatBackend): Promise<NatBackend | undefined> {
  let chosen: { backend: NatBackend; bin: string };
  try {
    chosen = chooseNatBackend(wanted);
  } catch (e) {
    // Nothing to masquerade, and no tool that could have installed rules before: nothing to do.
    if (p.natPools.length === 0 && p.tunnelDevices.length === 0) return undefined;
    throw e;
  }
  const { backend, bin } = chosen;
  if (backend === 'nftables') {
    const res = await execArgs(bin, ['-f', '-'], { input: renderNft(p) });
    if (res.code !== 0) throw new CniError(Code.KernelOperationFailed, `nft -f: ${res.stderr.trim()}`);
  } else {
    await applyIptables(bin, 'iptables', renderIptables(p, 4));
    // ip6tables only when IPv6 has something to NAT, or tabby's chain may be there from before.
    const has6 = p.allPools.some((c) => family(c) === 6) || p.tunnelDevices.some((d) => tunnelFamily(d) === 6);
    const ip6 = findProgram('ip6tables');
    if (ip6 && (has6 || (await execArgs(ip6, ['-t', 'nat', '-S', IPT_CHAIN])).code === 0)) {
      await applyIptables(ip6, 'ip6tables', renderIptables(p, 6));
    } else if (has6 && p.natPools.some((c) => family(c) === 6)) {
      throw new CniError(
        Code.MissingKernelSupport,
        'natOutgoing on an IPv6 pool needs ip6tables, which is not installed',
      );
    }
  }
  log.debug(
    `NAT (${backend}): ${p.natPools.length} NAT pool(s) of ${p.allPools.length}, tunnels ${p.tunnelDevices.join(',') || '-'}`,
  );
  return backend;
}

/** Replaces tabby's chain with `<tool>-restore --noflush` and makes sure POSTROUTING jumps to it. */
async function applyIptables(bin: string, tool: 'iptables' | 'ip6tables', rules: string): Promise<void> {
  const restore = findProgram(`${tool}-restore`)!;
  const res = await execArgs(restore, ['--noflush'], { input: rules });
  if (res.code !== 0) throw new CniError(Code.KernelOperationFailed, `${tool}-restore: ${res.stderr.trim()}`);
  const jump = ['POSTROUTING', '-j', IPT_CHAIN];
  const has = await execArgs(bin, ['-t', 'nat', '-C', ...jump]);
  if (has.code !== 0) {
    const ins = await execArgs(bin, ['-t', 'nat', '-I', ...jump]);
    if (ins.code !== 0) throw new CniError(Code.KernelOperationFailed, `${tool} -I POSTROUTING: ${ins.stderr.trim()}`);
  }
}
