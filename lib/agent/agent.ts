// The node agent: keeps this node's overlay current, the way Felix does for Calico. It applies the
// datastore once in full, then applies each change as a diff against what it applied last (work in
// proportion to the change, not to the cluster), and every `resyncSeconds` diffs against the kernel
// again to put back whatever something else removed. Work is serialised: one apply at a time, and
// requests that arrive meanwhile are merged (a full resync covers an incremental one).
import { ClusterContext } from '../cluster/context';
import { RefusedRead } from '../cluster/guard';
import type { ClusterResources } from '../../conf/calico';
import type { OverlayState } from '../dataplane/kernel';
import type { NatPlan } from '../dataplane/nat';
import { log } from '../log';
import type { Health } from './http';
import type { AgentMetrics, ApplyKind } from './metrics';
import { watchKernel } from './watch';
import { collectWhenIdle } from './idle-gc';
import type { Watcher } from '../datastore/datastore';

export interface AgentOptions {
  /** Full resync period (Felix's route refresh is 90 s). */
  resyncSeconds: number;
  /** How long the datastore may stay unreadable before /healthz says so. */
  datastoreGraceSeconds: number;
  /** Runs once before the first apply, retried with backoff until it succeeds (etcd: registration). */
  prepare?: () => Promise<void>;
  /** Runs after each full apply with the resources applied (etcd: releasing empty blocks); not awaited. */
  afterFullApply?: (r: ClusterResources) => Promise<unknown>;
}

/** Events that arrive together (an editor's write, then its rename) are applied once. */
const DEBOUNCE_MS = 5;
/** Kernel events come in bursts (an interface and its addresses): one full apply for a burst. */
const KERNEL_DEBOUNCE_MS = 100;
const MAX_BACKOFF_MS = 30_000;

export class NodeAgent implements Health {
  private held?: OverlayState;
  private heldNat?: NatPlan;
  private revision?: string;
  private ready = false;
  private datastoreFailingSince?: number;
  private lastError?: string;
  /** Why the datastore's current state is refused (the dataplane stays as last applied). */
  private refused?: string;
  private failures = 0;
  private pending?: { kind: ApplyKind; reasons: string[] };
  private timer?: NodeJS.Timeout;
  private resyncTimer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private watchers: Watcher[] = [];
  private stopped = false;
  /** Whether `opts.prepare` has run (etcd: registered); reset when the node's address changes. */
  private prepared = false;

  constructor(
    private readonly ctx: ClusterContext,
    private readonly metrics: AgentMetrics,
    private readonly opts: AgentOptions,
  ) {}

  start(): void {
    this.watchers.push(
      this.ctx.datastore.watch(
        (why) => this.request('incremental', why),
        (e) => this.datastoreFailed(e),
      ),
      watchKernel((why) => {
        // an address that moved is registered again (etcd), then applied
        if (why.startsWith('address')) this.prepared = false;
        this.request('full', why, KERNEL_DEBOUNCE_MS);
      }),
    );
    this.resyncTimer = setInterval(() => this.request('full', 'periodic resync', 0), this.opts.resyncSeconds * 1000);
    this.request('full', 'start', 0);
  }

