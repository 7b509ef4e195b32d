// The node snapshot: the little that ADD needs from the cluster (this node's blocks, the tunnel
// addresses IPAM must not hand out, the pod MTU), written after every apply together with the
// fingerprint of what it reflects. With it, a pod start reads one small file whatever the cluster's
// size; the agent keeps it current, and without an agent ADD writes it itself.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { writeAtomic } from '../fs';
import { Addr, Cidr, parseCidr, parseIP } from '../net/addr';
import type { ClusterIpam } from '../../ipam/config';
import type { ClaimPlan } from '../datastore/etcd-blocks';
import type { PodPool } from './pod-choice';

export interface NodeSnapshot {
  /** What the applied state depends on (datastore revision, config, tunnel devices, host MTU). */
  fingerprint: string;
  /** The fingerprint less the revision: what a pod start on a remote datastore (etcd) checks. */
  identity: string;
  /** The datastore revision alone, for people. */
  revision: string;
  node: string;
  /** This node's blocks in enabled pools that allow workloads (the IPAM ranges). */
  blocks: string[];
  /** Addresses IPAM never hands out: this node's tunnel addresses. */
  reserved: string[];
  /** The pod MTU when the config leaves it to tabby. */
  mtu: number;
  /** On etcd: the pools this node may claim more blocks from, so that a pod start can claim one itself. */
  claim?: ClaimPlan;
  /** Every pool, with whether it gives pods of this node addresses by default (a pod may name another). */
  pools?: PodPool[];
  /** Who wrote it: the agent, or a pod start / `tabby reconcile` on a node without one. */
  writtenBy: 'agent' | 'plugin';
  /** When (ISO 8601). */
  at: string;
}

export const snapshotFile = (stateDir: string): string => path.join(stateDir, 'node.json');

export function readSnapshot(stateDir: string): NodeSnapshot | undefined {
  try {
    return JSON.parse(fs.readFileSync(snapshotFile(stateDir), 'utf8')) as NodeSnapshot;
  } catch {
    return undefined;
  }
}

export function writeSnapshot(stateDir: string, s: NodeSnapshot): void {
  // no fsync: after a crash the next apply writes it again, and a pod start checks its fingerprint
  writeAtomic(snapshotFile(stateDir), JSON.stringify(s) + '\n', 0o644, false);
}

/**
 * A datastore read this node refused (guard.ts), recorded beside the snapshot with the fingerprint it
 * was refused at: a pod start that sees the same fingerprint takes the last applied state at once
 * instead of waiting for the agent, and CNI STATUS reports it.
 */
export interface Refusal {
  fingerprint: string;
  code: number;
  reason: string;
  at: string;
}

const refusalFile = (stateDir: string): string => path.join(stateDir, 'refused.json');

export function readRefusal(stateDir: string): Refusal | undefined {
  try {
    return JSON.parse(fs.readFileSync(refusalFile(stateDir), 'utf8')) as Refusal;
  } catch {
    return undefined;
  }
}

export function recordRefusal(stateDir: string, r: Omit<Refusal, 'at'>): void {
  writeAtomic(refusalFile(stateDir), JSON.stringify({ ...r, at: new Date().toISOString() }) + '\n', 0o644, false);
}

export function clearRefusal(stateDir: string): void {
  fs.rmSync(refusalFile(stateDir), { force: true });
}

/**
 * The abstract unix socket the node's agent holds while it runs: one name per state directory (device
 * and inode), so a second agent fails to bind it, and a pod start can tell that an agent is there.
 * The kernel frees it when the agent dies, whatever the reason.
 */
export function agentSocketName(stateDir: string): string {
  const st = fs.statSync(stateDir);
  return `\0tabby-agent/${st.dev}/${st.ino}`;
}

/** Whether an agent runs for this state directory (a connect to its socket; about a millisecond). */
export function agentRunning(stateDir: string): Promise<boolean> {
  let name: string;
  try {
    name = agentSocketName(stateDir);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const s = net.connect({ path: name });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Waits until the snapshot carries `fingerprint`, up to `timeoutMs`; undefined when it did not. */
export async function waitForSnapshot(
  stateDir: string,
  fingerprint: string,
  timeoutMs: number,
): Promise<NodeSnapshot | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = readSnapshot(stateDir);
    if (s?.fingerprint === fingerprint) return s;
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The IPAM ranges recorded in a snapshot. */
export function ipamOf(s: NodeSnapshot): ClusterIpam {
  return {
    blocks: s.blocks.map((b) => parseCidr(b)).filter((c): c is Cidr => c !== undefined),
    reserved: s.reserved.map((a) => parseIP(a)).filter((a): a is Addr => a !== undefined),
  };
}
