import { CniError, Code } from '../cni/errors';
import { execArgs } from '../exec';
import { log } from '../log';
import { IpBatch, ipJson, KernelError } from './iproute';
import { linkExists } from './links';
import { applyNat, NatBackend } from './nat';
import { HOST_VETH_PREFIX } from './veth';
import { IPIP_DEVICE, ROUTE_PROTO, VXLAN_DEVICE } from './devices';
import type { OverlayPlan } from '../cluster/plan';
import * as fs from 'node:fs';

/**
 * Brings the kernel in line with an OverlayPlan: tunnel devices, block routes, FDB entries, neighbours
 * and NAT. Reads what is there, then changes only what differs, in one `ip -batch` and one
 * `bridge -batch`. Every route it writes carries ROUTE_PROTO; it never touches a route without it.
 */

export { ROUTE_PROTO };

const BRIDGE_BIN = ['/usr/sbin/bridge', '/sbin/bridge', '/usr/bin/bridge'].find((p) => fs.existsSync(p)) ?? 'bridge';

interface ShownRoute { type?: string; dst: string; gateway?: string; dev?: string; protocol?: string; flags?: string[] }
interface ShownVxlan { address?: string; mtu?: number; linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; link?: string; port?: number; learning?: boolean } }; addr_info?: { family: string; local: string; prefixlen: number }[]; flags?: string[] }
interface ShownNeigh { dst: string; lladdr?: string; state?: string[] }
interface ShownFdb { mac: string; dst?: string; state?: string }

export interface ApplyReport {
  changes: string[];
  nat?: NatBackend;
}

const routeLine = (r: { dst: string; kind: string; via?: string; dev?: string }): string[] =>
  r.kind === 'blackhole'
    ? ['blackhole', r.dst, 'proto', ROUTE_PROTO]
    : [r.dst, 'via', r.via!, 'dev', r.dev!, 'onlink', 'proto', ROUTE_PROTO];

const sameRoute = (s: ShownRoute, r: { dst: string; kind: string; via?: string; dev?: string }): boolean =>
  r.kind === 'blackhole' ? s.type === 'blackhole' : s.type !== 'blackhole' && s.gateway === r.via && s.dev === r.dev;

async function show<T>(args: string[], exists: boolean): Promise<T[]> {
  return exists ? ipJson<T[]>(args) : [];
}