  /** Stops watching and waits for an apply in flight: the dataplane stays as it is. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.watchers) w.close();
    clearTimeout(this.timer);
    clearInterval(this.resyncTimer);
    await this.running;
  }

  problem(): string | undefined {
    if (this.refused) return `refused the datastore's current state: ${this.refused}`;
    if (!this.ready) return `no apply has succeeded yet${this.lastError ? ` (last error: ${this.lastError})` : ''}`;
    const since = this.datastoreFailingSince;
    if (since !== undefined && Date.now() - since > this.opts.datastoreGraceSeconds * 1000) {
      return `datastore unreadable for ${Math.round((Date.now() - since) / 1000)} s: ${this.lastError}`;
    }
    return undefined;
  }

  /** Asks for an apply; merges with one already asked for. */
  request(kind: ApplyKind, reason: string, delayMs = DEBOUNCE_MS): void {
    if (this.stopped) return;
    if (this.pending) {
      if (kind === 'full') this.pending.kind = 'full';
      if (!this.pending.reasons.includes(reason)) this.pending.reasons.push(reason);
    } else {
      this.pending = { kind, reasons: [reason] };
    }
    if (this.running) return; // the loop picks it up when the apply in flight ends
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.drain(), delayMs);
  }

  private drain(): void {
    if (this.running || !this.pending || this.stopped) return;
    const { kind, reasons } = this.pending;
    this.pending = undefined;
    this.running = this.step(kind, reasons.join(', ')).finally(() => {
      this.running = undefined;
      if (this.pending) this.timer = setTimeout(() => this.drain(), 0);
    });
  }

  private async step(kind: ApplyKind, reason: string): Promise<void> {
    if (!this.prepared && this.opts.prepare) {
      try {
        await this.opts.prepare();
        this.prepared = true;
      } catch (e) {
        this.datastoreFailed(e as Error);
        return;
      }
    }
    const started = process.hrtime.bigint();
    let revision: string | undefined;
    try {
      // The revision first, then the resources: a change made meanwhile shows as a new revision next time.
      revision = await this.ctx.datastore.revision();
      if (kind === 'incremental' && revision === this.revision && this.held) return;
      this.ctx.forget();
      await this.ctx.resources();
    } catch (e) {
      if (e instanceof RefusedRead) this.refuse(e, revision!);
      else this.datastoreFailed(e as Error);
      return;
    }
    this.datastoreFailingSince = undefined;
    const incremental = kind === 'incremental' && this.held !== undefined;
    try {
      const applied = await this.ctx.apply(incremental ? { held: this.held, heldNat: this.heldNat } : {}, {
        writtenBy: 'agent',
        revision,
        // a full apply reads the host again (addresses, MTU); a change only re-plans with what it knew
        freshHost: !incremental,
      });
      const changed = revision !== this.revision;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.recordApplied(incremental ? 'incremental' : 'full', applied.state, applied.plan.nat, seconds);
      if (changed) this.metrics.lastChange.set(Date.now() / 1000);
      this.metrics.peers.set(
        new Set([...applied.plan.routes, ...applied.plan.unreachable].map((r) => r.peer).filter(Boolean)).size,
      );
      // A full apply over an unchanged datastore found the kernel different from what was applied: drift.
      if (!incremental && !changed && this.ready && applied.changes.length) {
        this.metrics.driftRepairs.inc(applied.changes.length);
        log.warn(
          `resync (${reason}) repaired ${applied.changes.length} drifted object(s): ${applied.changes.join('; ')}`,
        );
      } else {
        log.info(
          `${incremental ? 'incremental' : 'full'} apply (${reason}): ${applied.changes.length} change(s) in ` +
            `${(seconds * 1000).toFixed(1)} ms`,
        );
      }
      this.revision = revision;
      collectWhenIdle();
      if (!incremental && this.opts.afterFullApply) {
        const r = await this.ctx.resources();
        this.opts.afterFullApply(r).catch((e) => log.warn(`after the apply: ${(e as Error).message}`));
      }
      if (this.refused) log.info(`the datastore is accepted again (${reason}): ready`);
      this.refused = undefined;
      this.ready = true;
      this.metrics.ready.set(1);
      this.failures = 0;
      this.lastError = undefined;
    } catch (e) {
      if (e instanceof RefusedRead) {
        this.refuse(e, revision);
        return;
      }
      this.metrics.applies.inc({ kind, result: 'error' });
      this.lastError = (e as Error).message;
      this.held = undefined; // what the kernel holds is no longer known: the retry reads it back
      log.error(`${kind} apply (${reason}) failed: ${this.lastError}`);
      this.retry(`retry after: ${this.lastError}`);
    }
  }

  private recordApplied(kind: ApplyKind, state: OverlayState, nat: NatPlan, seconds: number): void {
    this.held = state;
    this.heldNat = nat;
    this.metrics.applyDuration.observe({ kind }, seconds);
    this.metrics.applies.inc({ kind, result: 'ok' });
    this.metrics.routes.set(state.routes.length);
    this.metrics.fdbEntries.set(state.fdb.length);
    this.metrics.neighbours.set(state.neighbours.length);
    this.metrics.lastApply.set(Date.now() / 1000);
  }

  /**
   * A read refused by the guards (no pool, this node missing, invalid): nothing was applied, the
   * dataplane stays as last applied, /healthz says not ready and why. No retry: the datastore's next
   * change (its watch) or the periodic resync reads it again.
   */
  private refuse(e: RefusedRead, revision: string | undefined): void {
    this.metrics.refusedReads.inc();
    this.metrics.ready.set(0);
    if (revision !== undefined) this.ctx.noteRefusal(revision, e);
    if (this.refused !== e.message) log.error(e.message);
    this.refused = e.message;
    this.revision = undefined; // the next read applies, even of a revision seen before the refusal
  }

  /** The datastore could not be read: keep the dataplane as last applied, and try again with backoff. */
  private datastoreFailed(e: Error): void {
    this.metrics.datastoreErrors.inc();
    this.datastoreFailingSince ??= Date.now();
    this.lastError = e.message;
    log.error(`datastore: ${e.message} (the dataplane stays as last applied)`);
    this.retry('datastore retry');
  }

  private retry(reason: string): void {
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.failures++);
    setTimeout(() => this.request('full', reason, 0), delay).unref();
  }
}
