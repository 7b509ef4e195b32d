import { execArgs, findProgram } from '../exec';
import { CniError, Code } from '../cni/errors';
import { log } from '../log';

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
    // `table` then `delete table`: the delete succeeds whether or not the table existed before.
    out.push(`table ${t} ${NAT_TABLE}`, `delete table ${t} ${NAT_TABLE}`);
    if (all.length === 0 && !(fam === 4 && p.tunnelDevices.length)) continue;
    const elems = (l: string[]) => (l.length ? ` elements = { ${l.join(', ')} };` : '');
    const rules: string[] = [];
    if (nat.length) {
      rules.push(
        `${t} saddr @nat-pools ${t} daddr != @all-pools meta l4proto udp counter masquerade to :${SAFE_UDP_PORTS} fully-random`,
      );
      rules.push(`${t} saddr @nat-pools ${t} daddr != @all-pools counter masquerade fully-random`);
    }
    if (fam === 4) {
      for (const dev of p.tunnelDevices) {
        const host = `oifname "${dev}" fib saddr . oif type != local fib saddr type local`;
        rules.push(`${host} meta l4proto udp counter masquerade to :${SAFE_UDP_PORTS} fully-random`);
        rules.push(`${host} counter masquerade fully-random`);
      }
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

/** The same for iptables (IPv4): a chain of tabby's own, replaced with iptables-restore --noflush. */
export function renderIptables(p: NatPlan): string {
  const nat = p.natPools.filter((c) => family(c) === 4);
  const all = p.allPools.filter((c) => family(c) === 4);
  const lines = ['*nat', `:${IPT_CHAIN} - [0:0]`, `-F ${IPT_CHAIN}`];
  for (const src of nat) {
    for (const dst of all) lines.push(`-A ${IPT_CHAIN} -s ${src} -d ${dst} -j RETURN`);
    lines.push(`-A ${IPT_CHAIN} -s ${src} -p udp -j MASQUERADE --to-ports ${SAFE_UDP_PORTS} --random-fully`);
    lines.push(`-A ${IPT_CHAIN} -s ${src} -j MASQUERADE --random-fully`);
  }
  for (const dev of p.tunnelDevices) {
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
    const restore = findProgram('iptables-restore')!;
    const res = await execArgs(restore, ['--noflush'], { input: renderIptables(p) });
    if (res.code !== 0) throw new CniError(Code.KernelOperationFailed, `iptables-restore: ${res.stderr.trim()}`);
    const jump = ['POSTROUTING', '-j', IPT_CHAIN];
    const has = await execArgs(bin, ['-t', 'nat', '-C', ...jump]);
    if (has.code !== 0) {
      const ins = await execArgs(bin, ['-t', 'nat', '-I', ...jump]);
      if (ins.code !== 0)
        throw new CniError(Code.KernelOperationFailed, `iptables -I POSTROUTING: ${ins.stderr.trim()}`);
    }
  }
  log.debug(
    `NAT (${backend}): ${p.natPools.length} NAT pool(s) of ${p.allPools.length}, tunnels ${p.tunnelDevices.join(',') || '-'}`,
  );
  return backend;
}
