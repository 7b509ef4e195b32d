// TX checksum offload on tabby's tunnel devices. Felix turns it off where the kernel computed bad
// VXLAN checksums after SNAT (before 5.7), or when told to (featureDetectOverride ChecksumOffloadBroken).
// A device starts with it on, so every apply checks the devices it holds. Only with the setting on does
// this spawn anything (ethtool, one read per device and a write when needed).
import { CniError, Code } from '../cni/errors';
import { execArgs, findProgram } from '../exec';

/** The feature the kernel names for it; turning it off also turns off TSO on the device. */
export const TX_CSUM_FEATURE = 'tx-checksum-ip-generic';

/** Turns TX checksum offload off on `devices`; one change line per device it changed. */
export async function txChecksumOffloadOff(devices: string[]): Promise<string[]> {
  if (devices.length === 0) return [];
  const ethtool = findProgram('ethtool');
  if (!ethtool) {
    throw new CniError(
      Code.MissingKernelSupport,
      'featureDetectOverride ChecksumOffloadBroken=true needs ethtool to turn checksum offload off, and it is not installed',
    );
  }
  const changes: string[] = [];
  for (const dev of devices) {
    const shown = await execArgs(ethtool, ['-k', dev]);
    if (shown.code === 0 && new RegExp(`^\\s*${TX_CSUM_FEATURE}: off`, 'm').test(shown.stdout)) continue;
    const set = await execArgs(ethtool, ['-K', dev, TX_CSUM_FEATURE, 'off']);
    if (set.code !== 0) {
      throw new CniError(Code.KernelOperationFailed, `ethtool -K ${dev} ${TX_CSUM_FEATURE} off: ${set.stderr.trim()}`);
    }
    changes.push(`${dev}: TX checksum offload off (ChecksumOffloadBroken)`);
  }
  return changes;
}
