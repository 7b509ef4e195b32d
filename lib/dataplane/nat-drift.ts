// Whether tabby's NAT rules in the kernel are the ones its plan renders, for `tabby status` and
// `tabby plan --diff`: the table (or chain) itself, each pool set's elements and the number of rules.
import { execArgs, findProgram } from '../exec';
import type { DriftItem } from './drift';
import { chooseNatBackend, IPT_CHAIN, NAT_TABLE, NatBackend, NatPlan, renderIptables, renderNft } from './nat';

/** One nftables table of tabby's, as rendered or as read back. */
export interface NftTable {
  family: string;
  sets: Record<string, string[]>;
  rules: number;
}

/** The tables renderNft writes, read off its text (so this follows whatever it renders). */
export function renderedTables(p: NatPlan): NftTable[] {
  const out: NftTable[] = [];
  let cur: NftTable | undefined;
  let inChain = false;
  for (const line of renderNft(p).split('\n')) {
    const table = new RegExp(`^table (\\S+) ${NAT_TABLE} \\{$`).exec(line);
    if (table) {
      cur = { family: table[1], sets: {}, rules: 0 };
      out.push(cur);
      inChain = false;
      continue;
    }
    if (!cur) continue;
    const set = /^\s+set (\S+) \{.*?(?:elements = \{ (.*) \};)? \}$/.exec(line);
    if (set) cur.sets[set[1]] = set[2] ? set[2].split(', ').map(normaliseElem) : [];
    else if (/^\s+chain /.test(line)) inChain = true;
    else if (inChain && /^\s{4}\S/.test(line) && !/^\s+type /.test(line)) cur.rules++;
  }
  return out;
}

const normaliseElem = (e: string): string => e.replace(/\/(32|128)$/, '');

interface NftJson {
  nftables: {
    set?: { name: string; elem?: (string | { prefix: { addr: string; len: number } })[] };
    rule?: { chain: string };
  }[];
}

/** A table as `nft -j list table` shows it. */
export function parseNftTable(family: string, json: string): NftTable {
  const t: NftTable = { family, sets: {}, rules: 0 };
  for (const o of (JSON.parse(json) as NftJson).nftables) {
    if (o.set) {
      t.sets[o.set.name] = (o.set.elem ?? []).map((e) =>
        typeof e === 'string' ? normaliseElem(e) : normaliseElem(`${e.prefix.addr}/${e.prefix.len}`),
      );
    }
    if (o.rule) t.rules++;
  }
  return t;
}

/** Compares a rendered table with the one read back. */
export function compareTables(want: NftTable, have: NftTable | undefined): DriftItem[] {
  const what = `table ${want.family} ${NAT_TABLE}`;
  if (!have) return [{ kind: 'nat', what, state: 'missing' }];
  const diffs: string[] = [];
  for (const [name, elems] of Object.entries(want.sets)) {
    const got = new Set(have.sets[name] ?? []);
    const missing = elems.filter((e) => !got.has(e));
    const extra = [...got].filter((e) => !elems.includes(e));
    if (!(name in have.sets)) diffs.push(`set ${name} missing`);
    else if (missing.length || extra.length)
      diffs.push(
        `set ${name}${missing.length ? ` lacks ${missing.join(', ')}` : ''}${extra.length ? ` holds ${extra.join(', ')} besides` : ''}`,
      );
  }
  if (have.rules !== want.rules) diffs.push(`${have.rules} rule(s), the plan has ${want.rules}`);
  return [{ kind: 'nat', what, state: diffs.length ? 'different' : 'in sync', detail: diffs.join('; ') || undefined }];
}

/** tabby's NAT in the kernel against the plan. Nothing to compare when there is no NAT tool. */
export async function natDrift(p: NatPlan, wanted: 'auto' | NatBackend): Promise<DriftItem[]> {
  let chosen: { backend: NatBackend; bin: string };
  try {
    chosen = chooseNatBackend(wanted);
  } catch {
    return [];
  }
  if (chosen.backend === 'iptables') return iptablesDrift(p, chosen.bin);
  const out: DriftItem[] = [];
  for (const want of renderedTables(p)) {
    const res = await execArgs(chosen.bin, ['-j', 'list', 'table', want.family, NAT_TABLE]);
    const have = res.code === 0 ? parseNftTable(want.family, res.stdout) : undefined;
    // an empty rendered table (no pool of that family) is deleted, not written: absent is in sync
    if (!have && want.rules === 0 && Object.values(want.sets).every((s) => s.length === 0)) continue;
    out.push(...compareTables(want, have));
  }
  return out;
}

/** tabby's chain of iptables, and of ip6tables when IPv6 pools are in the plan (or its chain is there). */
async function iptablesDrift(p: NatPlan, bin: string): Promise<DriftItem[]> {
  const out = await chainDrift(p, bin, 4);
  const ip6 = findProgram('ip6tables');
  if (ip6) out.push(...(await chainDrift(p, ip6, 6)));
  return out;
}

async function chainDrift(p: NatPlan, bin: string, fam: 4 | 6): Promise<DriftItem[]> {
  const what = `chain nat ${IPT_CHAIN}${fam === 6 ? ' (ip6tables)' : ''}`;
  const want = renderIptables(p, fam)
    .split('\n')
    .filter((l) => l.startsWith(`-A ${IPT_CHAIN} `));
  const res = await execArgs(bin, ['-t', 'nat', '-S', IPT_CHAIN]);
  if (res.code !== 0) return want.length ? [{ kind: 'nat', what, state: 'missing' }] : [];
  const have = res.stdout.split('\n').filter((l) => l.startsWith(`-A ${IPT_CHAIN} `));
  const sources = (lines: string[]) => new Set(lines.map((l) => /-s (\S+)/.exec(l)?.[1]).filter(Boolean));
  const w = sources(want);
  const h = sources(have);
  const diffs: string[] = [];
  if (have.length !== want.length) diffs.push(`${have.length} rule(s), the plan has ${want.length}`);
  const lacking = [...w].filter((s) => !h.has(s));
  if (lacking.length) diffs.push(`no rule for ${lacking.join(', ')}`);
  const jump = await execArgs(bin, ['-t', 'nat', '-C', 'POSTROUTING', '-j', IPT_CHAIN]);
  if (jump.code !== 0 && want.length) diffs.push('POSTROUTING does not jump to it');
  return [{ kind: 'nat', what, state: diffs.length ? 'different' : 'in sync', detail: diffs.join('; ') || undefined }];
}