export async function applyOverlay(plan: OverlayPlan, natBackend: 'auto' | NatBackend): Promise<ApplyReport> {
  const changes: string[] = [];
  const vx = plan.vxlan;
  const vxExists = linkExists(VXLAN_DEVICE);
  const ipipExists = linkExists(IPIP_DEVICE);
  const [vxShown, routes, neighs, tunlShown] = await Promise.all([
    show<ShownVxlan>(['-d', 'address', 'show', 'dev', VXLAN_DEVICE], vxExists),
    ipJson<ShownRoute[]>(['route', 'show']),
    show<ShownNeigh>(['neigh', 'show', 'dev', VXLAN_DEVICE], vxExists),
    show<ShownVxlan>(['address', 'show', 'dev', IPIP_DEVICE], ipipExists),
  ]);
  const batch = new IpBatch();

  // VXLAN device: recreated when its identity differs, as Felix does.
  const cur = vxShown[0];
  let vxFresh = false; // created or recreated by this batch: it starts with no routes, neighbours or FDB entries
  let vxGone = false; // deleted by this batch: its routes went with it
  if (vx) {
    const d = cur?.linkinfo?.info_data;
    const same = cur && cur.linkinfo?.info_kind === 'vxlan' && d?.id === vx.vni && d?.local === vx.local && d?.link === vx.parent && d?.port === vx.port && d?.learning === false && cur.address === vx.mac;
    if (!same) {
      if (cur) batch.add('link', 'del', 'dev', vx.device);
      batch.add('link', 'add', vx.device, 'address', vx.mac, 'mtu', String(vx.mtu), 'type', 'vxlan', 'id', String(vx.vni),
        'local', vx.local, 'dev', vx.parent, 'dstport', String(vx.port), 'nolearning');
      changes.push(`${cur ? 'recreate' : 'create'} ${vx.device} (VNI ${vx.vni}, local ${vx.local}, parent ${vx.parent}, MAC ${vx.mac})`);
      vxFresh = true;
    } else if (cur.mtu !== vx.mtu) {
      batch.add('link', 'set', 'dev', vx.device, 'mtu', String(vx.mtu));
      changes.push(`${vx.device} mtu ${vx.mtu}`);
    }
    const have = vxFresh ? [] : (cur?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
    const want = vx.address ? [`${vx.address}/32`] : [];
    for (const a of have) if (!want.includes(a)) { batch.add('address', 'del', a, 'dev', vx.device); changes.push(`${vx.device}: remove ${a}`); }
    for (const a of want) if (!have.includes(a)) { batch.add('address', 'add', a, 'dev', vx.device); changes.push(`${vx.device}: address ${a}`); }
    if (vxFresh || !cur?.flags?.includes('UP')) batch.add('link', 'set', 'dev', vx.device, 'up');
  } else if (cur) {
    vxGone = true;
    batch.add('link', 'del', 'dev', VXLAN_DEVICE);
    changes.push('delete vxlan.tabby (no pool uses VXLAN)');
  }

  // IPIP: tunl0 is the ipip module's fallback device; creating it loads the module where it can be loaded.
  const tunl = tunlShown[0];
  let tunlDown = false; // taken down by this batch: the kernel drops the routes through it
  if (plan.ipip) {
    const ip4 = plan.ipip;
    if (!tunl) {
      // Alone and first: a kernel without ipip must fail the change before anything else was touched.
      try {
        await runBatch(new IpBatch().add('link', 'add', 'name', ip4.device, 'type', 'ipip'));
      } catch (e) {
        // Loading the ipip module creates tunl0 itself, and the kernel's retried request then finds it.
        if (!(e instanceof KernelError && /File exists/.test(e.stderr))) throw e;
      }
      changes.push(`create ${ip4.device}`);
    }
    if (!tunl || tunl.mtu !== ip4.mtu) batch.add('link', 'set', 'dev', ip4.device, 'mtu', String(ip4.mtu));
    const have = (tunl?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
    const want = ip4.address ? [`${ip4.address}/32`] : [];
    for (const a of have) if (!want.includes(a)) batch.add('address', 'del', a, 'dev', ip4.device);
    for (const a of want) if (!have.includes(a)) { batch.add('address', 'add', a, 'dev', ip4.device); changes.push(`${ip4.device}: address ${a}`); }
    if (!tunl?.flags?.includes('UP')) batch.add('link', 'set', 'dev', ip4.device, 'up');
  } else if (tunl && (tunl.addr_info ?? []).length > 0) {
    // The fallback device cannot be deleted while the module is loaded: strip it and take it down.
    batch.add('address', 'flush', 'dev', IPIP_DEVICE);
    batch.add('link', 'set', 'dev', IPIP_DEVICE, 'down');
    tunlDown = true;
    changes.push('tunl0: flushed and down (no pool uses IPIP)');
  }

  // Routes: only tabby's own (proto), never the per-pod host routes on tab* veths. A destination that
  // another program already routes (BGP, a static route) is left to it.
  const ours = routes.filter((s) => s.protocol === ROUTE_PROTO && !s.dev?.startsWith(HOST_VETH_PREFIX));
  const foreign = routes.filter((s) => s.protocol !== ROUTE_PROTO);
  for (const s of ours) {
    const want = plan.routes.find((r) => r.dst === s.dst);
    if (!want || !sameRoute(s, want)) {
      // a route through a device being deleted, recreated or taken down is gone already
      const gone = ((vxFresh || vxGone) && s.dev === VXLAN_DEVICE) || (tunlDown && s.dev === IPIP_DEVICE);
      if (!gone) batch.add('route', 'del', ...(s.type === 'blackhole' ? ['blackhole'] : []), s.dst, 'proto', ROUTE_PROTO);
      if (!want) changes.push(`route ${s.dst}: removed`);
    }
  }
  for (const r of plan.routes) {
    const other = foreign.find((x) => x.dst === r.dst);
    if (other) {
      changes.push(`route ${r.dst}: left alone, another route to it exists (proto ${other.protocol ?? 'boot'}${other.dev ? ` dev ${other.dev}` : ''})`);
      continue;
    }
    const s = ours.find((x) => x.dst === r.dst);
    if (s && sameRoute(s, r) && !(vxFresh && r.dev === VXLAN_DEVICE)) continue;
    batch.add('route', 'replace', ...routeLine(r));
    changes.push(`route ${r.dst} ${r.kind === 'blackhole' ? 'blackhole' : `via ${r.via} dev ${r.dev}`}`);
  }

  // Neighbours of remote VTEPs.
  if (vx) {
    const have = vxFresh ? [] : neighs.filter((n) => n.state?.includes('PERMANENT'));
    for (const n of have) if (!plan.neighbours.some((w) => w.ip === n.dst && w.mac === n.lladdr)) batch.add('neigh', 'del', n.dst, 'dev', vx.device);
    for (const w of plan.neighbours) {
      if (have.some((n) => n.dst === w.ip && n.lladdr === w.mac)) continue;
      batch.add('neigh', 'replace', w.ip, 'lladdr', w.mac, 'dev', vx.device, 'nud', 'permanent');
      changes.push(`neighbour ${w.ip} ${w.mac} (${w.peer})`);
    }
  }
  if (batch.size) await runBatch(batch);
  if (vx) await syncFdb(vx.device, plan.fdb, vxFresh, changes);
  const nat = await applyNat(plan.nat, natBackend);
  if (changes.length) log.info(`overlay: ${changes.join('; ')}`);
  return { changes, nat };
}

async function runBatch(batch: IpBatch): Promise<void> {
  try {
    await batch.run();
  } catch (e) {
    if (e instanceof KernelError && /Unknown device type/i.test(e.stderr) && /type ipip/.test(e.message)) {
      throw new CniError(Code.MissingKernelSupport, 'IPIP pool needs the kernel\'s ipip module (tunl0), and this kernel has no ipip support');
    }
    if (e instanceof KernelError && /Unknown device type/i.test(e.stderr) && /type vxlan/.test(e.message)) {
      throw new CniError(Code.MissingKernelSupport, 'VXLAN pool needs the kernel\'s vxlan support, and this kernel has none');
    }
    throw e;
  }
}

/** Permanent FDB entries: one per remote VTEP, pointing at the remote node's address. */
async function syncFdb(dev: string, want: OverlayPlan['fdb'], fresh: boolean, changes: string[]): Promise<void> {
  let have: ShownFdb[] = [];
  if (!fresh) {
    const res = await execArgs(BRIDGE_BIN, ['-j', 'fdb', 'show', 'dev', dev]);
    if (res.code === 0 && res.stdout.trim()) have = (JSON.parse(res.stdout) as ShownFdb[]).filter((f) => f.dst && f.state === 'permanent');
  }
  const lines: string[] = [];
  for (const f of have) if (!want.some((w) => w.mac === f.mac && w.dst === f.dst)) lines.push(`fdb del ${f.mac} dev ${dev} dst ${f.dst} self`);
  for (const w of want) {
    if (have.some((f) => f.mac === w.mac && f.dst === w.dst)) continue;
    lines.push(`fdb replace ${w.mac} dev ${dev} dst ${w.dst} self permanent`);
    changes.push(`fdb ${w.mac} -> ${w.dst} (${w.peer})`);
  }
  if (!lines.length) return;
  const res = await execArgs(BRIDGE_BIN, ['-batch', '-'], { input: lines.join('\n') + '\n' });
  if (res.code !== 0) throw new KernelError('bridge -batch (fdb)', res.stderr);
}
