// Brings the kernel in line with a DesiredOverlay in three steps: read what is there (or take what the
// caller knows it applied last), diff it (pure, overlay-diff.ts), then apply the difference in one
// `ip -batch` and one `bridge -batch`. Every route tabby writes carries ROUTE_PROTO; it never touches a
// route without it.
import { CniError, Code } from '../cni/errors';
import { log } from '../log';
import { IpBatch, KernelError } from './iproute';
import { applyNat, NatBackend, NatPlan } from './nat';
import { natDrift } from './nat-drift';
import { txChecksumOffloadOff } from './offload';
import { OverlayState, readOverlayState, runBridgeBatch } from './kernel';
import { diffOverlay, stateAfter } from './overlay-diff';
import type { DesiredOverlay } from './desired';

export interface ApplyReport {
  changes: string[];
  leftAlone: string[];
  nat?: NatBackend;
  /** What the kernel holds now, for the next incremental apply. */
  state: OverlayState;
  /** True when the kernel was read back (a full apply), false when `held` was trusted. */
  readBack: boolean;
}

export interface ApplyOptions {
  /**
   * What the caller applied last. Given, the kernel is not read back: the diff is against it, and its
   * cost is proportional to what changed. Without it, the kernel is read (a full apply, which repairs drift).
   */
  held?: OverlayState;
  /** The NAT plan applied last: NAT is rewritten only when it differs (always on a full apply). */
  heldNat?: NatPlan;
}

export async function applyOverlay(
  want: DesiredOverlay,
  natBackend: 'auto' | NatBackend,
  opts: ApplyOptions = {},
): Promise<ApplyReport> {
  const have = opts.held ?? (await readOverlayState());
  const diff = diffOverlay(have, want);
  if (diff.createTunl) await createTunl(want.ipip!.device);
  await runBatch(new IpBatch().addAll(diff.ip));
  await runBridgeBatch(diff.fdb);
  const changes = diff.changes;
  if (want.txChecksumOffloadOff) {
    // a full apply checks every device (one may have been recreated by hand); an incremental one, only
    // the devices it created itself
    const devices = opts.held
      ? diff.fresh
      : [want.vxlan?.device, want.vxlanV6?.device, want.ipip?.device].filter((d): d is string => !!d);
    changes.push(...(await txChecksumOffloadOff(devices)));
  }
  let nat: NatBackend | undefined;
  if (!opts.held || !opts.heldNat || !sameNat(opts.heldNat, want.nat)) {
    if (!opts.held) {
      for (const d of await natDrift(want.nat, natBackend)) {
        if (d.state !== 'in sync')
          changes.push(`NAT ${d.what}: ${d.state}${d.detail ? ` (${d.detail})` : ''}, rewritten`);
      }
    } else {
      changes.push(`NAT rewritten: masquerade from ${want.nat.natPools.join(', ') || '(no pool)'}`);
    }
    nat = await applyNat(want.nat, natBackend);
  }
  if (changes.length) log.info(`overlay: ${changes.join('; ')}`);
  return { changes, leftAlone: diff.leftAlone, nat, state: stateAfter(have, want), readBack: !opts.held };
}

const sameNat = (a: NatPlan, b: NatPlan): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Alone and first: a kernel without ipip must fail the change before anything else was touched. */
async function createTunl(device: string): Promise<void> {
  try {
    await runBatch(new IpBatch().add('link', 'add', 'name', device, 'type', 'ipip'));
  } catch (e) {
    // Loading the ipip module creates tunl0 itself, and the kernel's retried request then finds it.
    if (!(e instanceof KernelError && /File exists/.test(e.stderr))) throw e;
  }
}

async function runBatch(batch: IpBatch): Promise<void> {
  try {
    await batch.run();
  } catch (e) {
    if (e instanceof KernelError && /Unknown device type/i.test(e.stderr) && /type ipip/.test(e.message)) {
      throw new CniError(
        Code.MissingKernelSupport,
        "IPIP pool needs the kernel's ipip module (tunl0), and this kernel has no ipip support",
      );
    }
    if (e instanceof KernelError && /Unknown device type/i.test(e.stderr) && /type vxlan/.test(e.message)) {
      throw new CniError(
        Code.MissingKernelSupport,
        "VXLAN pool needs the kernel's vxlan support, and this kernel has none",
      );
    }
    throw e;
  }
}
