import { CniError, Code } from '../../lib/cni/errors';
import { CniEnv } from '../../lib/cni/env';
import { Result } from '../../lib/cni/result';
import { hostVethName, HOST_VETH_MAC, inspectPod } from '../../lib/dataplane/veth';

const fail = (what: string): never => {
  throw new CniError(Code.CheckFailed, `CHECK failed: ${what}`);
};

const isDefault = (dst: string): boolean => dst === '0.0.0.0/0' || dst === '::/0';
const sameDst = (shown: string, dst: string): boolean =>
  shown === dst || (isDefault(dst) && shown === 'default') || shown === dst.replace(/\/(32|128)$/, '');

/** Compares what the kernel has against prevResult: interface, MAC, addresses, routes, host end, host routes. */
export async function checkPod(env: CniEnv, prev: Result): Promise<void> {
  const idx = (prev.interfaces ?? []).findIndex((i) => i.name === env.ifname && i.sandbox === env.netns);
  if (idx < 0) fail(`prevResult has no interface ${env.ifname} in sandbox ${env.netns}`);
  const expected = prev.interfaces![idx];
  const hostVeth = hostVethName(env.containerId, env.ifname);
  const state = await inspectPod(env.netns, env.ifname, hostVeth);

  if (!state.pod) fail(`interface ${env.ifname} is missing from ${env.netns}`);
  const pod = state.pod!;
  if (pod.linkinfo?.info_kind !== 'veth')
    fail(`interface ${env.ifname} is a ${pod.linkinfo?.info_kind ?? 'non-veth'} device, not a veth`);
  if (expected.mac && pod.address?.toLowerCase() !== expected.mac.toLowerCase()) {
    fail(`interface ${env.ifname} has MAC ${pod.address}, prevResult says ${expected.mac}`);
  }
  const ours = (prev.ips ?? []).filter((ip) => ip.interface === idx);
  for (const ip of ours) {
    const [addr, len] = ip.address.split('/');
    if (!(pod.addr_info ?? []).some((a) => a.local === addr && String(a.prefixlen) === len)) {
      fail(`address ${ip.address} is missing from ${env.ifname}`);
    }
  }
  const families = new Set(ours.map((ip) => (ip.address.includes(':') ? 6 : 4)));
  for (const r of prev.routes ?? []) {
    if (!families.has(r.dst.includes(':') ? 6 : 4)) continue;
    const found = state.podRoutes.some((s) => sameDst(s.dst, r.dst) && (!r.gw || s.gateway === r.gw));
    if (!found) fail(`route ${r.dst}${r.gw ? ' via ' + r.gw : ''} is missing from ${env.ifname}`);
  }

  if (!state.host) fail(`host veth ${hostVeth} is missing`);
  if (state.host!.address !== HOST_VETH_MAC)
    fail(`host veth ${hostVeth} has MAC ${state.host!.address}, expected ${HOST_VETH_MAC}`);
  for (const ip of ours) {
    const addr = ip.address.split('/')[0];
    if (!state.hostRoutes.some((s) => s.dst === addr)) fail(`host route ${addr} dev ${hostVeth} is missing`);
  }
}
